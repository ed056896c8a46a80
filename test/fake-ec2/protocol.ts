// The EC2 Query protocol: form-encoded parameters in, XML out; errors, filters, pagination, ids.
import { randomBytes, randomUUID } from 'node:crypto'

export const EC2_XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/'

/** An error EC2 answers: `code` becomes the SDK error's `name`. */
export class Ec2Error extends Error {
  constructor (readonly code: string, message: string, readonly status = 400) {
    super(message)
    this.name = code
  }
}

export const invalidValue = (message: string): Ec2Error => new Ec2Error('InvalidParameterValue', message)

/** Flattened query parameters (`Filter.1.Value.2=x`) seen through an optional prefix. */
export class QueryParams {
  constructor (readonly raw: Readonly<Record<string, string>>, private readonly prefix = '') {}

  get (name: string): string | undefined { return this.raw[this.prefix + name] }

  req (name: string): string {
    const v = this.get(name)
    if (v === undefined || v === '') throw new Ec2Error('MissingParameter', `The request must contain the parameter ${name}`)
    return v
  }

  int (name: string): number | undefined {
    const v = this.get(name)
    if (v === undefined) return undefined
    if (!/^-?\d+$/.test(v)) throw invalidValue(`Invalid value '${v}' for ${name}`)
    return Number(v)
  }

  bool (name: string): boolean | undefined {
    const v = this.get(name)
    if (v === undefined) return undefined
    if (v !== 'true' && v !== 'false') throw invalidValue(`Invalid value '${v}' for ${name}, expected true or false`)
    return v === 'true'
  }

  private indexes (name: string, nested: boolean): number[] {
    const re = new RegExp(`^${escapeRe(this.prefix + name)}\\.(\\d+)${nested ? '\\.' : '$'}`)
    const found = new Set<number>()
    for (const k of Object.keys(this.raw)) {
      const m = re.exec(k)
      if (m !== null) found.add(Number(m[1]))
    }
    return [...found].sort((a, b) => a - b)
  }

  /** `Name.1`, `Name.2`, ... in order. */
  list (name: string): string[] {
    return this.indexes(name, false).map((i) => this.raw[`${this.prefix}${name}.${i}`] ?? '')
  }

  /** `Name.1.*`, `Name.2.*`, ... as nested parameter views. */
  structs (name: string): QueryParams[] {
    return this.indexes(name, true).map((i) => new QueryParams(this.raw, `${this.prefix}${name}.${i}.`))
  }

  sub (name: string): QueryParams { return new QueryParams(this.raw, `${this.prefix}${name}.`) }

  filters (): Filter[] {
    return this.structs('Filter').map((f) => ({ name: f.req('Name'), values: f.list('Value') }))
  }

  tags (name = 'Tag'): Array<[string, string]> {
    return this.structs(name).map((t) => {
      const key = t.req('Key')
      if (key.toLowerCase().startsWith('aws:')) throw invalidValue(`Tag keys starting with 'aws:' are reserved for internal use (${key})`)
      return [key, t.get('Value') ?? '']
    })
  }

  /** TagSpecification.N.{ResourceType, Tag.M.{Key,Value}} */
  tagSpecs (allowed: string[]): Map<string, Array<[string, string]>> {
    const out = new Map<string, Array<[string, string]>>()
    for (const s of this.structs('TagSpecification')) {
      const type = s.req('ResourceType')
      if (!allowed.includes(type)) throw invalidValue(`'${type}' is not a valid taggable resource type for this operation.`)
      out.set(type, [...(out.get(type) ?? []), ...s.tags()])
    }
    return out
  }

  /** A canonical form of every parameter except the excluded ones (for idempotency checks). */
  fingerprint (exclude: string[]): string {
    const skip = new Set(['Action', 'Version', ...exclude])
    return JSON.stringify(Object.entries(this.raw).filter(([k]) => !skip.has(k)).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
  }
}

function escapeRe (s: string): string { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') }

// ---------- XML ----------

export type XmlNode = string | number | boolean | Date | null | undefined | XmlRecord | XmlNode[]
export interface XmlRecord { [k: string]: XmlNode }

export function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;')
}

export const isoTime = (ms: number | Date): string => new Date(ms).toISOString()

function xmlValue (v: XmlNode): string {
  if (Array.isArray(v)) return v.map((i) => `<item>${xmlValue(i)}</item>`).join('')
  if (v instanceof Date) return isoTime(v)
  if (v !== null && typeof v === 'object') return xml(v)
  return esc(String(v))
}

/** Elements in key order; arrays become `<key><item>..</item></key>`; undefined fields are left out. */
export function xml (rec: XmlRecord): string {
  let out = ''
  for (const [k, v] of Object.entries(rec)) {
    if (v === undefined || v === null) continue
    out += `<${k}>${xmlValue(v)}</${k}>`
  }
  return out
}

export const tagSet = (tags: Map<string, string>): XmlRecord[] => [...tags].map(([key, value]) => ({ key, value }))

export function responseXml (action: string, requestId: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_XMLNS}"><requestId>${requestId}</requestId>${body}</${action}Response>`
}

export function errorXml (code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${esc(code)}</Code><Message>${esc(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`
}

export const newRequestId = (): string => randomUUID()

// ---------- filters ----------

export interface Filter { name: string, values: string[] }
type FieldValue = string | number | boolean | undefined | Array<string | undefined>
export type FilterFields<T> = Record<string, (item: T) => FieldValue>

/** EC2 filter values accept `*` and `?` wildcards (`\` escapes them). */
export function globMatch (pattern: string, value: string): boolean {
  let re = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? ''
    if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i] ?? '')
    else if (c === '*') re += '.*'
    else if (c === '?') re += '.'
    else re += escapeRe(c)
  }
  return new RegExp(`^${re}$`, 's').test(value)
}

/** Filters AND together, the values of one filter OR together; `tag:K`, `tag-key`, `tag-value` work on `tagsOf`. */
export function applyFilters<T> (items: T[], filters: Filter[], fields: FilterFields<T>, tagsOf: (item: T) => Map<string, string>): T[] {
  for (const f of filters) {
    if (!f.name.startsWith('tag:') && f.name !== 'tag-key' && f.name !== 'tag-value' && fields[f.name] === undefined) {
      throw invalidValue(`The filter '${f.name}' is invalid`)
    }
  }
  return items.filter((item) => filters.every((f) => {
    let candidates: Array<string | undefined>
    if (f.name.startsWith('tag:')) candidates = [tagsOf(item).get(f.name.slice(4))]
    else if (f.name === 'tag-key') candidates = [...tagsOf(item).keys()]
    else if (f.name === 'tag-value') candidates = [...tagsOf(item).values()]
    else {
      const v = (fields[f.name] as (item: T) => FieldValue)(item)
      candidates = (Array.isArray(v) ? v : [v]).map((x) => x === undefined ? undefined : String(x))
    }
    return f.values.some((pattern) => candidates.some((c) => c !== undefined && globMatch(pattern, c)))
  }))
}

// ---------- pagination ----------

/** MaxResults/NextToken over a stable ordering; `NextToken` is opaque (base64 of the offset and query). */
export function paginate<T> (items: T[], p: QueryParams, limits: { min: number, max: number }, query: string): { page: T[], nextToken?: string } {
  const max = p.int('MaxResults')
  const token = p.get('NextToken')
  let offset = 0
  if (token !== undefined && token !== '') {
    let decoded: unknown
    try { decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) } catch { decoded = undefined }
    const d = decoded as { o?: unknown, q?: unknown } | undefined
    if (typeof d?.o !== 'number' || d.q !== query) throw new Ec2Error('InvalidPaginationToken', `The pagination token '${token}' is not valid`)
    offset = d.o
  }
  if (max === undefined) return { page: items.slice(offset) }
  if (max < limits.min || max > limits.max) throw invalidValue(`Value ( ${max} ) for parameter maxResults is invalid. Expecting a value between ${limits.min} and ${limits.max}.`)
  const page = items.slice(offset, offset + max)
  const next = offset + max < items.length ? Buffer.from(JSON.stringify({ o: offset + max, q: query })).toString('base64url') : undefined
  return next === undefined ? { page } : { page, nextToken: next }
}

// ---------- ids ----------

/** EC2-shaped ids: `<prefix>-0<4 random hex><12-digit counter>` (17 hex digits, like real ids). */
export class IdGen {
  private readonly salt = randomBytes(2).toString('hex')
  private n = 0
  next (prefix: string): string {
    return `${prefix}-0${this.salt}${(++this.n).toString(16).padStart(12, '0')}`
  }

  mac (): string {
    const n = ++this.n
    return ['0e', this.salt.slice(0, 2), this.salt.slice(2, 4), (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]
      .map((x) => typeof x === 'string' ? x : x.toString(16).padStart(2, '0')).join(':')
  }
}

export function checkIdShape (id: string, prefix: string, code: string): void {
  if (!new RegExp(`^${prefix}-[0-9a-f]{8}([0-9a-f]{9})?$`).test(id)) throw new Ec2Error(code, `Invalid id: "${id}"`)
}

export function notExist (what: string, code: string, ids: string[]): Ec2Error {
  return ids.length === 1
    ? new Ec2Error(code, `The ${what} ID '${ids[0] ?? ''}' does not exist`)
    : new Ec2Error(code, `The ${what} IDs '${ids.join(', ')}' do not exist`)
}

/** Inclusive range of IPv4 addresses `base.from` .. `base.to`. */
export function ipRange (base: string, from: number, to: number): string[] {
  const out: string[] = []
  for (let i = from; i <= to; i++) out.push(`${base}.${i}`)
  return out
}
