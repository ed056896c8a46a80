// The builtin balancer's config: a JSON route table rendered from the dependency view.
// Pure (no I/O): the daemon writes the text atomically and only reloads when the bytes changed,
// which is why the output must be byte-identical for the same input (no timestamps, stable order).
import { z } from 'zod'
import { WakameError } from '../../util/errors.js'

/** One routing rule from the spec: requests whose path starts with `path` go to `service`. */
export interface BuiltinRouteSpec {
  path: string
  service: string
}

/** An ONLINE instance, as in the dependency view (`core/views.ts` `Endpoint`, structurally). */
export interface BuiltinEndpoint {
  id: string
  node: string
  ip: string
  port: number
}

const backendSchema = z.object({
  id: z.string().min(1),
  url: z.string().refine(isHttpOrigin, { message: 'must be an http://host:port URL with no path' })
}).strict()

const routeSchema = z.object({
  path: z.string().startsWith('/', { message: 'must start with "/"' }),
  service: z.string().min(1),
  backends: z.array(backendSchema)
}).strict()

const configSchema = z.object({
  routes: z.array(routeSchema).superRefine((routes, ctx) => {
    const seen = new Set<string>()
    routes.forEach((r, i) => {
      if (seen.has(r.path)) ctx.addIssue({ code: 'custom', path: [i, 'path'], message: `duplicate route path ${r.path}` })
      seen.add(r.path)
    })
  })
}).strict()

export type BuiltinConfig = z.infer<typeof configSchema>
export type BuiltinRoute = BuiltinConfig['routes'][number]
export type BuiltinBackend = BuiltinRoute['backends'][number]

/** The builtin balancer config text was not JSON or not of the expected shape. */
export class BuiltinConfigError extends WakameError {
  constructor (message: string) {
    super('BALANCER_CONFIG_INVALID', message)
  }
}

/** `http://ip:port`, with IPv6 addresses bracketed as URLs require. */
export function backendUrl (ip: string, port: number): string {
  const host = ip.includes(':') && !ip.startsWith('[') ? `[${ip}]` : ip
  return `http://${host}:${port}`
}

function isHttpOrigin (text: string): boolean {
  try {
    const u = new URL(text)
    return u.protocol === 'http:' && u.port !== '' && (u.pathname === '/' || u.pathname === '') &&
      u.search === '' && u.hash === '' && u.username === '' && u.password === ''
  } catch {
    return false
  }
}

function compare (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * Longest path first, so the proxy can take the first prefix that matches; ties broken by path then
 * service so that any input order gives the same text.
 */
export function renderBuiltinConfig (routes: readonly BuiltinRouteSpec[], view: Readonly<Record<string, readonly BuiltinEndpoint[]>>): string {
  const sorted = [...routes].sort((a, b) => (b.path.length - a.path.length) || compare(a.path, b.path) || compare(a.service, b.service))
  const config: BuiltinConfig = {
    routes: sorted.map(r => ({
      path: r.path,
      service: r.service,
      backends: [...(view[r.service] ?? [])]
        .map(e => ({ id: e.id, url: backendUrl(e.ip, e.port) }))
        .sort((a, b) => compare(a.id, b.id) || compare(a.url, b.url))
    }))
  }
  return JSON.stringify(config, null, 2) + '\n'
}

/** Parse and validate config text; throws `BuiltinConfigError` naming the bad field. */
export function parseBuiltinConfig (text: string, source = 'builtin balancer config'): BuiltinConfig {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new BuiltinConfigError(`${source}: not valid JSON (${(err as Error).message}); re-render it with the daemon`)
  }
  const result = configSchema.safeParse(raw)
  if (!result.success) {
    const lines = result.error.issues.map(i => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`)
    throw new BuiltinConfigError(`${source}: invalid: ${lines.join('; ')}`)
  }
  return result.data
}
