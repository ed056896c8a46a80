// The admin API answers what /v1/openapi.json documents: real answers of every route, successes and
// errors, are checked against the same zod schemas the document is generated from; HTTPS works
// when configured. (The schema-driven fuzz of the same document is test/api-fuzz.)
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { request } from 'node:http'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { z } from 'zod'
import { ROUTES, fastifyPath } from '../../src/api/routes.js'
import { ChangeAnswer, ErrorAnswer, EventsAnswer, HealthAnswer, StatusAnswer } from '../../src/api/schemas.js'
import { BUNDLE, ROOT, startCluster, type TestCluster } from '../helpers/cluster.js'

const SPEC = resolve(ROOT, 'test/fixtures/api/cluster.yaml')
let c: TestCluster
let token: string
const children: ChildProcess[] = []

beforeAll(async () => {
  c = await startCluster({ net: '127.0.29', spec: SPEC })
  token = readFileSync(c.tokenFile, 'utf8').trim()
})
afterAll(async () => {
  for (const ch of children) ch.kill('SIGKILL')
  await c?.cleanup()
})

async function call (method: string, path: string, body?: unknown, auth = true): Promise<{ status: number, json: unknown, type: string }> {
  const res = await fetch(`${c.first}${path}`, {
    method,
    headers: { ...(auth ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
  })
  const type = res.headers.get('content-type') ?? ''
  return { status: res.status, type, json: type.includes('json') ? await res.json() : await res.text() }
}

/** POST declaring a body of `length` bytes, sending only its start: the answer must come anyway. */
async function oversized (url: string, length: number): Promise<{ status: number, json: unknown }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': length } }, res => {
      let text = ''
      res.on('data', d => { text += String(d) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }); req.destroy() })
    })
    req.on('error', reject)
    req.write('{"spec":{"text":"')
  })
}

function conforms (schema: z.ZodType, value: unknown): void {
  const r = schema.safeParse(value)
  if (!r.success) throw new Error(`answer does not match its documented schema: ${JSON.stringify(r.error.issues.slice(0, 5))}\n${JSON.stringify(value).slice(0, 800)}`)
}

describe('admin API', () => {
  it('serves an OpenAPI document listing exactly the routes it serves', async () => {
    const { status, json } = await call('GET', '/v1/openapi.json', undefined, false)
    expect(status).toBe(200)
    const doc = json as { openapi: string, paths: Record<string, Record<string, { security?: unknown, responses: Record<string, unknown> }>> }
    expect(doc.openapi).toBe('3.1.0')
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map(m => `${m.toUpperCase()} ${p}`)).sort()
    expect(documented).toEqual(Object.values(ROUTES).map(r => `${r.method} ${r.path}`).sort())
    // Every state-changing route declares the token and its 401.
    for (const r of Object.values(ROUTES).filter(r => r.method === 'POST')) {
      const op = doc.paths[r.path]!.post!
      expect(op.security).toEqual([{ adminToken: [] }])
      expect(Object.keys(op.responses)).toContain('401')
    }
    // And a route that is not in the table does not exist.
    const missing = await call('GET', '/v1/secrets', undefined, true)
    expect(missing.status).toBe(404)
    conforms(ErrorAnswer, missing.json)
    expect(fastifyPath('/v1/services/{service}/scale')).toBe('/v1/services/:service/scale')
  })

  it('answers status and health as documented, before and after a launch', async () => {
    conforms(StatusAnswer, (await call('GET', '/v1/status', undefined, false)).json)
    conforms(HealthAnswer, (await call('GET', '/v1/health', undefined, false)).json)
    conforms(EventsAnswer, (await call('GET', '/v1/events', undefined, false)).json)
    const page = await call('GET', '/', undefined, false)
    expect(page.status).toBe(200)
    expect(page.type).toContain('text/html')

    const launched = await call('POST', '/v1/cluster/launch')
    expect(launched.status).toBe(200)
    conforms(ChangeAnswer, launched.json)
    const s = await c.waitFor('web ONLINE', s => s.services.some(svc => svc.name === 'web' && svc.instances.some(i => i.state === 'ONLINE')))
    conforms(StatusAnswer, s)
    conforms(StatusAnswer, (await call('GET', '/v1/status')).json)
    conforms(EventsAnswer, (await call('GET', '/v1/events?since=1&limit=5')).json)
  })

  it('answers every documented error with the documented shape and code, changing nothing', async () => {
    const before = (await call('GET', '/v1/status')).json as z.infer<typeof StatusAnswer>
    const cases: Array<[string, string, unknown, boolean, number]> = [
      ['POST', '/v1/services/web/propagate', undefined, false, 401],
      ['POST', '/v1/cluster/shutdown', undefined, false, 401],
      ['POST', '/v1/cluster/launch', '{not json', false, 401], // the token is checked before the body is read
      ['POST', '/v1/cluster/launch', '{not json', true, 400],
      ['POST', '/v1/cluster/launch', { spec: { text: 'services: [', file: 'x.yaml', dir: '/tmp' } }, true, 400],
      ['POST', '/v1/cluster/launch', { surprise: 1 }, true, 400],
      ['POST', '/v1/services/Web!/propagate', undefined, true, 400],
      ['POST', '/v1/services/nope/propagate', undefined, true, 404],
      ['POST', '/v1/services/web/scale', { count: -1 }, true, 400],
      ['POST', '/v1/services/web/scale', { count: 'two' }, true, 400],
      ['POST', '/v1/services/web/scale', { count: 9 }, true, 400], // above max
      ['POST', '/v1/services/web/scale', undefined, true, 400],
      ['POST', '/v1/instances/web-999/migrate', undefined, true, 404],
      ['POST', '/v1/instances/__proto__/migrate', undefined, true, 400],
      ['POST', '/v1/instances/web-1/migrate', { to: '__proto__' }, true, 400],
      ['POST', '/v1/instances/web-1/migrate', { to: 'no-such-node' }, true, 404],
      // A bad percent-encoding is refused before routing, in the same error shape.
      ['POST', '/v1/services/%E0%A4%A/propagate', undefined, true, 400]
    ]
    for (const [method, path, body, auth, code] of cases) {
      const r = await call(method, path, body, auth)
      expect({ method, path, body, status: r.status }).toEqual({ method, path, body, status: code })
      conforms(ErrorAnswer, r.json)
      const route = Object.values(ROUTES).find(rt => rt.method === method && new RegExp(`^${rt.path.replace(/\{\w+\}/g, '[^/]+')}$`).test(path))
      expect(Object.keys(route!.answers)).toContain(String(code))
    }
    // Too large: refused from the declared length, before the body is read.
    const big = await oversized(`${c.first}/v1/cluster/launch`, 9 * 1_048_576)
    expect(big.status).toBe(413)
    conforms(ErrorAnswer, big.json)
    const text = await fetch(`${c.first}/v1/cluster/shutdown`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: 'stop' })
    expect(text.status).toBe(415)
    const withBody = await call('POST', '/v1/cluster/shutdown', { now: true })
    expect(withBody.status).toBe(400)
    conforms(ErrorAnswer, withBody.json)

    const after = (await call('GET', '/v1/status')).json as z.infer<typeof StatusAnswer>
    expect(after.committed).toEqual(before.committed)
    expect(after.phase).toBe('up')
  })

  it('serves HTTPS when given a certificate, and the CLI talks to it', async () => {
    const dir = join(c.dir, 'tls')
    mkdirSync(dir, { recursive: true })
    const ip = `${c.net}.210`
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=wakame-test',
      '-addext', `subjectAltName=IP:${ip}`, '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
    execFileSync('chmod', ['600', join(dir, 'key.pem')])
    const child = spawn(process.execPath, [BUNDLE, 'agent', '--cluster', 'tls', '--node-id', 'tls-1', '--bind', ip, '--data-dir', join(dir, 'data'),
      '--psk-file', c.pskFile, '--admin-token-file', c.tokenFile, '--bootstrap-expect', '1', '--log-level', 'warn',
      '--api-tls-cert-file', join(dir, 'cert.pem'), '--api-tls-key-file', join(dir, 'key.pem')], { stdio: 'ignore' })
    children.push(child)
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') }
    const cli = (...args: string[]) => execFileSync(process.execPath, [BUNDLE, '--node', `https://${ip}:7600`, '--token-file', c.tokenFile, ...args], { env, encoding: 'utf8', timeout: 30_000 })
    const deadline = Date.now() + 20_000
    let out = ''
    while (Date.now() < deadline) {
      try { out = cli('status', '--json'); if ((JSON.parse(out) as { leader: string | null }).leader === 'tls-1') break } catch { /* starting */ }
      await new Promise(r => setTimeout(r, 250))
    }
    const s = JSON.parse(out) as z.infer<typeof StatusAnswer>
    conforms(StatusAnswer, s)
    expect(s.nodes[0]!.api).toBe(`https://${ip}:7600`)
    // Plain HTTP to the HTTPS port gets nothing useful; an untrusted certificate is refused.
    expect(await fetch(`http://${ip}:7600/v1/health`).then(r => r.status, () => 0)).not.toBe(200)
    expect(() => execFileSync(process.execPath, [BUNDLE, '--node', `https://${ip}:7600`, 'status'], { stdio: 'pipe', timeout: 30_000 })).toThrow()
    child.kill('SIGTERM')
  })
})
