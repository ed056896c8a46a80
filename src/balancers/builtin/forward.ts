// Forward one client request to a route's backends: stream both bodies, and retry the next backend
// when an attempt fails before any response byte and retrying cannot repeat a side effect.
import { request, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { Backend, Route } from './table.js'
import { attemptOrder } from './table.js'

export interface ForwardOptions {
  /** Give up connecting to a backend after this long and try the next one. @default 3_000 */
  connectTimeoutMs: number
  /** Request body bytes kept to replay on a retry; a larger body is not retried. @default 1_048_576 */
  maxReplayBytes: number
  logger: Logger
}

/** Methods whose repetition has no additional effect (RFC 9110 §9.2.2), so a retry is safe. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])

/** Failures where the backend never saw the request: always safe to retry. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'CONNECT_TIMEOUT'])

/** Failures where the backend may have seen the request (reused socket reset, hang-up, broken pipe). */
const SEND_FAILURES = new Set(['ECONNRESET', 'EPIPE'])

/** Per-connection headers (RFC 9110 §7.6.1) are not forwarded; `expect` was already answered by us. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect'])

/**
 * The client's request body, read once and written to the current attempt. Chunks are kept (up to a
 * limit) so a retry can resend what a failed attempt already consumed.
 */
class ReplayableBody {
  private chunks: Buffer[] = []
  private bytes = 0
  private target: ClientRequest | undefined
  /** Every byte read so far is still in `chunks`. */
  replayable = true
  ended = false

  constructor (private readonly req: IncomingMessage, maxBytes: number) {
    req.on('data', (chunk: Buffer) => {
      if (this.replayable) {
        this.bytes += chunk.length
        if (this.bytes > maxBytes) { this.replayable = false; this.chunks = [] } else this.chunks.push(chunk)
      }
      // Backpressure: stop reading the client while the backend socket is full.
      if (this.target && !this.target.write(chunk)) req.pause()
    })
    req.on('end', () => { this.ended = true; this.target?.end() })
  }

  /** Send everything read so far to `target`, then keep streaming into it. */
  attach (target: ClientRequest): void {
    this.target = target
    for (const c of this.chunks) target.write(c)
    target.on('drain', () => { if (this.target === target) this.req.resume() })
    if (this.ended) target.end()
    else this.req.resume()
  }

  detach (): void {
    this.target = undefined
  }
}

function errorCode (err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code
  return typeof code === 'string' ? code : 'UNKNOWN'
}

function requestHeaders (req: IncomingMessage): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  const listed = new Set(String(req.headers.connection ?? '').toLowerCase().split(',').map(s => s.trim()))
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined && !HOP_BY_HOP.has(k) && !listed.has(k)) out[k] = v
  }
  const client = req.socket.remoteAddress ?? ''
  const prior = req.headers['x-forwarded-for']
  out['x-forwarded-for'] = prior ? `${String(prior)}, ${client}` : client
  out['x-forwarded-host'] = req.headers['x-forwarded-host'] ?? req.headers.host ?? ''
  out['x-forwarded-proto'] = req.headers['x-forwarded-proto'] ?? 'http'
  return out
}

function responseHeaders (res: IncomingMessage): string[] {
  const listed = new Set(String(res.headers.connection ?? '').toLowerCase().split(',').map(s => s.trim()))
  const out: string[] = []
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
    const k = res.rawHeaders[i]!
    const lk = k.toLowerCase()
    if (!HOP_BY_HOP.has(lk) && !listed.has(lk)) out.push(k, res.rawHeaders[i + 1]!)
  }
  return out
}

export function sendText (res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) { res.destroy(); return }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** Proxy `req` to one of `route`'s backends (which must not be empty), answering on `res`. */
export function forward (req: IncomingMessage, res: ServerResponse, route: Route, opts: ForwardOptions): void {
  const order = attemptOrder(route)
  const headers = requestHeaders(req)
  const method = req.method ?? 'GET'
  const body = new ReplayableBody(req, opts.maxReplayBytes)
  let current: ClientRequest | undefined
  let clientGone = false

  // The client went away before we answered: abandon the backend request too.
  res.on('close', () => {
    if (!res.writableFinished) { clientGone = true; current?.destroy() }
  })

  const attempt = (i: number): void => {
    const backend: Backend | undefined = order[i]
    if (backend === undefined || clientGone) {
      if (!clientGone) sendText(res, 502, `bad gateway: no backend of ${route.service} answered (tried ${order.length})\n`)
      req.resume() // drain the unread body so the client connection stays usable
      return
    }
    let responded = false
    let connectTimer: NodeJS.Timeout | undefined
    const preq = request({ host: backend.host, port: backend.port, method, path: req.url, headers, agent: backend.agent })
    current = preq
    preq.on('socket', socket => {
      if (!socket.connecting) return
      // A partitioned backend drops SYNs: without this the OS would wait minutes.
      connectTimer = setTimeout(() => {
        preq.destroy(Object.assign(new Error(`connect to ${backend.origin} timed out`), { code: 'CONNECT_TIMEOUT' }))
      }, opts.connectTimeoutMs)
      socket.once('connect', () => clearTimeout(connectTimer))
    })
    preq.on('response', pres => {
      responded = true
      clearTimeout(connectTimer)
      if (clientGone) { pres.resume(); preq.destroy(); return }
      res.writeHead(pres.statusCode ?? 502, pres.statusMessage, responseHeaders(pres))
      pres.on('error', () => res.destroy())
      pres.on('aborted', () => res.destroy())
      pres.pipe(res)
    })
    preq.on('error', err => {
      clearTimeout(connectTimer)
      body.detach()
      const code = errorCode(err)
      if (responded || clientGone) {
        // The status line is out: the only honest signal left is cutting the client connection.
        res.destroy()
        return
      }
      const retry = CONNECT_FAILURES.has(code)
        ? body.replayable
        : SEND_FAILURES.has(code) && IDEMPOTENT.has(method) && body.replayable && body.ended
      opts.logger.warn({ backend: backend.id, origin: backend.origin, code, method, path: req.url, retry }, 'backend request failed')
      if (retry) attempt(i + 1)
      else {
        sendText(res, 502, `bad gateway: ${backend.id} of ${route.service} failed (${code})\n`)
        req.resume()
      }
    })
    body.attach(preq)
  }
  attempt(0)
}
