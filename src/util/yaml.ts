// Strict YAML loading shared by the cluster spec and the daemon config: YAML 1.2 (so `no` stays a
// string), duplicate keys and tabs rejected, and every error located by file, line and column.
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Document, type Node } from 'yaml'
import type { ZodType } from 'zod'
import { distance } from 'fastest-levenshtein'
import { InputError, type InputProblem } from './errors.js'
import { clip } from './text.js'

/** A file that is not YAML at all yields an error per chunk, each quoting it: the first few, cut short. */
const MAX_YAML_ERRORS = 5
const MAX_YAML_MESSAGE = 160

export interface LoadedYaml {
  doc: Document
  lines: LineCounter
  file: string
}

export function parseYamlStrict (text: string, file: string): LoadedYaml {
  const lines = new LineCounter()
  const problems: InputProblem[] = []
  // YAML forbids tabs for indentation, but the parser's message is cryptic; name line and column.
  text.split('\n').forEach((line, i) => {
    const m = /^( *)\t/.exec(line)
    if (m) problems.push({ file, line: i + 1, column: m[1]!.length + 1, message: 'tab character in indentation; indent with spaces' })
  })
  if (problems.length > 0) throw new InputError(problems)
  const doc = parseDocument(text, { lineCounter: lines, version: '1.2', uniqueKeys: true, prettyErrors: false, strict: true })
  for (const err of doc.errors.slice(0, MAX_YAML_ERRORS)) {
    const pos = lines.linePos(err.pos[0])
    problems.push({ file, line: pos.line, column: pos.col, message: clip(describeYamlError(err.code, err.message, doc, lines, err.pos[0]), MAX_YAML_MESSAGE) })
  }
  const more = doc.errors.length - MAX_YAML_ERRORS
  if (more > 0) problems.push({ file, message: `and ${more} more YAML error${more === 1 ? '' : 's'}: is this a YAML file?` })
  if (problems.length > 0) throw new InputError(problems)
  return { doc, lines, file }
}

function describeYamlError (code: string, message: string, doc: Document, lines: LineCounter, offset: number): string {
  if (code !== 'DUPLICATE_KEY') return message.split('\n')[0] ?? message
  // Name the key and the line of its first occurrence, so the user sees both places.
  const dup = findKeyAt(doc.contents, offset)
  if (!dup) return 'duplicate key'
  const first = lines.linePos(dup.firstOffset)
  return `duplicate key "${dup.key}" (first defined on line ${first.line}); remove one of them`
}

function findKeyAt (node: unknown, offset: number): { key: string, firstOffset: number } | undefined {
  if (isMap(node)) {
    const seen = new Map<string, number>()
    for (const pair of node.items) {
      const k = pair.key
      if (isScalar(k) && k.range) {
        const name = String(k.value)
        if (k.range[0] === offset && seen.has(name)) return { key: name, firstOffset: seen.get(name)! }
        if (!seen.has(name)) seen.set(name, k.range[0])
      }
      const inner = findKeyAt(pair.value, offset)
      if (inner) return inner
    }
  } else if (isSeq(node)) {
    for (const item of node.items) {
      const inner = findKeyAt(item, offset)
      if (inner) return inner
    }
  }
  return undefined
}

/** Position of the YAML node at `path` (or its nearest existing parent). */
export function positionOf (loaded: LoadedYaml, path: ReadonlyArray<PropertyKey>): { line: number, column: number } | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = loaded.doc.getIn(path.slice(0, n) as unknown[], true) as Node | undefined
    // For a map key that exists, point at the key rather than the value (nicer for "unknown field").
    const range = node?.range ?? (n === 0 ? loaded.doc.contents?.range : undefined)
    if (range) {
      const pos = loaded.lines.linePos(range[0])
      return { line: pos.line, column: pos.col }
    }
  }
  return undefined
}

/** Position of the key `key` itself in the map at `parent` (where an unknown field is written). */
function keyPositionOf (loaded: LoadedYaml, parent: ReadonlyArray<PropertyKey>, key: string): { line: number, column: number } | undefined {
  const node = parent.length === 0 ? loaded.doc.contents : loaded.doc.getIn(parent as unknown[], true)
  if (!isMap(node)) return undefined
  const pair = node.items.find(p => isScalar(p.key) && String(p.key.value) === key)
  const range = isScalar(pair?.key) ? pair.key.range : undefined
  if (!range) return undefined
  const pos = loaded.lines.linePos(range[0])
  return { line: pos.line, column: pos.col }
}

/** Parse `text` as YAML and validate with `schema`; every problem names file, line and field. */
export function loadYamlWith<T> (text: string, file: string, schema: ZodType<T>): { value: T, loaded: LoadedYaml } {
  const loaded = parseYamlStrict(text, file)
  let raw: unknown
  try {
    raw = loaded.doc.toJS({ maxAliasCount: 50 }) ?? {}
  } catch (err) {
    // e.g. an alias bomb: "Excessive alias count indicates a resource exhaustion attack".
    throw new InputError([{ file, message: (err as Error).message }])
  }
  const result = schema.safeParse(raw)
  if (result.success) return { value: result.data, loaded }
  const problems: InputProblem[] = result.error.issues.map(issue => {
    let path = issue.path
    let message = issue.message
    let pos: { line: number, column: number } | undefined
    if (issue.code === 'invalid_key') {
      // A record key failed its own schema (e.g. a bad service name): say why, not just "invalid key".
      const inner = (issue as { issues?: Array<{ message: string }> }).issues?.[0]?.message
      if (inner) message = `invalid name: ${inner}`
      pos = keyPositionOf(loaded, issue.path.slice(0, -1), String(issue.path.at(-1)))
    }
    if (issue.code === 'unrecognized_keys') {
      const keys = (issue as { keys: string[] }).keys
      path = [...issue.path, keys[0]!]
      message = `unknown field "${keys[0]}"${suggest(keys[0]!, schemaKeysAt(schema, issue.path))}`
      pos = keyPositionOf(loaded, issue.path, keys[0]!)
    }
    pos ??= positionOf(loaded, path)
    return { file, line: pos?.line, column: pos?.column, field: path.map(String).join('.') || undefined, message }
  })
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0))
  throw new InputError(problems)
}

// Known keys of the object schema at `path`, for "did you mean" suggestions.
function schemaKeysAt (schema: ZodType<unknown>, path: ReadonlyArray<PropertyKey>): string[] {
  let s: unknown = schema
  for (const seg of path) {
    s = unwrap(s)
    const def = (s as { def?: Record<string, unknown> })?.def
    if (!def) return []
    if (def.type === 'object') s = (def.shape as Record<string, unknown>)[String(seg)]
    else if (def.type === 'record') s = def.valueType
    else if (def.type === 'array') s = def.element
    else return []
  }
  s = unwrap(s)
  const def = (s as { def?: Record<string, unknown> })?.def
  return def?.type === 'object' ? Object.keys(def.shape as object) : []
}

function unwrap (s: unknown): unknown {
  for (let i = 0; i < 10; i++) {
    const def = (s as { def?: Record<string, unknown> })?.def
    if (def && (def.type === 'optional' || def.type === 'default' || def.type === 'nullable' || def.type === 'prefault')) s = def.innerType
    else if (def && def.type === 'pipe') s = def.in
    else break
  }
  return s
}

function suggest (word: string, candidates: string[]): string {
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const d = distance(word, c)
    if (d < bestD) { bestD = d; best = c }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? `; did you mean "${best}"?` : ''
}
