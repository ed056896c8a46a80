// The example web cluster behind each real balancer kind (HAProxy on 127.0.30, nginx on 127.0.31,
// Apache on 127.0.32), real daemons, under steady request loops: propagate, migrate, kill -9 of a node
// running only www/app instances, scale www to zero and back. Requests fail only where a service truly
// had no member (then 503), and the balancer applies no more changes than the coalescing bound.
// A kind whose server is not installed is skipped with a message (CI installs all three).
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { findProgram } from '../../src/balancers/exec.js'
import { KIND_PROGRAMS } from '../../src/balancers/kinds.js'
import type { StatusReport } from '../../src/core/status.js'
import { balancerUrl, EXAMPLE_SPEC, kill, settled, startCluster, type TestCluster } from '../helpers/cluster.js'

const KINDS = [
  { kind: 'haproxy', net: '127.0.30', file: 'haproxy.cfg' },
  { kind: 'nginx', net: '127.0.31', file: 'nginx.conf' },
  { kind: 'apache', net: '127.0.32', file: 'apache2.conf' }
] as const

/** The example, with the lb of this kind and www allowed to scale to zero. */
function specFor (kind: string): string {
  const dir = mkdtempSync(join(tmpdir(), `wakame-${kind}-spec-`))
  cpSync(dirname(EXAMPLE_SPEC), dir, { recursive: true })
  const text = readFileSync(EXAMPLE_SPEC, 'utf8')
    .replace('kind: builtin', `kind: ${kind}`)
    .replace(/(\n {2}www:\n(?: {4}.*\n)*? {4}min: )1/, '$10')
  if (!text.includes(`kind: ${kind}`) || !/www:[^]*?min: 0/.test(text)) throw new Error('the example spec changed shape: update specFor()')
  writeFileSync(join(dir, 'cluster.yaml'), text)
  return join(dir, 'cluster.yaml')
}

interface Traffic { ok: number, byStatus: Map<string, number>, firstSeen: Map<string, number>, failures: string[] }

/** Steady loops (fresh connections) on each path; counts answers per status and when each instance first answered. */
function traffic (base: string, paths: string[]): { stop: () => Promise<Record<string, Traffic>>, now: Record<string, Traffic> } {
  const now: Record<string, Traffic> = {}
  let running = true
  const loops = paths.map(async path => {
    const t: Traffic = { ok: 0, byStatus: new Map(), firstSeen: new Map(), failures: [] }
    now[path] = t
    while (running) {
      const at = Date.now()
      let key: string
      try {
        const res = await fetch(new URL(path, base), { signal: AbortSignal.timeout(5_000), headers: { connection: 'close' } })
        const body = await res.text()
        key = String(res.status)
        let inst = res.headers.get('x-wakame-instance') ?? undefined
        if (!inst) { try { inst = (JSON.parse(body) as { instance?: string }).instance } catch {} }
        if (res.ok) t.ok++
        else t.failures.push(`${new Date(at).toISOString()} ${path} HTTP ${res.status} ${body.slice(0, 80)}`)
        if (res.ok && inst && !t.firstSeen.has(inst)) t.firstSeen.set(inst, Date.now())
      } catch (err) {
        key = (err as Error).name
        t.failures.push(`${new Date(at).toISOString()} ${path} ${(err as Error).message}`)
      }
      t.byStatus.set(key, (t.byStatus.get(key) ?? 0) + 1)
      await new Promise(resolve => setTimeout(resolve, 10))
    }
  })
  return { now, stop: async () => { running = false; await Promise.all(loops); return now } }
}

/**
 * Only 503s, and only on a path whose service had no member at some point. On the `inFlight` paths
 * one 502 is also allowed: the one request the loop had in flight to a member at the instant it was
 * SIGKILLed. Apache answers a connection reset mid-request with 502 and does not retry a request
 * it has sent (nginx retries it on the next member, or answers 503 when there is none; HAProxy's
 * health checks take the member out).
 */
function expectClean (t: Record<string, Traffic>, mayLack: string[] = [], inFlight: string[] = []): void {
  for (const [path, r] of Object.entries(t)) {
    let reset = inFlight.includes(path) ? 1 : 0
    const lacks = (f: string) => mayLack.includes(path) && / HTTP 503 /.test(f)
    const bad = r.failures.filter(f => !lacks(f) && !(/ HTTP 502 /.test(f) && reset-- > 0))
    expect(bad, `${path}: ${JSON.stringify([...r.byStatus])}\n${bad.slice(0, 5).join('\n')}`).toEqual([])
    expect(r.ok, path).toBeGreaterThan(0)
  }
}

for (const { kind, net, file } of KINDS) {
  const installed = findProgram(KIND_PROGRAMS[kind]) !== undefined
  if (!installed) console.warn(`${KIND_PROGRAMS[kind][0]} is not installed: skipping the ${kind} end-to-end test (apt-get install ${KIND_PROGRAMS[kind][0]})`)

  describe.skipIf(!installed)(`the example web cluster behind ${kind}`, () => {
    let c: TestCluster
    const lbInst = (s: StatusReport) => s.services.find(v => v.name === 'lb')!.instances[0]!
    const lbNode = (s: StatusReport) => lbInst(s).node!
    const agentLog = (s: StatusReport) => readFileSync(join(c.vmDir(lbNode(s)), 'agent.log'), 'utf8')
    /** Changes the lb's runtime applied so far (reloads and runtime API changes), from its node's log. */
    const applied = (s: StatusReport) => (agentLog(s).match(/"msg":"(balancer reloaded|balancer members changed through the runtime API)"/g) ?? []).length
    /** When the lb node last re-rendered the balancer (the daemon learned of a change, plus its 50 ms window). */
    const renders = (s: StatusReport) => agentLog(s).split('\n').filter(l => l.includes(`"instance":"${lbInst(s).id}"`) && l.includes('"msg":"dependencies changed: files re-rendered"')).map(l => (JSON.parse(l) as { time: number }).time)

    beforeAll(async () => { c = await startCluster({ net, spec: specFor(kind) }) })
    afterAll(async () => { await c?.cleanup() })

    it(`launch: the lb runs ${kind} from its rendered, validated config; /api and / answer through it`, async () => {
      // www's min is 0 here, so launch starts none and the lb waits for one: ask for it.
      const r = await c.cli('launch_cluster', '--no-wait')
      expect(r.code, r.stdout + r.stderr).toBe(0)
      const w = await c.cli('scale', 'www', '1')
      expect(w.code, w.stdout + w.stderr).toBe(0)
      const s = await c.waitFor('all ONLINE', settled, 90_000)
      const lbDir = join(c.vmDir(lbNode(s)), 'data/instances', lbInst(s).id)
      expect(existsSync(join(lbDir, file)), `${lbDir}: ${existsSync(lbDir) ? readdirSync(lbDir).join(', ') : 'missing'}; ${JSON.stringify(s.services.find(v => v.name === 'lb'))}`).toBe(true)
      const lb = balancerUrl(s)
      expect((await fetch(new URL('/api', lb))).status).toBe(200)
      expect((await fetch(lb)).status).toBe(200)
    })

    it('propagate_service app under a request loop: 0 failures, the new app serves, at most 2 changes applied', async () => {
      const s0 = await c.waitFor('settled', settled)
      const before = applied(s0)
      const loop = traffic(balancerUrl(s0), ['/api', '/'])
      const r = await c.cli('propagate_service', 'app')
      expect(r.code, r.stdout + r.stderr).toBe(0)
      const s = await c.waitFor('two apps', x => settled(x) && x.services.find(v => v.name === 'app')!.current === 2)
      const fresh = s.services.find(v => v.name === 'app')!.instances.find(i => !s0.services.find(v => v.name === 'app')!.instances.some(o => o.id === i.id))!
      const deadline = Date.now() + 10_000
      while (!loop.now['/api']!.firstSeen.has(fresh.id) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
      const res = await loop.stop()
      expectClean(res)
      const seen = res['/api']!.firstSeen.get(fresh.id)
      expect(seen, `${fresh.id} never answered`).toBeDefined()
      const render = renders(s).filter(t => t <= seen!).at(-1)
      console.log(`[${kind}] e2e propagate: lb re-render → first request served by ${fresh.id}: ${render ? seen! - render : '?'} ms (plus the 50 ms render window); changes applied: ${applied(s) - before}`)
      expect(applied(s) - before).toBeLessThanOrEqual(2)
    })

    it('migrate_service www under a request loop: 0 failures, at most 3 changes applied', async () => {
      const s0 = await c.waitFor('settled', settled)
      const before = applied(s0)
      const www = s0.services.find(v => v.name === 'www')!.instances[0]!
      const loop = traffic(balancerUrl(s0), ['/', '/api'])
      const r = await c.cli('migrate_service', www.id)
      const res = await loop.stop()
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expectClean(res)
      const s = await c.waitFor('settled', settled)
      expect(s.services.find(v => v.name === 'www')!.instances.map(i => i.id)).not.toContain(www.id)
      console.log(`[${kind}] e2e migrate www: changes applied ${applied(s) - before}; ${res['/']!.ok} requests ok`)
      expect(applied(s) - before).toBeLessThanOrEqual(3)
    })

    it('kill -9 of a node running only www/app instances: only a service left without members may 503', async () => {
      const s0 = await c.waitFor('settled', settled)
      const before = applied(s0)
      const byNode = new Map<string, string[]>()
      for (const v of s0.services) for (const i of v.instances) byNode.set(i.node!, [...(byNode.get(i.node!) ?? []), v.name])
      const victim = [...byNode].find(([n, svcs]) => n !== s0.leader && n !== 'vm-1' && svcs.every(x => x === 'www' || x === 'app'))?.[0]
      expect(victim, JSON.stringify([...byNode])).toBeDefined()
      // www has one instance: if it was on the victim, / truly has no member until it is replaced.
      const wwwLost = s0.services.find(v => v.name === 'www')!.instances.every(i => i.node === victim)
      const loop = traffic(balancerUrl(s0), ['/', '/api'])
      kill(-c.vm(victim!).pgid, 'SIGKILL')
      const s = await c.waitFor('replacements ONLINE', x => settled(x) && !x.services.some(v => v.instances.some(i => i.node === victim)), 60_000)
      const res = await loop.stop()
      const onVictim = byNode.get(victim!)!
      const inFlight = kind === 'apache' ? [...(onVictim.includes('www') ? ['/'] : []), ...(onVictim.includes('app') ? ['/api'] : [])] : []
      expectClean(res, wwwLost ? ['/'] : [], inFlight)
      console.log(`[${kind}] e2e kill -9 ${victim} (${byNode.get(victim!)!.join(', ')}): ${JSON.stringify(Object.fromEntries(Object.entries(res).map(([p, r]) => [p, Object.fromEntries(r.byStatus)])))}; changes applied ${applied(s) - before}`)
      expect(applied(s) - before).toBeLessThanOrEqual(5)
    })

    it('scale www to 0 and back: / answers 503 while www has no instance, /api never fails', async () => {
      const s0 = await c.waitFor('settled', settled)
      const before = applied(s0)
      const loop = traffic(balancerUrl(s0), ['/', '/api'])
      expect((await c.cli('scale', 'www', '0')).code).toBe(0)
      await c.waitFor('www at 0', x => settled(x) && x.services.find(v => v.name === 'www')!.current === 0)
      const deadline = Date.now() + 5_000
      while (!(loop.now['/']!.byStatus.get('503')! > 0) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
      expect((await c.cli('scale', 'www', '1')).code).toBe(0)
      const s = await c.waitFor('www back', x => settled(x) && x.services.find(v => v.name === 'www')!.current === 1)
      const okBefore = loop.now['/']!.ok
      const back = Date.now() + 5_000
      while (loop.now['/']!.ok === okBefore && Date.now() < back) await new Promise(resolve => setTimeout(resolve, 20))
      const res = await loop.stop()
      expect(res['/']!.byStatus.get('503')).toBeGreaterThan(0)
      expectClean(res, ['/'])
      console.log(`[${kind}] e2e scale www 0 and back: ${JSON.stringify(Object.fromEntries(res['/']!.byStatus))} on /; changes applied ${applied(s) - before}`)
      expect(applied(s) - before).toBeLessThanOrEqual(4)
    })
  })
}
