// The builtin balancer: a small reverse proxy process (`wakame balancer --config FILE --listen IP:PORT`).
// It owns one thing, the route table, read from the JSON file the daemon renders; SIGHUP swaps it.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { createLogger } from '../../util/log.js'
import { WakameError } from '../../util/errors.js'
import { parseBuiltinConfig } from './render.js'
import { AgentPool, backendCounts, buildTable, matchRoute, originsOf, pathnameOf, type RouteTable } from './table.js'
import { forward, sendText } from './forward.js'

/** Answered by the proxy itself (the lb's own health check), whatever the backends are doing. */
export const HEALTH_PATH = '/_wakame/health'

export interface BalancerOptions {
  /** JSON file rendered by `renderBuiltinConfig`; re-read on every reload. */
  configPath: string
  /** Address to accept clients on; port 0 picks a free port (see `handle.address`). */
  listen: { host: string, port: number }
  /** @default pino logger named `balancer` writing JSON to stderr */
  logger?: Logger
  /**
   * Install SIGHUP (reload) and SIGTERM/SIGINT (drain, then `process.exit(0)`) handlers. Leave on
   * in the balancer process: SIGHUP's default action would kill it. Turn off in-process (tests).
   * @default true
   */
  handleSignals?: boolean
  /** On stop, how long in-flight requests may take before their connections are cut. @default 10_000 */
  drainTimeoutMs?: number
  /** @default 3_000 */
  connectTimeoutMs?: number
  /** @default 1_048_576 */
  maxReplayBytes?: number
}

export interface BalancerHandle {
  /** Where the proxy actually listens. */
  readonly address: { host: string, port: number }
  /** Re-read the config file and swap the table; returns false (old table kept) if it is invalid. */
  reload (): boolean
  /** Stop accepting, let in-flight requests finish (up to the drain timeout), close backend sockets. */
  close (): Promise<void>
}

export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000
export const DEFAULT_CONNECT_TIMEOUT_MS = 3_000
export const DEFAULT_MAX_REPLAY_BYTES = 1_048_576

/** How often idle client connections are closed while draining (a busy one turns idle when done). */
const DRAIN_SWEEP_MS = 100

export async function runBalancer (opts: BalancerOptions): Promise<BalancerHandle> {
  const logger = opts.logger ?? createLogger('balancer')
  const drainTimeoutMs = opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS
  const forwardOpts = {
    connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    maxReplayBytes: opts.maxReplayBytes ?? DEFAULT_MAX_REPLAY_BYTES,
    logger
  }
  const pool = new AgentPool()
  // A bad file at start is fatal (the supervisor restarts us); at reload it only keeps the old table.
  let table: RouteTable = buildTable(parseBuiltinConfig(readFileSync(opts.configPath, 'utf8'), opts.configPath), pool)
  let closing: Promise<void> | undefined

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // The client must not reuse this connection. (Not setHeader('connection'): a later writeHead with
    // raw headers would then collapse repeated headers such as set-cookie.)
    if (closing) res.shouldKeepAlive = false
    const pathname = pathnameOf(req.url)
    if (pathname === HEALTH_PATH) { req.resume(); sendText(res, 200, 'ok\n'); return }
    const route = matchRoute(table, pathname)
    if (!route) { req.resume(); sendText(res, 404, `no route for ${pathname}\n`); return }
    if (route.backends.length === 0) { req.resume(); sendText(res, 503, `no ONLINE instance of ${route.service}\n`); return }
    forward(req, res, route, forwardOpts)
  }
  const server = createServer(onRequest)
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n')
    else socket.destroy()
    logger.debug({ err }, 'client error')
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.listen.port, opts.listen.host, () => { server.off('error', reject); resolve() })
  })
  const bound = server.address() as AddressInfo
  const address = { host: bound.address, port: bound.port }
  logger.info({ address, config: opts.configPath, backends: backendCounts(table) }, 'balancer started')

  const reload = (): boolean => {
    let next: RouteTable
    try {
      next = buildTable(parseBuiltinConfig(readFileSync(opts.configPath, 'utf8'), opts.configPath), pool, table)
    } catch (err) {
      logger.error({ err, config: opts.configPath }, 'reload failed: keeping the previous route table')
      return false
    }
    table = next // one assignment: a request sees the old table or the new one, never a mix
    const retired = pool.retainOnly(originsOf(next))
    logger.info({ backends: backendCounts(next), retired }, 'balancer reloaded')
    return true
  }

  const close = (): Promise<void> => {
    closing ??= new Promise<void>(resolve => {
      logger.info({ drainTimeoutMs }, 'balancer stopping')
      const sweep = setInterval(() => server.closeIdleConnections(), DRAIN_SWEEP_MS)
      const force = setTimeout(() => {
        logger.warn('drain timeout: cutting the remaining connections')
        server.closeAllConnections()
      }, drainTimeoutMs)
      server.close(() => {
        clearInterval(sweep)
        clearTimeout(force)
        pool.destroyAll()
        logger.info('balancer stopped')
        resolve()
      })
      server.closeIdleConnections()
    })
    return closing
  }

  if (opts.handleSignals ?? true) installSignals(logger, reload, close)
  return { address, reload, close }
}

function installSignals (logger: Logger, reload: () => boolean, close: () => Promise<void>): void {
  process.on('SIGHUP', () => { reload() })
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) { logger.warn({ signal }, 'second stop signal: exiting now'); process.exit(1) }
    stopping = true
    logger.info({ signal }, 'stop signal')
    void close().then(() => { logger.flush(() => process.exit(0)) })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

/** `127.0.0.1:8080`, `[::1]:8080` or `:8080` (all addresses). */
export function parseListen (text: string): { host: string, port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text)
  const port = Number(m?.[3])
  if (!m || port > 65_535) {
    throw new WakameError('BALANCER_ARGS_INVALID', `--listen ${text}: expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080`)
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port }
}

/** Minimal argv entry point (`--config FILE --listen HOST:PORT`) for running without the CLI. */
export async function balancerMain (argv: readonly string[]): Promise<BalancerHandle> {
  const value = (flag: string): string => {
    const i = argv.indexOf(flag)
    const v = i === -1 ? undefined : argv[i + 1]
    if (v === undefined) throw new WakameError('BALANCER_ARGS_INVALID', `missing ${flag}: usage: balancer --config FILE --listen HOST:PORT`)
    return v
  }
  return await runBalancer({ configPath: value('--config'), listen: parseListen(value('--listen')) })
}
