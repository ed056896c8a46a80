// The example web cluster services (examples/webcluster/*.mjs), each run as a real child process the
// way a daemon runs it: env in, PORT=0 (the "listening" log line tells the port), SIGHUP, SIGTERM.
import { afterEach, describe, expect, it } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { Agent, request, type IncomingHttpHeaders } from 'node:http'
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const exampleDir = fileURLToPath(new URL('../../examples/webcluster/', import.meta.url))

const children: ChildProcess[] = []
const cleanups: Array<() => void> = []
afterEach(async () => {
  await Promise.all(children.splice(0).map(async child => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }))
  for (const c of cleanups.splice(0)) c()
})

function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'wakame-example-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

interface Running { child: ChildProcess, port: number, stderr: () => string }

/** Start a service and resolve once it logs "listening"; reject if it exits first or takes too long. */
function startService (script: string, env: Record<string, string>, timeoutMs = 10_000): Promise<Running> {
  const child = spawn(process.execPath, [join(exampleDir, script)], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', WAKAME_BIND: '127.0.0.1', WAKAME_NODE: 'vm-1', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  children.push(child)
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString() })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not log "listening" within ${timeoutMs} ms: ${stderr}`)), timeoutMs)
    let buffered = ''
    child.stdout!.on('data', (c: Buffer) => {
      buffered += c.toString()
      let nl
      while ((nl = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        try {
          const entry = JSON.parse(line) as { msg?: string, port?: number }
          if (entry.msg === 'listening' && typeof entry.port === 'number') {
            clearTimeout(timer)
            resolve({ child, port: entry.port, stderr: () => stderr })
          }
        } catch {}
      }
    })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`${script} exited with ${code} before listening: ${stderr}`)) })
  })
}

function waitExit (child: ChildProcess, timeoutMs = 10_000): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs)
    child.once('exit', code => { clearTimeout(timer); resolve(code) })
  })
}

interface Reply { status: number, body: string, headers: IncomingHttpHeaders }

/** node:http, not fetch: fetch would normalize `/../x` away before it reaches the server. */
function http (port: number, path: string, opts: { method?: string, body?: string, agent?: Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', agent: opts.agent ?? false }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }))
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

async function until<T> (probe: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (ok(v)) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** Rewrite the dependency view as the daemon does: temp file, then rename. */
function writeDeps (path: string, version: number, db: Array<{ id: string, port: number }>): void {
  const view = { version, service: 'app', instance: 'app-4', deps: { db: db.map(d => ({ id: d.id, node: 'vm-1', ip: '127.0.0.1', port: d.port })) } }
  writeFileSync(path + '.tmp', JSON.stringify(view))
  renameSync(path + '.tmp', path)
}

describe('example db', () => {
  it('refuses to start without WAKAME_VOLUME', async () => {
    const child = spawn(process.execPath, [join(exampleDir, 'db.mjs')], { env: { PATH: process.env.PATH ?? '', PORT: '0' }, stdio: ['ignore', 'ignore', 'pipe'] })
    children.push(child)
    let stderr = ''
    child.stderr!.on('data', (c: Buffer) => { stderr += c.toString() })
    expect(await waitExit(child)).toBe(1)
    expect(stderr).toMatch(/WAKAME_VOLUME is not set/)
  })

  it('keeps its data across a restart', async () => {
    const volume = tempDir()
    const env = { WAKAME_VOLUME: volume, WAKAME_INSTANCE: 'db-1', WAKAME_SERVICE: 'db' }
    const first = await startService('db.mjs', env)
    expect((await http(first.port, '/health')).status).toBe(200)
    expect((await http(first.port, '/kv/greeting', { method: 'PUT', body: 'hello wakame' })).status).toBe(204)
    expect(JSON.parse((await http(first.port, '/incr/n', { method: 'POST' })).body)).toEqual({ key: 'n', value: 1 })
    expect(JSON.parse((await http(first.port, '/incr/n', { method: 'POST' })).body)).toEqual({ key: 'n', value: 2 })
    expect((await http(first.port, '/kv/missing')).status).toBe(404)
    expect((await http(first.port, '/kv/big', { method: 'PUT', body: 'x'.repeat(65 * 1024) })).status).toBe(413)
    first.child.kill('SIGTERM')
    expect(await waitExit(first.child)).toBe(0)

    const second = await startService('db.mjs', env)
    expect(await http(second.port, '/kv/greeting')).toMatchObject({ status: 200, body: 'hello wakame' })
    expect(JSON.parse((await http(second.port, '/incr/n', { method: 'POST' })).body)).toEqual({ key: 'n', value: 3 })
    expect((await http(second.port, '/kv/big')).status).toBe(404)
    expect(readdirSync(volume)).toEqual(['kv.json']) // no temp file left behind
  })
})

describe('example app', () => {
  it('computes /api with the db and follows the db when the dependency view changes', async () => {
    const db1 = await startService('db.mjs', { WAKAME_VOLUME: tempDir(), WAKAME_INSTANCE: 'db-1' })
    const db2 = await startService('db.mjs', { WAKAME_VOLUME: tempDir(), WAKAME_INSTANCE: 'db-2' })
    const depsFile = join(tempDir(), 'deps.json')
    writeDeps(depsFile, 1, [{ id: 'db-1', port: db1.port }])
    const app = await startService('app.mjs', {
      WAKAME_INSTANCE: 'app-4', WAKAME_SERVICE: 'app', WAKAME_DEPS_FILE: depsFile, WAKAME_DEP_DB: `127.0.0.1:${db1.port}`
    })
    const api = async (): Promise<Reply> => await http(app.port, '/api')

    const r1 = await api()
    expect(r1.status).toBe(200)
    expect(JSON.parse(r1.body)).toEqual({ instance: 'app-4', node: 'vm-1', db: `127.0.0.1:${db1.port}`, hits: 1 })
    expect(JSON.parse((await api()).body).hits).toBe(2)
    expect((await http(app.port, '/api/kv/color', { method: 'PUT', body: 'green' })).status).toBe(204)
    expect(await http(app.port, '/api/kv/color')).toMatchObject({ status: 200, body: 'green' })
    expect(await http(db1.port, '/kv/color')).toMatchObject({ status: 200, body: 'green' }) // really stored in db-1

    // The db moves: the daemon rewrites the view, then sends SIGHUP (on_change: reload).
    writeDeps(depsFile, 2, [{ id: 'db-2', port: db2.port }])
    app.child.kill('SIGHUP')
    const moved = await until(api, r => r.status === 200 && JSON.parse(r.body).db === `127.0.0.1:${db2.port}`, 'the app to use db-2')
    expect(JSON.parse(moved.body).hits).toBe(1) // counted by db-2, which starts empty
    expect((await http(app.port, '/api/kv/color')).status).toBe(404)

    // No db ONLINE (noticed from the file alone, no signal): 503, while the app stays healthy.
    writeDeps(depsFile, 3, [])
    const none = await until(api, r => r.status === 503, 'a 503 with no db')
    expect(JSON.parse(none.body)).toEqual({ error: 'no db instance is ONLINE' })
    expect((await http(app.port, '/health')).status).toBe(200)

    // The db listed but dead: 502 with a JSON error, still healthy.
    writeDeps(depsFile, 4, [{ id: 'db-2', port: db2.port }])
    db2.child.kill('SIGTERM')
    expect(await waitExit(db2.child)).toBe(0)
    const dead = await until(api, r => r.status === 502, 'a 502 with a dead db')
    expect(JSON.parse(dead.body).error).toMatch(/^db at 127\.0\.0\.1:\d+ failed/)
    expect((await http(app.port, '/health')).status).toBe(200)

    // Graceful stop, even with an idle keep-alive connection open.
    const agent = new Agent({ keepAlive: true })
    cleanups.push(() => agent.destroy())
    expect((await http(app.port, '/health', { agent })).status).toBe(200)
    app.child.kill('SIGTERM')
    expect(await waitExit(app.child, 3_000)).toBe(0)
  })

  it('falls back to WAKAME_DEP_DB without a deps file, and answers 503 with no db at all', async () => {
    const db = await startService('db.mjs', { WAKAME_VOLUME: tempDir() })
    const withEnv = await startService('app.mjs', { WAKAME_INSTANCE: 'app-1', WAKAME_DEP_DB: `127.0.0.1:${db.port},127.0.0.9:1` })
    expect(JSON.parse((await http(withEnv.port, '/api')).body)).toMatchObject({ db: `127.0.0.1:${db.port}`, hits: 1 })
    const alone = await startService('app.mjs', { WAKAME_INSTANCE: 'app-2' })
    expect(await http(alone.port, '/api')).toMatchObject({ status: 503 })
    expect((await http(alone.port, '/health')).status).toBe(200)
  })
})

describe('example www', () => {
  it('serves index.html, tags answers with the instance and rejects path traversal', async () => {
    const www = await startService('www.mjs', { WAKAME_INSTANCE: 'www-2', WAKAME_SERVICE: 'www' })
    for (const path of ['/', '/index.html']) {
      const r = await http(www.port, path)
      expect(r.status).toBe(200)
      expect(r.headers['content-type']).toBe('text/html; charset=utf-8')
      expect(r.headers['x-wakame-instance']).toBe('www-2')
      expect(r.body).toContain('wakame web cluster demo')
    }
    for (const path of ['/../package.json', '/%2e%2e/%2e%2e/%2e%2e/package.json', '/..%2f..%2fapp.mjs']) {
      const r = await http(www.port, path)
      expect(r.status, path).toBe(403)
      expect(r.body).not.toContain('"name"')
      expect(r.headers['x-wakame-instance']).toBe('www-2')
    }
    expect((await http(www.port, '/nope.txt')).status).toBe(404)
    expect((await http(www.port, '/health')).headers['x-wakame-instance']).toBe('www-2')
    expect((await http(www.port, '/', { method: 'POST', body: 'x' })).status).toBe(405)
    www.child.kill('SIGTERM')
    expect(await waitExit(www.child)).toBe(0)
  })
})
