// db: a tiny key-value store over HTTP, keeping its data in WAKAME_VOLUME (one JSON file).
//   GET  /kv/:key   → 200 value (text) | 404
//   PUT  /kv/:key   → 204 (body up to 64 KiB)
//   POST /incr/:key → 200 {"key": ..., "value": n} (a missing key counts as 0)
//   GET  /health    → 200
// Every change is written before it is acknowledged (temp file, fsync, rename, fsync dir), with
// synchronous I/O: Node runs one handler at a time, so read-modify-write needs no lock, and a crash
// leaves either the old or the new file, never a torn one.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { fail, log, readBody, sendJson, sendText, serve } from './common.mjs'

const MAX_VALUE_BYTES = 64 * 1024
const MAX_KEY_LENGTH = 256

const volume = process.env.WAKAME_VOLUME
if (!volume) fail('WAKAME_VOLUME is not set: the db needs a volume for its data (give the service a volume in the spec)')
mkdirSync(volume, { recursive: true })
const dataFile = join(volume, 'kv.json')

/** Load the store, or start empty on first run. A corrupt file is fatal: never overwrite data we cannot read. */
function load () {
  let text
  try {
    text = readFileSync(dataFile, 'utf8')
  } catch (err) {
    if (err.code === 'ENOENT') return new Map()
    fail(`cannot read ${dataFile}: ${err.message}`)
  }
  try {
    const obj = JSON.parse(text)
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new Error('not a JSON object')
    return new Map(Object.entries(obj).map(([k, v]) => [k, String(v)]))
  } catch (err) {
    fail(`${dataFile} is corrupt (${err.message}); restore it from a backup or move it away to start empty`)
  }
}

function save (store) {
  const tmp = `${dataFile}.${process.pid}.tmp`
  const fd = openSync(tmp, 'w', 0o644)
  try {
    writeSync(fd, JSON.stringify(Object.fromEntries(store)))
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, dataFile)
  // The rename itself is only durable once the directory entry is on disk.
  const dir = openSync(volume, 'r')
  try { fsyncSync(dir) } finally { closeSync(dir) }
}

/** Apply one change and persist it; if the write fails the change is undone (and the caller gets a 500). */
function commit (key, value) {
  const previous = store.get(key)
  store.set(key, value)
  try {
    save(store)
  } catch (err) {
    if (previous === undefined) store.delete(key)
    else store.set(key, previous)
    throw err
  }
}

const store = load()
log('loaded', { file: dataFile, keys: store.size })

/** `/kv/a%20b` → `a b`; null when the key is missing, too long or badly encoded. */
function keyOf (path, prefix) {
  if (!path.startsWith(prefix)) return null
  try {
    const key = decodeURIComponent(path.slice(prefix.length))
    return key.length > 0 && key.length <= MAX_KEY_LENGTH ? key : null
  } catch {
    return null
  }
}

serve(async (req, res) => {
  const path = (req.url ?? '/').split('?')[0]
  if (path === '/health') return sendText(res, 200, 'ok\n')

  if (path.startsWith('/kv/')) {
    const key = keyOf(path, '/kv/')
    if (key === null) return sendJson(res, 400, { error: `bad key: 1 to ${MAX_KEY_LENGTH} characters, URL-encoded` })
    if (req.method === 'GET' || req.method === 'HEAD') {
      const value = store.get(key)
      return value === undefined ? sendJson(res, 404, { error: `no key ${key}` }) : sendText(res, 200, value)
    }
    if (req.method === 'PUT') {
      const body = await readBody(req, MAX_VALUE_BYTES)
      if (body === null) return sendJson(res, 413, { error: `value larger than ${MAX_VALUE_BYTES} bytes` })
      commit(key, body.toString('utf8'))
      res.writeHead(204).end()
      return
    }
    return sendJson(res, 405, { error: 'use GET or PUT' }, { allow: 'GET, HEAD, PUT' })
  }

  if (path.startsWith('/incr/')) {
    const key = keyOf(path, '/incr/')
    if (key === null) return sendJson(res, 400, { error: `bad key: 1 to ${MAX_KEY_LENGTH} characters, URL-encoded` })
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'use POST' }, { allow: 'POST' })
    req.resume() // no body expected; drain whatever came
    const current = store.get(key) ?? '0'
    if (!/^-?\d+$/.test(current)) return sendJson(res, 409, { error: `value of ${key} is not an integer` })
    const value = Number(current) + 1
    // No await between read and write: no other request can interleave, so the increment is atomic.
    commit(key, String(value))
    return sendJson(res, 200, { key, value })
  }

  sendJson(res, 404, { error: `no route ${path}` })
})
