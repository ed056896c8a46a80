// app: the HTTP application tier. Every answer of /api is computed with the db.
//   GET /api            → {"instance", "node", "db": "ip:port", "hits": n} (n from POST /incr/hits on the db)
//   GET /api/kv/:key    → the db's GET /kv/:key
//   PUT /api/kv/:key    → the db's PUT /kv/:key
//   GET /health         → 200, whatever the db is doing (a db outage must not make the app look dead
//                         and get it restarted, or pulled from the balancer, for nothing)
// The db address comes from the config file the daemon renders from the spec's template
// (APP_CONFIG, in WAKAME_INSTANCE_DIR; {"db": ["ip:port", ...]}), or else from the raw dependency
// view in WAKAME_DEPS_FILE: re-read on SIGHUP (spec `on_change: reload`) and whenever the file
// changed, falling back to WAKAME_DEP_DB.
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { log, readBody, sendJson, sendText, serve } from './common.mjs'

const DB_TIMEOUT_MS = 2_000
const MAX_VALUE_BYTES = 64 * 1024
const depsFile = process.env.APP_CONFIG && process.env.WAKAME_INSTANCE_DIR
  ? join(process.env.WAKAME_INSTANCE_DIR, process.env.APP_CONFIG)
  : process.env.WAKAME_DEPS_FILE

/** `ip:port` → {ip, port}; the port is after the last colon so IPv6 works (`::1:6380`, `[::1]:6380`). */
function parseAddress (text) {
  const i = text.lastIndexOf(':')
  if (i <= 0) return null
  const port = Number(text.slice(i + 1))
  return Number.isInteger(port) && port > 0 ? { ip: text.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port } : null
}

/** The db address the daemon gave at start: first of WAKAME_DEP_DB (a comma-separated list). */
const envDb = process.env.WAKAME_DEP_DB ? parseAddress(process.env.WAKAME_DEP_DB.split(',')[0].trim()) : null

// What we last read from the deps file, keyed by inode+mtime+size: the daemon writes a new file and
// renames it over the old one, so any rewrite changes the inode even within one mtime tick.
let depsStamp = null
let depsDb = null
let badStamp = null // a file we could not parse: not retried (nor logged) until it changes

function readDeps (stamp) {
  try {
    const view = JSON.parse(readFileSync(depsFile, 'utf8'))
    // The rendered config lists addresses; the raw view lists endpoints.
    const first = Array.isArray(view?.db) ? (view.db.length ? parseAddress(String(view.db[0])) : null) : view?.deps?.db?.[0]
    const db = first && typeof first.ip === 'string' && Number.isInteger(first.port) ? { ip: first.ip, port: first.port, id: first.id } : null
    if (stamp !== depsStamp) log('dependency view', { version: view?.version, db: db && addressText(db) })
    depsStamp = stamp
    depsDb = db
  } catch (err) {
    // Keep the last good address: a bad file should not cut the app off a db that is still there.
    badStamp = stamp
    log('cannot read the dependency view; keeping the previous db', { file: depsFile, error: err.message })
  }
}

/** The db to use now, or null when the view says no db instance is ONLINE. */
function currentDb (force = false) {
  if (depsFile) {
    let st = null
    try { st = statSync(depsFile) } catch {}
    if (st) {
      const stamp = `${st.ino}:${st.mtimeMs}:${st.size}`
      if (force || (stamp !== depsStamp && stamp !== badStamp)) readDeps(stamp)
      if (depsStamp !== null) return depsDb
    }
  }
  return envDb
}

function addressText ({ ip, port }) {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
}

/** One db call with a deadline; throws on network errors and timeouts. */
async function dbCall (db, method, path, body) {
  const res = await fetch(`http://${addressText(db)}${path}`, { method, body, signal: AbortSignal.timeout(DB_TIMEOUT_MS) })
  return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) }
}

function dbFailed (res, db, err) {
  const reason = err?.name === 'TimeoutError' ? `no answer within ${DB_TIMEOUT_MS} ms` : String(err?.cause?.message ?? err?.message ?? err)
  sendJson(res, 502, { error: `db at ${addressText(db)} failed: ${reason}` })
}

process.on('SIGHUP', () => {
  const db = currentDb(true) // re-read even if the stamp looks unchanged
  log('reload', { db: db && addressText(db) })
})

serve(async (req, res) => {
  const path = (req.url ?? '/').split('?')[0]
  if (path === '/health') return sendText(res, 200, 'ok\n')
  if (path !== '/api' && !path.startsWith('/api/kv/')) return sendJson(res, 404, { error: `no route ${path}` })

  const db = currentDb()
  if (!db) { req.resume(); return sendJson(res, 503, { error: 'no db instance is ONLINE' }) }

  if (path === '/api') {
    if (req.method !== 'GET') return sendJson(res, 405, { error: 'use GET' }, { allow: 'GET' })
    let r
    try { r = await dbCall(db, 'POST', '/incr/hits') } catch (err) { return dbFailed(res, db, err) }
    if (r.status !== 200) return sendJson(res, 502, { error: `db at ${addressText(db)} answered ${r.status}` })
    const { value } = JSON.parse(r.body.toString())
    return sendJson(res, 200, { instance: process.env.WAKAME_INSTANCE, node: process.env.WAKAME_NODE, db: addressText(db), hits: value })
  }

  // /api/kv/:key → /kv/:key, the key passed on still URL-encoded.
  const dbPath = path.slice('/api'.length)
  let body
  if (req.method === 'PUT') {
    body = await readBody(req, MAX_VALUE_BYTES)
    if (body === null) return sendJson(res, 413, { error: `value larger than ${MAX_VALUE_BYTES} bytes` })
  } else if (req.method !== 'GET') {
    return sendJson(res, 405, { error: 'use GET or PUT' }, { allow: 'GET, PUT' })
  }
  let r
  try { r = await dbCall(db, req.method, dbPath, body) } catch (err) { return dbFailed(res, db, err) }
  if (r.status >= 500) return sendJson(res, 502, { error: `db at ${addressText(db)} answered ${r.status}` })
  // Pass the db's answer through (200 value, 204, 404, 400, 413).
  const headers = r.type ? { 'content-type': r.type } : {}
  if (r.status === 204) { res.writeHead(204, headers).end(); return }
  res.writeHead(r.status, { ...headers, 'content-length': r.body.length })
  res.end(r.body)
})
