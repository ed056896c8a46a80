// What every balancer kind renders from: the spec's routes and the dependency view, normalized into
// pools (one per route) of ONLINE members, sorted so that the same input always gives the same model
// (and so byte-identical config text). Pure: no I/O, no clock.
import { createHash } from 'node:crypto'
import { isIP } from 'node:net'
import { WakameError } from '../util/errors.js'

/** Answered by the balancer itself (the lb's health check, and reload confirmation), whatever its backends do. */
export const HEALTH_PATH = '/_wakame/health'
/** Response header carrying the config id on HEALTH_PATH: a fresh connection seeing the new id proves the new config serves. */
export const CONFIG_HEADER = 'x-wakame-config'

/** One routing rule from the spec (`services.<lb>.balancer.routes[]`). */
export interface BalancerRoute {
  /** Path prefix: `/api` matches `/api` and `/api/x`, not `/apix`; the longest matching route wins. */
  path: string
  service: string
  /** Forward `/api/x` as `/x` (the prefix removed). @default false */
  strip_prefix?: boolean
}

/** An ONLINE instance, as in the dependency view (`core/views.ts` Endpoint, structurally). */
export interface BalancerEndpoint {
  id: string
  node: string
  ip: string
  port: number
}

export interface RenderInput {
  routes: readonly BalancerRoute[]
  view: Readonly<Record<string, readonly BalancerEndpoint[]>>
  /** Where clients connect: the node's address and the lb service's port. */
  listen: { host: string, port: number }
  /** The balancer instance's id (server name, comments). */
  instance: string
  /** The instance directory, where the server keeps its pid, sockets, temp files and logs. */
  dir: string
}

export interface PoolMember {
  /** Instance id: the server's name in the config and on HAProxy's runtime API. */
  id: string
  /** IP literal, IPv6 without brackets. */
  host: string
  port: number
  /** `host:port`, IPv6 bracketed. */
  address: string
}

export interface Pool {
  /** Config name of the backend/upstream/balancer: the service name; `_2`, `_3` for further routes to it. */
  name: string
  service: string
  members: PoolMember[]
}

export interface ModelRoute {
  /** Normalized: no trailing slash except for the root route `/`. */
  path: string
  pool: string
  stripPrefix: boolean
}

export interface BalancerModel {
  instance: string
  dir: string
  listen: { host: string, port: number, address: string }
  /** Longest path first: a renderer that matches in order gets longest-prefix semantics. */
  routes: ModelRoute[]
  /** Sorted by name. A pool may be empty: each renderer must turn that into a 503, never an empty backend. */
  pools: Pool[]
  /** Hash of everything above: equal models, equal ids. Served on HEALTH_PATH in CONFIG_HEADER. */
  configId: string
}

/** A member or listen address that cannot be written into a config safely. */
export class BalancerInputError extends WakameError {
  constructor (message: string) { super('BALANCER_INPUT_INVALID', message) }
}

export function compare (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** `ip:port`, IPv6 bracketed (what every config syntax here expects). */
export function hostPort (host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** `/api/` and `/api` are the same route (as in the builtin proxy); `/` stays `/`. */
export function normalizePath (path: string): string {
  const p = path.replace(/\/+$/, '')
  return p === '' ? '/' : p
}

// Every value that reaches a config file passes one of these: the spec schema already restricts
// names and paths, but the view comes from gossip, so addresses and ids are checked again here.
const ID = /^[a-z][a-z0-9-]{0,62}$/
const PATH = /^\/[A-Za-z0-9._~\-/]*$/

function checkIp (what: string, ip: string): string {
  const bare = ip.replace(/^\[(.*)\]$/, '$1')
  if (isIP(bare) === 0) throw new BalancerInputError(`${what}: "${ip}" is not an IP address`)
  return bare
}

function checkPort (what: string, port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new BalancerInputError(`${what}: port ${port} is out of range`)
  return port
}

function hash (value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16)
}

export function buildModel (input: RenderInput): BalancerModel {
  const host = checkIp('listen', input.listen.host)
  const port = checkPort('listen', input.listen.port)
  // Longest path first; ties (`/api` and `/api/` in one spec) by service, so any input order gives one output.
  const routes = input.routes.map(r => {
    if (!PATH.test(r.path)) throw new BalancerInputError(`route path "${r.path}": a path starts with "/" and holds only URL-safe characters`)
    if (!ID.test(r.service)) throw new BalancerInputError(`route service "${r.service}" is not a service name`)
    return { path: normalizePath(r.path), service: r.service, stripPrefix: r.strip_prefix === true }
  }).sort((a, b) => (b.path.length - a.path.length) || compare(a.path, b.path) || compare(a.service, b.service) || Number(a.stripPrefix) - Number(b.stripPrefix))
  const seen = new Set<string>()
  const byService = new Map<string, number>()
  const pools: Pool[] = []
  const modelRoutes: ModelRoute[] = []
  for (const r of routes) {
    if (seen.has(r.path)) continue // a duplicate path could never match: the spec check refuses it anyway
    seen.add(r.path)
    const n = (byService.get(r.service) ?? 0) + 1
    byService.set(r.service, n)
    const name = n === 1 ? r.service : `${r.service}_${n}` // `_` is never in a service name: no clash
    pools.push({ name, service: r.service, members: membersOf(r.service, input.view[r.service] ?? []) })
    modelRoutes.push({ path: r.path, pool: name, stripPrefix: r.stripPrefix })
  }
  pools.sort((a, b) => compare(a.name, b.name))
  const base = { instance: input.instance, dir: input.dir, listen: { host, port, address: hostPort(host, port) }, routes: modelRoutes, pools }
  return { ...base, configId: hash(base) }
}

function membersOf (service: string, endpoints: readonly BalancerEndpoint[]): PoolMember[] {
  const byId = new Map<string, PoolMember>()
  for (const e of endpoints) {
    if (!ID.test(e.id)) throw new BalancerInputError(`${service}: instance id "${e.id}" cannot be a server name`)
    const host = checkIp(`${service} ${e.id}`, e.ip)
    const port = checkPort(`${service} ${e.id}`, e.port)
    byId.set(e.id, { id: e.id, host, port, address: hostPort(host, port) })
  }
  return [...byId.values()].sort((a, b) => compare(a.id, b.id))
}

/** A route's match as a regular expression on the path: `/api` → `^/api(/|$)`; `/` → everything. */
export function pathRegex (path: string): string {
  return path === '/' ? '^/' : `^${path.replace(/[.]/g, '\\.')}(/|$)`
}
