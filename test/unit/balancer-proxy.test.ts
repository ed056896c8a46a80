// The builtin reverse proxy, in-process against real loopback backends: routing, round-robin,
// retries, reloads under load and draining. Every server, agent and temp dir is closed in afterEach.
import { afterEach, describe, expect, it } from 'vitest'
import { Agent, createServer, request, type IncomingHttpHeaders, type Server } from 'node:http'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runBalancer, parseListen, type BalancerHandle } from '../../src/balancers/builtin/proxy.js'
import { renderBuiltinConfig, type BuiltinEndpoint } from '../../src/balancers/builtin/render.js'
import { silentLogger } from '../../src/util/log.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

async function listen (server: Server | ReturnType<typeof createNetServer>): Promise<number> {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

interface Backend {
  id: string
  port: number
  hits: number
  /** Open connections from the proxy right now. */
  open: number
  /** Requests whose connection closed before they were answered. */
  abandoned: number
  last?: { url: string, headers: IncomingHttpHeaders }
  /** Resolves the next request to `/slow` (the test then calls the returned release). */
  slow: Array<() => void>
  stop (): Promise<void>
}

async function startBackend (id: string): Promise<Backend> {
  const b: Backend = { id, port: 0, hits: 0, open: 0, abandoned: 0, slow: [], stop: async () => {} }
  const server = createServer((req, res) => {
    b.hits++
    b.last = { url: req.url ?? '', headers: req.headers }
    res.on('close', () => { if (!res.writableFinished) b.abandoned++ })
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const answer = (): void => {
        res.writeHead(req.method === 'POST' ? 201 : 200, { 'x-backend': id, 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] })
        res.end(chunks.length > 0 ? `${id}:${Buffer.concat(chunks).toString()}` : id)
      }
      if (req.url === '/slow') b.slow.push(answer)
      else answer()
    })
  })
  server.on('connection', sock => { b.open++; sock.on('close', () => b.open--) })
  b.port = await listen(server)
  let stopped = false
  b.stop = async () => {
    if (stopped) return
    stopped = true
    const closed = new Promise<void>(resolve => server.close(() => resolve()))
    server.closeIdleConnections()
    await closed
  }
  cleanups.push(async () => { server.closeAllConnections(); await b.stop() })
  return b
}

/** A port with nothing listening: connecting to it is refused. */
async function closedPort (): Promise<number> {
  const s = createNetServer()
  const port = await listen(s)
  await new Promise<void>(resolve => s.close(() => resolve()))
  return port
}

/** A backend that accepts, reads the request, then hangs up without answering. */
async function hangupBackend (): Promise<number> {
  const s = createNetServer(sock => sock.once('data', () => sock.destroy()))
  const port = await listen(s)
  cleanups.push(() => new Promise<void>(resolve => s.close(() => resolve())))
  return port
}

const ep = (id: string, port: number): BuiltinEndpoint => ({ id, node: 'vm-1', ip: '127.0.0.1', port })

function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'wakame-lb-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Write like the daemon does (temp + rename), so the proxy never reads a torn file. */
function writeConfig (path: string, text: string): void {
  writeFileSync(path + '.tmp', text)
  renameSync(path + '.tmp', path)
}

async function startProxy (configText: string, drainTimeoutMs?: number): Promise<{ lb: BalancerHandle, configPath: string }> {
  const configPath = join(tempDir(), 'lb.json')
  writeConfig(configPath, configText)
  const lb = await runBalancer({ configPath, listen: { host: '127.0.0.1', port: 0 }, logger: silentLogger(), handleSignals: false, drainTimeoutMs })
  cleanups.push(() => lb.close())
  return { lb, configPath }
}

function clientAgent (): Agent {
  const agent = new Agent({ keepAlive: true })
  cleanups.push(() => agent.destroy())
  return agent
}

interface Reply { status: number, body: string, headers: IncomingHttpHeaders }

function send (port: number, path: string, opts: { method?: string, body?: string, agent?: Agent, headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', agent: opts.agent ?? false, headers: opts.headers }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

async function waitFor (cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

describe('builtin proxy routing', () => {
  it('answers its own health check whatever the backends', async () => {
    const { lb } = await startProxy(renderBuiltinConfig([{ path: '/', service: 'www' }], {}))
    const r = await send(lb.address.port, '/_wakame/health')
    expect(r).toMatchObject({ status: 200, body: 'ok\n' })
  })

  it('routes by longest prefix and keeps path and query', async () => {
    const www = await startBackend('www-1')
    const app = await startBackend('app-1')
    const { lb } = await startProxy(renderBuiltinConfig(
      [{ path: '/', service: 'www' }, { path: '/api', service: 'app' }],
      { www: [ep('www-1', www.port)], app: [ep('app-1', app.port)] }))
    const port = lb.address.port
    expect((await send(port, '/api')).body).toBe('app-1')
    expect((await send(port, '/api/x?y=1')).body).toBe('app-1')
    expect(app.last?.url).toBe('/api/x?y=1')
    expect((await send(port, '/apix')).body).toBe('www-1')
    expect((await send(port, '/')).body).toBe('www-1')
  })

  it('answers 404 when no route matches and 503 naming the service when a route is empty', async () => {
    const { lb } = await startProxy(renderBuiltinConfig([{ path: '/api', service: 'app' }, { path: '/www', service: 'www' }], {}))
    const miss = await send(lb.address.port, '/other')
    expect(miss.status).toBe(404)
    const empty = await send(lb.address.port, '/www/index.html')
    expect(empty.status).toBe(503)
    expect(empty.body).toContain('no ONLINE instance of www')
    expect(empty.headers['content-type']).toMatch(/^text\/plain/)
  })

  it('spreads requests round-robin over the backends', async () => {
    const bs = await Promise.all(['www-1', 'www-2', 'www-3'].map(startBackend))
    const { lb } = await startProxy(renderBuiltinConfig([{ path: '/', service: 'www' }], { www: bs.map(b => ep(b.id, b.port)) }))
    const agent = clientAgent()
    for (let i = 0; i < 30; i++) expect((await send(lb.address.port, '/', { agent })).status).toBe(200)
    expect(bs.map(b => b.hits)).toEqual([10, 10, 10])
  })

  it('preserves status, headers and bodies and adds x-forwarded-*', async () => {
    const b = await startBackend('app-1')
    const { lb } = await startProxy(renderBuiltinConfig([{ path: '/', service: 'app' }], { app: [ep('app-1', b.port)] }))
    const big = 'x'.repeat(200_000) // larger than a socket buffer: exercises streaming both ways
    const r = await send(lb.address.port, '/post', { method: 'POST', body: big, headers: { host: 'demo.example:8080' } })
    expect(r.status).toBe(201)
    expect(r.headers['x-backend']).toBe('app-1')
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2'])
    expect(r.body).toBe(`app-1:${big}`)
    expect(b.last?.headers).toMatchObject({ 'x-forwarded-for': '127.0.0.1', 'x-forwarded-host': 'demo.example:8080', 'x-forwarded-proto': 'http', host: 'demo.example:8080' })
  })
})

describe('builtin proxy retries', () => {
  it('retries the next backend when one refuses connections: no failures', async () => {
    const a = await startBackend('app-2')
    const { lb } = await startProxy(renderBuiltinConfig([{ path: '/', service: 'app' }],
      { app: [ep('app-1', await closedPort()), ep('app-2', a.port), ep('app-3', await closedPort())] }))
    const agent = clientAgent()
    for (let i = 0; i < 15; i++) expect((await send(lb.address.port, '/', { agent })).body).toBe('app-2')
    // Refused connections never reached a backend, so even a POST is retried, body intact.
    for (let i = 0; i < 6; i++) expect(await send(lb.address.port, '/p', { method: 'POST', body: `n${i}`, agent })).toMatchObject({ status: 201, body: `app-2:n${i}` })
    expect(a.hits).toBe(21)
  })

  it('retries an idempotent request after a hang-up, but not a POST', async () => {
    const good = await startBackend('app-2')
    const { lb } = await startProxy(renderBuiltinConfig([{ path: '/', service: 'app' }],
      { app: [ep('app-1', await hangupBackend()), ep('app-2', good.port)] }))
    for (let i = 0; i < 4; i++) {
      const r = await send(lb.address.port, '/', i % 2 === 0 ? {} : { method: 'PUT', body: 'v' })
      expect(r).toMatchObject({ status: 200, body: i % 2 === 0 ? 'app-2' : 'app-2:v' })
    }
    const posts = []
    for (let i = 0; i < 4; i++) posts.push((await send(lb.address.port, '/', { method: 'POST', body: 'v' })).status)
    // Round-robin starts POSTs alternately on the hang-up backend (502, not retried) and the good one.
    expect(posts.sort()).toEqual([201, 201, 502, 502])
  })

  it('answers 502 when every backend fails', async () => {
    const { lb } = await startProxy(renderBuiltinConfig([{ path: '/', service: 'app' }], { app: [ep('app-1', await closedPort())] }))
    const r = await send(lb.address.port, '/')
    expect(r.status).toBe(502)
    expect(r.body).toMatch(/bad gateway/)
  })
})

describe('builtin proxy reload and stop', () => {
  it('keeps the old table when the new file is invalid', async () => {
    const b = await startBackend('www-1')
    const { lb, configPath } = await startProxy(renderBuiltinConfig([{ path: '/', service: 'www' }], { www: [ep('www-1', b.port)] }))
    writeConfig(configPath, '{"routes": [')
    expect(lb.reload()).toBe(false)
    expect((await send(lb.address.port, '/')).body).toBe('www-1')
  })

  it('swaps the table under a concurrent request loop without failing a request', async () => {
    const [a, b, c] = await Promise.all(['www-a', 'www-b', 'www-c'].map(startBackend)) as [Backend, Backend, Backend]
    const cfg = (...bs: Backend[]): string => renderBuiltinConfig([{ path: '/', service: 'www' }], { www: bs.map(x => ep(x.id, x.port)) })
    const { lb, configPath } = await startProxy(cfg(a, b))
    const agent = clientAgent()
    const failures: string[] = []
    const done = [0, 0, 0, 0, 0, 0, 0, 0]
    let running = true
    const workers = done.map(async (_, w) => {
      while (running) {
        try {
          const r = await send(lb.address.port, '/', { agent })
          if (r.status !== 200) failures.push(`${r.status} ${r.body}`)
        } catch (err) { failures.push(String(err)) }
        done[w]!++
      }
    })
    const total = (): number => done.reduce((x, y) => x + y, 0)
    /** Every worker finished a request that started after now. */
    const settle = async (): Promise<void> => {
      const base = [...done]
      await waitFor(() => done.every((n, w) => n >= base[w]! + 2), 'each worker to complete 2 requests')
    }
    try {
      await settle()
      const reloadAndSettle = async (text: string): Promise<void> => {
        writeConfig(configPath, text)
        expect(lb.reload()).toBe(true)
        await settle()
      }
      for (let i = 0; i < 10; i++) await reloadAndSettle(i % 2 === 0 ? cfg(b, c) : cfg(a, b))
      await reloadAndSettle(cfg(b, c)) // a removed
      const aHits = a.hits
      // Its idle keep-alive sockets are closed by the proxy, not left to time out.
      await waitFor(() => a.open === 0, 'the proxy to close its sockets to the removed backend', 2_000)
      await a.stop() // the removed instance goes away, as it would after a migration
      const before = total()
      await waitFor(() => total() >= before + 200, '200 more requests')
      expect(a.hits).toBe(aHits)
      await reloadAndSettle(cfg(c))
      const bHits = b.hits
      const cHits = c.hits
      await waitFor(() => total() >= before + 400, '200 more requests')
      expect(b.hits).toBe(bHits)
      expect(c.hits).toBeGreaterThan(cHits)
    } finally {
      running = false
      await Promise.all(workers)
    }
    expect(failures).toEqual([])
  })

  it('drains in-flight requests on close and refuses new connections', async () => {
    const b = await startBackend('app-1')
    const { lb } = await startProxy(renderBuiltinConfig([{ path: '/', service: 'app' }], { app: [ep('app-1', b.port)] }))
    const slow = send(lb.address.port, '/slow')
    await waitFor(() => b.slow.length === 1, 'the slow request to reach the backend')
    const closed = lb.close()
    await expect(send(lb.address.port, '/')).rejects.toThrow(/ECONNREFUSED/)
    b.slow[0]!()
    expect(await slow).toMatchObject({ status: 200, body: 'app-1' })
    await closed
  })
})

describe('builtin proxy abandonment', () => {
  it('cancels the backend request when the client goes away', async () => {
    const b = await startBackend('app-1')
    const { lb } = await startProxy(renderBuiltinConfig([{ path: '/', service: 'app' }], { app: [ep('app-1', b.port)] }))
    const req = request({ host: '127.0.0.1', port: lb.address.port, path: '/slow', agent: false })
    req.on('error', () => {}) // we destroy it ourselves
    req.end()
    await waitFor(() => b.slow.length === 1, 'the slow request to reach the backend')
    req.destroy()
    await waitFor(() => b.abandoned === 1, 'the backend to see its request abandoned')
  })

  it('cuts requests still running when the drain timeout expires', async () => {
    const b = await startBackend('app-1')
    const { lb } = await startProxy(renderBuiltinConfig([{ path: '/', service: 'app' }], { app: [ep('app-1', b.port)] }), 200)
    const stuck = send(lb.address.port, '/slow')
    await waitFor(() => b.slow.length === 1, 'the slow request to reach the backend')
    await lb.close() // resolves after ~200 ms although the backend never answers
    await expect(stuck).rejects.toThrow(/socket hang up|ECONNRESET/)
  })
})

describe('parseListen', () => {
  it('reads IPv4, bracketed IPv6 and rejects junk', () => {
    expect(parseListen('127.0.0.4:8080')).toEqual({ host: '127.0.0.4', port: 8080 })
    expect(parseListen('[::1]:80')).toEqual({ host: '::1', port: 80 })
    expect(() => parseListen('8080')).toThrow(/HOST:PORT/)
  })
})
