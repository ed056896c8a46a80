// Helpers for the live balancer tests: real HAProxy / nginx / Apache processes on 127.0.0.1, real
// Node backends, a steady request loop, and cleanup of every process even when a test fails.
import { spawn } from 'node:child_process'
import { mkdtempSync, openSync, closeSync, readFileSync } from 'node:fs'
import { Agent, createServer, request, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createBalancer, type BalancerContext, type BalancerKind, type BalancerRuntime } from '../../src/balancers/kinds.js'
import { probeConfigId } from '../../src/balancers/exec.js'
import { showProc } from '../../src/balancers/haproxy/master.js'
import type { BalancerEndpoint, BalancerRoute, RenderInput } from '../../src/balancers/model.js'
import { silentLogger } from '../../src/util/log.js'
import { freePort } from '../helpers/ports.js'
import { waitUntil } from '../helpers/wait.js'

export const HOST = '127.0.0.1'
const cleanups: Array<() => Promise<void> | void> = []

/** Run every registered cleanup (afterEach/afterAll), whatever happened. */
export async function cleanupAll (): Promise<void> {
  while (cleanups.length > 0) {
    const c = cleanups.pop()!
    try { await c() } catch {}
  }
}

export { freePort, waitUntil }

export interface Backend { id: string, port: number, endpoint: BalancerEndpoint, server: Server }

/** A backend instance: answers every request with its id (header and body). */
export async function startBackend (id: string): Promise<Backend> {
  for (;;) {
    const port = await freePort()
    const server = createServer((req, res) => {
      req.resume()
      res.setHeader('x-wakame-instance', id)
      res.end(`${id} ${req.url}\n`)
    })
    const ok = await new Promise<boolean>(resolve => { server.once('error', () => resolve(false)); server.listen(port, HOST, () => resolve(true)) })
    if (!ok) continue
    cleanups.push(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
    return { id, port, server, endpoint: { id, node: 'vm-1', ip: HOST, port } }
  }
}

export interface Live {
  rt: BalancerRuntime
  dir: string
  port: number
  pid: number
  input: (view: Record<string, BalancerEndpoint[]>, routes?: BalancerRoute[]) => RenderInput
  url: (path?: string) => string
  /** Last lines of the server's own output (for failure messages). */
  output: () => string
}

export const ROUTES: BalancerRoute[] = [{ path: '/api', service: 'app' }, { path: '/', service: 'www' }]

/** Start a real server of `kind` serving `view`, under our own supervision (its own process group). */
export async function startLive (kind: BalancerKind, view: Record<string, BalancerEndpoint[]>, opts: Partial<BalancerContext> = {}): Promise<Live> {
  const dir = mkdtempSync(join(tmpdir(), `wk-${kind}-`))
  const port = await freePort()
  let pid = 0
  const rt = createBalancer(kind, {
    instance: 'lb-1', dir, listen: { host: HOST, port }, logger: silentLogger(), pid: () => pid || undefined,
    reload: async () => '', selfArgv: [], ...opts
  })
  const input = (v: Record<string, BalancerEndpoint[]>, routes = ROUTES): RenderInput => ({ routes, view: v, listen: { host: HOST, port }, instance: 'lb-1', dir })
  rt.prepare(rt.render(input(view)))
  const [cmd, ...args] = rt.argv() as [string, ...string[]]
  const fd = openSync(join(dir, 'output.log'), 'a')
  // detached: its own process group, so cleanup kills the master and every worker at once.
  const child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', fd, fd], detached: true })
  closeSync(fd)
  pid = child.pid!
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  cleanups.push(async () => {
    try { process.kill(-pid, 'SIGKILL') } catch {}
    await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 2_000))])
  })
  const output = () => { try { return readFileSync(join(dir, 'output.log'), 'utf8').split('\n').slice(-15).join('\n') } catch { return '' } }
  await waitUntil(`${kind} serving on ${port}`, async () => await probeConfigId({ host: HOST, port }) !== undefined, 10_000, output)
  // HAProxy's master opens its socket a little after the worker serves.
  if (kind === 'haproxy') await waitUntil('the HAProxy master socket', () => showProc(join(dir, 'master.sock')).then(() => true, () => false), 5_000, output)
  return { rt, dir, port, pid, input, url: (path = '/') => `http://${HOST}:${port}${path}`, output }
}

export interface Hit { status: number, instance?: string, at: number }

/** One GET; `agent` reuses connections (keep-alive), otherwise a fresh connection per request. */
export async function get (url: string, agent?: Agent): Promise<Hit> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { agent: agent ?? false, timeout: 5_000 }, res => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, instance: res.headers['x-wakame-instance'] as string | undefined, at: performance.now() }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

export interface LoopStats { ok: number, failed: number, errors: string[], byStatus: Map<number, number>, firstSeen: Map<string, number> }

/**
 * `clients` concurrent request loops until stop(); a failure is any error or a status other than
 * `okStatus` (200). firstSeen: when (performance.now) each instance first answered.
 */
export function requestLoop (url: string, opts: { clients?: number, keepAlive?: boolean, pauseMs?: number } = {}): { stop: () => Promise<LoopStats>, stats: LoopStats } {
  const stats: LoopStats = { ok: 0, failed: 0, errors: [], byStatus: new Map(), firstSeen: new Map() }
  let running = true
  const agent = opts.keepAlive ? new Agent({ keepAlive: true, maxSockets: opts.clients ?? 1 }) : undefined
  const one = async (): Promise<void> => {
    while (running) {
      try {
        const h = await get(url, agent)
        stats.byStatus.set(h.status, (stats.byStatus.get(h.status) ?? 0) + 1)
        if (h.status === 200) stats.ok++
        else { stats.failed++; stats.errors.push(`HTTP ${h.status}`) }
        if (h.instance && !stats.firstSeen.has(h.instance)) stats.firstSeen.set(h.instance, h.at)
      } catch (err) {
        stats.failed++
        stats.errors.push((err as NodeJS.ErrnoException).code ?? (err as Error).message)
      }
      if (opts.pauseMs) await new Promise(resolve => setTimeout(resolve, opts.pauseMs))
    }
  }
  const loops = Array.from({ length: opts.clients ?? 1 }, one)
  return {
    stats,
    stop: async () => { running = false; await Promise.all(loops); agent?.destroy(); return stats }
  }
}

/** Instances that answer `url` over `n` fresh requests. */
export async function served (url: string, n = 12): Promise<Set<string>> {
  const out = new Set<string>()
  for (let i = 0; i < n; i++) { const h = await get(url); if (h.instance) out.add(h.instance) }
  return out
}

export function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
