// The main job, end to end on real processes: the example web cluster comes up through the builtin
// balancer, grows, moves, survives a killed node, and shuts down in reverse dependency order.
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { balancerUrl, kill, requestLoop, settled, startCluster, type TestCluster } from '../helpers/cluster.js'

let c: TestCluster

beforeAll(async () => { c = await startCluster({ net: '127.0.21' }) })
afterAll(async () => { await c?.cleanup() })

describe('the example web cluster', () => {
  it('launch_cluster brings db, www, app and lb ONLINE; /api through the balancer is computed with the db', async () => {
    const r = await c.cli('launch_cluster')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/lb <1 1 1>/)
    const s = await c.waitFor('all ONLINE', settled)
    expect(s.services.map(x => `${x.name}:${x.current}`)).toEqual(['db:1', 'www:1', 'app:1', 'lb:1'])
    const lb = balancerUrl(s)
    const a = await (await fetch(new URL('/api', lb))).json() as { hits: number, db: string }
    const b = await (await fetch(new URL('/api', lb))).json() as { hits: number, db: string }
    expect(b.hits).toBe(a.hits + 1) // the counter lives in the db
    const db = s.services.find(x => x.name === 'db')!.instances[0]!
    expect(a.db).toBe(`${db.ip}:${db.port}`)
    const page = await fetch(lb)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('wakame')
  })

  it('propagate_service app: two app instances ONLINE, both behind the balancer; at max it says so', async () => {
    const r = await c.cli('propagate_service', 'app')
    expect(r.code, r.stderr).toBe(0)
    const s = await c.waitFor('two apps', x => settled(x) && x.services.find(v => v.name === 'app')!.current === 2)
    const apps = s.services.find(v => v.name === 'app')!.instances
    expect(new Set(apps.map(i => i.node)).size).toBe(2)
    const loop = requestLoop(new URL('/api', balancerUrl(s)).toString(), 5)
    await new Promise(r => setTimeout(r, 1_500))
    const res = await loop.stop()
    expect(res.failed, res.failures.join('\n')).toBe(0)
    expect([...res.instances.keys()].sort()).toEqual(apps.map(i => i.id).sort())
    const atMax = await c.cli('propagate_service', 'db')
    expect(atMax.code).not.toBe(0)
    expect(atMax.stderr).toContain('db is at its max (1 instance); nothing changed')
  })

  it('GET /metrics on any node: Prometheus text that a parser reads, with membership, leader, services, cloud calls, balancer changes', async () => {
    const s = await c.waitFor('settled', settled)
    const scrape = async (node: string) => {
      const res = await fetch(`${c.api(node)}/metrics`)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
      const families = parsePrometheusTextFormat(await res.text())
      const value = (name: string, labels: Record<string, string> = {}) => {
        const f = families.find(x => x.name === name)
        expect(f, `${name} missing`).toBeDefined()
        const m = f!.metrics.find(x => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v))
        return m?.value !== undefined ? Number(m.value) : m?.count !== undefined ? Number(m.count) : undefined
      }
      return { families, value }
    }
    const leader = await scrape(s.leader!)
    const alive = s.nodes.filter(n => n.status === 'alive').length
    expect(leader.value('wakame_members', { status: 'alive' })).toBe(alive)
    expect(leader.value('wakame_leader')).toBe(1)
    expect(leader.value('wakame_term')).toBe(s.term)
    expect(leader.value('wakame_elections_total')).toBeGreaterThanOrEqual(1)
    const app = s.services.find(v => v.name === 'app')!
    expect(leader.value('wakame_service_instances', { service: 'app', state: 'desired' })).toBe(app.desired)
    expect(leader.value('wakame_service_instances', { service: 'app', state: 'online' })).toBe(app.instances.filter(i => i.state === 'ONLINE').length)
    // The leader launched the VMs of min_nodes through the provider, and proposed documents.
    expect(leader.value('wakame_provider_calls_total', { call: 'launch', outcome: 'ok' })).toBeGreaterThanOrEqual(2)
    expect(leader.value('wakame_scheduler_documents_proposed_total')).toBeGreaterThan(0)
    // Scheduler actions (placements, launches) and operator commands, counted where they were decided.
    expect(leader.value('wakame_events_total', { kind: 'decision' })).toBeGreaterThanOrEqual(4)
    expect(leader.value('wakame_events_total', { kind: 'command' })).toBeGreaterThanOrEqual(2)
    // The lb's node re-rendered and reloaded its balancer as app grew.
    const lbNode = s.services.find(v => v.name === 'lb')!.instances[0]!.node!
    const lb = await scrape(lbNode)
    expect(lb.value('wakame_balancer_changes_total', { how: 'reload' })).toBeGreaterThan(0)
    expect(lb.value('wakame_render_seconds')).toBeGreaterThan(0)
    const follower = s.nodes.find(n => n.id !== s.leader && n.status === 'alive')!.id
    expect((await scrape(follower)).value('wakame_leader')).toBe(0)
  })

  it('migrate_service of the www instance: a concurrent request loop sees 0 failed requests', async () => {
    const s0 = await c.status()
    const www = s0.services.find(v => v.name === 'www')!.instances[0]!
    const loop = requestLoop(balancerUrl(s0), 10)
    const r = await c.cli('migrate_service', www.id)
    const res = await loop.stop()
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const s = await c.status()
    const now = s.services.find(v => v.name === 'www')!.instances
    expect(now.map(i => i.id)).not.toContain(www.id)
    expect(now[0]!.node).not.toBe(www.node)
    expect(res.ok).toBeGreaterThan(20)
    expect(res.failed, res.failures.join('\n')).toBe(0)
    expect(res.instances.has(www.id) && res.instances.has(now[0]!.id)).toBe(true)
  })

  it('migrate_service of the db takes its volume along: the app reads the same value at the db\'s new address', async () => {
    const s0 = await c.waitFor('settled', settled)
    const lb = balancerUrl(s0)
    const put = await fetch(new URL('/api/kv/greeting', lb), { method: 'PUT', body: 'hello from before the move' })
    expect(put.status).toBeLessThan(300)
    const db = s0.services.find(v => v.name === 'db')!.instances[0]!
    const r = await c.cli('migrate_service', db.id)
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const s = await c.waitFor('settled', settled)
    const moved = s.services.find(v => v.name === 'db')!.instances[0]!
    expect(moved.node).not.toBe(db.node)
    expect(s.volumes.find(v => v.name === 'db-data')).toMatchObject({ attachedTo: moved.node })
    // The app learned the new address (on_change: reload) without being restarted by hand.
    const deadline = Date.now() + 10_000
    let body = ''
    while (Date.now() < deadline) {
      const res = await fetch(new URL('/api/kv/greeting', lb))
      body = await res.text()
      if (res.ok) break
      await new Promise(r => setTimeout(r, 200))
    }
    expect(body).toBe('hello from before the move')
    const api = await (await fetch(new URL('/api', lb))).json() as { db: string }
    expect(api.db).toBe(`${moved.ip}:${moved.port}`)
  })

  it('SIGKILL of a non-leader VM (its process group): its instances come back elsewhere, the balancer follows', async () => {
    const s0 = await c.waitFor('settled', settled)
    const lbNode = s0.services.find(v => v.name === 'lb')!.instances[0]!.node
    const dbNode = s0.services.find(v => v.name === 'db')!.instances[0]!.node
    // A node running app (not the leader, the balancer or the db).
    const victim = s0.services.find(v => v.name === 'app')!.instances.map(i => i.node!).find(n => n !== s0.leader && n !== lbNode && n !== dbNode)
    expect(victim, JSON.stringify(s0.services)).toBeDefined()
    const lost = s0.services.flatMap(v => v.instances).filter(i => i.node === victim).map(i => i.id)
    kill(-c.vm(victim!).pgid, 'SIGKILL')
    const s = await c.waitFor('replacements ONLINE', x => settled(x) && !x.services.some(v => v.instances.some(i => i.node === victim)))
    expect(s.services.find(v => v.name === 'app')!.current).toBe(2)
    const dead = s.nodes.find(n => n.id === victim)
    expect(dead === undefined || dead.status === 'dead').toBe(true)
    // The balancer only sends to live instances: every request succeeds and none reaches a lost one.
    const loop = requestLoop(new URL('/api', balancerUrl(s)).toString(), 5)
    await new Promise(r => setTimeout(r, 1_000))
    const res = await loop.stop()
    expect(res.failed, res.failures.join('\n')).toBe(0)
    for (const id of lost) expect(res.instances.has(id)).toBe(false)
  })

  it('shutdown_cluster stops lb first and db in the last step, then the VMs except the node asked', async () => {
    const firstStopped = new Map<string, number>()
    let polling = true
    const poll = (async () => {
      while (polling) {
        try {
          const s = await c.status()
          for (const svc of s.services) for (const i of svc.instances) if (i.phase !== 'run' || i.state === 'Stopping') if (!firstStopped.has(svc.name)) firstStopped.set(svc.name, Date.now())
        } catch {}
        await new Promise(r => setTimeout(r, 50))
      }
    })()
    const r = await c.cli('shutdown_cluster')
    polling = false
    await poll
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const t = (svc: string) => firstStopped.get(svc) ?? Infinity
    expect(t('lb')).toBeLessThan(t('app'))
    expect(t('app')).toBeLessThan(t('db'))
    const s = await c.waitFor('down', x => x.phase === 'down' && x.settled)
    expect(s.services.every(v => v.instances.length === 0)).toBe(true)
    // The document has let the other VMs go once their termination is done; the members' own view
    // of a terminated VM turns dead a moment later (its redial is refused), and then it leaves the list.
    const gone = await c.waitFor('only vm-1 left', x => x.nodes.filter(n => n.status !== 'dead').map(n => n.id).join() === 'vm-1', 15_000)
    expect(gone.phase).toBe('down')
    expect(gone.services.every(v => v.instances.length === 0)).toBe(true)
  })
})
