// Helpers shared by the example services (node built-ins only: they run straight from this folder).
// Each service is an HTTP server started by a wakame daemon with PORT, WAKAME_BIND and friends.
import { createServer } from 'node:http'

/** Give in-flight requests this long after SIGTERM; the daemon kills us if we take much longer. */
const STOP_GRACE_MS = 4_000

/** One JSON line per event on stdout: the daemon keeps a service's output as its log. */
export function log (msg, fields = {}) {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), service: process.env.WAKAME_SERVICE, instance: process.env.WAKAME_INSTANCE, msg, ...fields }) + '\n')
}

/** Print the reason and exit 1: a service that cannot run should fail loudly and at once. */
export function fail (message) {
  process.stderr.write(`${process.env.WAKAME_INSTANCE ?? 'service'}: ${message}\n`)
  process.exit(1)
}

export function sendJson (res, status, value, headers = {}) {
  const text = JSON.stringify(value) + '\n'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

export function sendText (res, status, text, headers = {}) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

/** The body as a Buffer, or null if it is larger than `maxBytes` (the caller answers 413). */
export function readBody (req, maxBytes) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    req.on('data', chunk => {
      size += chunk.length
      if (size > maxBytes) { req.removeAllListeners('data'); req.resume(); resolve(null); return }
      chunks.push(chunk)
    })
    req.on('end', () => { if (size <= maxBytes) resolve(Buffer.concat(chunks)) })
    req.on('error', reject)
  })
}

/**
 * Listen on WAKAME_BIND:PORT and stop gracefully on SIGTERM/SIGINT: stop accepting, close idle
 * keep-alive connections, let in-flight requests finish, exit 0. PORT=0 picks a free port; the
 * "listening" log line says which (tests rely on it).
 */
export function serve (handler) {
  const host = process.env.WAKAME_BIND || '127.0.0.1'
  const port = Number(process.env.PORT)
  if (process.env.PORT === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`PORT must be set to a port number (got ${JSON.stringify(process.env.PORT)})`)
  }
  const server = createServer((req, res) => {
    // A handler bug answers 500 instead of killing every other request with the process.
    Promise.resolve().then(() => handler(req, res)).catch(err => {
      log('handler error', { error: String(err?.stack ?? err), url: req.url })
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' })
      else res.destroy()
    })
  })
  let stopping = false
  const stop = signal => {
    if (stopping) return
    stopping = true
    log('stopping', { signal })
    server.close(() => { log('stopped'); process.exit(0) })
    server.closeIdleConnections()
    // Busy keep-alive connections turn idle when their response is done: close them then.
    setInterval(() => server.closeIdleConnections(), 100).unref()
    setTimeout(() => { log('stop grace expired'); process.exit(0) }, STOP_GRACE_MS).unref()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  server.on('error', err => fail(`cannot listen on ${host}:${port}: ${err.message}`))
  server.listen(port, host, () => {
    const a = server.address()
    log('listening', { address: a.address, port: a.port })
  })
  return server
}
