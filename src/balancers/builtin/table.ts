// The builtin proxy's live route table and its keep-alive agents, one per backend origin.
// A table is immutable once built: a reload builds a new one and swaps a single reference, so a
// request keeps the route (and backends) it matched even if a reload happens while it is in flight.
import { Agent } from 'node:http'
import type { BuiltinConfig } from './render.js'

/**
 * Idle keep-alive sockets to a backend are closed after this long. Below Node's default server
 * `keepAliveTimeout` (5 s), so we usually close an idle socket before the backend does, which
 * avoids most "ECONNRESET on a reused socket" races in the first place.
 */
export const IDLE_SOCKET_TIMEOUT_MS = 4_000

export interface Backend {
  id: string
  /** `http://host:port`, the key of its agent. */
  origin: string
  /** Host for `http.request` (IPv6 without brackets). */
  host: string
  port: number
  agent: Agent
}

export interface Route {
  path: string
  service: string
  backends: readonly Backend[]
  /** Round-robin position; an object so the count carries over a reload for the same path. */
  cursor: { next: number }
}

export interface RouteTable {
  /** Longest path first (as rendered; re-sorted here so a hand-written file works too). */
  routes: readonly Route[]
}

/** `/api` matches `/api` and `/api/x` but not `/apix`; `/` (or `/api/`) matches as a directory. */
export function routeMatches (routePath: string, pathname: string): boolean {
  const prefix = routePath.replace(/\/+$/, '')
  if (prefix === '') return true
  return pathname === prefix || pathname.startsWith(prefix + '/')
}

export function matchRoute (table: RouteTable, pathname: string): Route | undefined {
  return table.routes.find(r => routeMatches(r.path, pathname))
}

/** Path part of a request target (origin-form `/a?b` or absolute-form `http://h/a?b`). */
export function pathnameOf (target: string | undefined): string {
  let t = target ?? '/'
  if (!t.startsWith('/')) {
    try { t = new URL(t).pathname } catch { return '/' }
  }
  const q = t.search(/[?#]/)
  return q === -1 ? t : t.slice(0, q)
}

/** The route's backends in the order to try them: round-robin start, then each other one once. */
export function attemptOrder (route: Route): Backend[] {
  const n = route.backends.length
  if (n === 0) return []
  const start = route.cursor.next % n
  route.cursor.next = (start + 1) % n
  return [...route.backends.slice(start), ...route.backends.slice(0, start)]
}

/** Keep-alive agents by backend origin; agents of removed backends are retired, not destroyed. */
export class AgentPool {
  private readonly agents = new Map<string, Agent>()

  get (origin: string): Agent {
    let agent = this.agents.get(origin)
    if (!agent) {
      agent = new Agent({ keepAlive: true, timeout: IDLE_SOCKET_TIMEOUT_MS, scheduling: 'lifo' })
      this.agents.set(origin, agent)
    }
    return agent
  }

  /**
   * Forget every agent whose origin is not in `keep`. Its idle sockets are closed now; sockets
   * still carrying a request finish it and are closed when freed, so no request is cut.
   * Returns the retired origins.
   */
  retainOnly (keep: ReadonlySet<string>): string[] {
    const retired: string[] = []
    for (const [origin, agent] of this.agents) {
      if (keep.has(origin)) continue
      this.agents.delete(origin)
      retired.push(origin)
      // Runs after the agent's own 'free' listener has pooled the socket (maxSockets is unlimited,
      // so no queued request can have taken it): close it instead of keeping it for reuse.
      agent.on('free', socket => {
        if (Object.values(agent.freeSockets).some(list => list?.includes(socket))) socket.destroy()
      })
      for (const list of Object.values(agent.freeSockets)) for (const s of list ?? []) s.destroy()
    }
    return retired
  }

  destroyAll (): void {
    for (const agent of this.agents.values()) agent.destroy()
    this.agents.clear()
  }
}

/** Build a table from a validated config, reusing the agents and round-robin cursors that survive. */
export function buildTable (config: BuiltinConfig, pool: AgentPool, previous?: RouteTable): RouteTable {
  const cursors = new Map(previous?.routes.map(r => [r.path, r.cursor]) ?? [])
  const routes: Route[] = config.routes.map(r => ({
    path: r.path,
    service: r.service,
    cursor: cursors.get(r.path) ?? { next: 0 },
    backends: r.backends.map(b => {
      const u = new URL(b.url)
      return {
        id: b.id,
        origin: u.origin,
        host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: Number(u.port),
        agent: pool.get(u.origin)
      }
    })
  }))
  routes.sort((a, b) => b.path.replace(/\/+$/, '').length - a.path.replace(/\/+$/, '').length)
  return { routes }
}

export function originsOf (table: RouteTable): Set<string> {
  return new Set(table.routes.flatMap(r => r.backends.map(b => b.origin)))
}

export function backendCounts (table: RouteTable): Record<string, number> {
  return Object.fromEntries(table.routes.map(r => [r.path, r.backends.length]))
}
