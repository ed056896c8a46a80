// Config templates: a service's files rendered from its dependency view with Eta. `<%= value %>` is
// escaped for the file's format (no config injection through a name, an address or a path);
// `<%~ value %>` is raw, for template authors who know what they emit. Pure: text in, text out.
import { Eta } from 'eta/core'
import type { TemplateFormat } from '../spec/schema.js'
import type { DependencyView } from '../core/views.js'
import { WakameError } from '../util/errors.js'

export interface TemplateContext {
  cluster: string
  instance: { id: string, service: string, node: string, ip: string, port?: number }
  /** service → its ONLINE endpoints ({id, node, ip, port}), sorted by id. */
  deps: DependencyView
}

export class TemplateError extends WakameError {
  constructor (message: string) { super('TEMPLATE_FAILED', message) }
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f\u2028\u2029]/

function refuseControl (format: string, s: string): string {
  if (CONTROL.test(s)) throw new TemplateError(`a value for a ${format} file holds a control character (newline, tab, ...): ${JSON.stringify(s).slice(0, 80)}`)
  return s
}

/** Escapers for `<%= %>`, one per file format. Each makes any value safe where the format expects one value. */
export const ESCAPERS: Record<TemplateFormat, (value: unknown) => string> = {
  // Inside a JSON string ("<%= x %>"), or a YAML double-quoted scalar, which takes the same escapes.
  json: (v) => JSON.stringify(String(v)).slice(1, -1),
  yaml: (v) => JSON.stringify(String(v)).slice(1, -1),
  // One shell word, single-quoted: nothing inside is special but the quote itself.
  shell: (v) => `'${String(v).replace(/'/g, "'\\''")}'`,
  // A double-quoted INI value; a newline would start a new key, so it is refused.
  ini: (v) => `"${refuseControl('ini', String(v)).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`,
  xml: (v) => String(v).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!),
  // Line-oriented text: a newline could add a line, so values with control characters are refused.
  text: (v) => refuseControl('text', String(v)),
  // Directive files (nginx, haproxy, apache): a value is one token; anything else could end the directive.
  conf: (v) => {
    const s = String(v)
    if (!/^[A-Za-z0-9._:/@[\]-]+$/.test(s)) throw new TemplateError(`a value for a conf file must be one token of letters, digits and ._:/@[]-, not ${JSON.stringify(s).slice(0, 80)}`)
    return s
  }
}

const engines = new Map<TemplateFormat, Eta>()
const compiled = new Map<string, ReturnType<Eta['compile']>>()

function engine (format: TemplateFormat): Eta {
  let e = engines.get(format)
  if (!e) {
    e = new Eta({ autoEscape: true, escapeFunction: ESCAPERS[format], autoTrim: false, useWith: false, varName: 'it', cache: false })
    engines.set(format, e)
  }
  return e
}

/** Render a template for a format. Throws TemplateError naming the template on any failure. */
export function renderTemplate (name: string, text: string, format: TemplateFormat, ctx: TemplateContext): string {
  const e = engine(format)
  const key = `${format}\u0000${text}`
  try {
    let fn = compiled.get(key)
    if (!fn) {
      fn = e.compile(text)
      if (compiled.size > 256) compiled.clear()
      compiled.set(key, fn)
    }
    return fn.call(e, ctx)
  } catch (err) {
    if (err instanceof TemplateError) throw new TemplateError(`${name}: ${err.message}`)
    throw new TemplateError(`${name}: ${(err as Error).message.split('\n')[0]}`)
  }
}
