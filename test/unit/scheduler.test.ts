// The scheduler, driven through a small deterministic world (test/helpers/world.ts).
import { describe, expect, it } from 'vitest'
import { planCloud } from '../../src/core/cloud-plan.js'
import type { Observed, ObservedNode } from '../../src/core/observed.js'
import { DEFAULT_SCHEDULER, newLeaderMemory, schedule } from '../../src/core/scheduler.js'
import { emptyDoc, type ClusterDoc } from '../../src/core/types.js'
import { webSpec, World } from '../helpers/world.js'

function launched (): World {
  const w = new World()
  expect(w.command({ type: 'launch', spec: webSpec() })).toContain('launching 4 services')
  w.run(30)
  return w
}

describe('scheduler', () => {
  it('brings services up by dependency level: db and www, then app, then lb', () => {
    const w = launched()
    const first = (svc: string) => w.starts.findIndex(s => s.startsWith(`${svc}-`))
    expect(first('db')).toBeLessThan(first('app'))
    expect(first('www')).toBeLessThan(first('lb'))
    expect(first('app')).toBeLessThan(first('lb'))
    for (const s of ['db', 'www', 'app', 'lb']) expect(w.online(s)).toHaveLength(1)
  })

  it('launches VMs up to min_nodes and no more than the work needs', () => {
    const w = launched()
    // 4 instances, 2 per node: 3 nodes (min_nodes) suffice; no VM for a node that is merely still joining.
    expect(w.launched).toBe(2)
    expect(Object.keys(w.doc.nodes)).toHaveLength(3)
    expect(w.doc.voters).toHaveLength(3)
  })

  it('propagate adds one instance on a node without one; at max it changes nothing', () => {
    const w = launched()
    expect(w.command({ type: 'propagate', service: 'app' })).toBe('app: 1 -> 2 instances')
    w.run(10)
    const apps = w.online('app')
    expect(apps).toHaveLength(2)
    expect(new Set(apps.map(a => a.split('@')[1])).size).toBe(2)
    const before = JSON.stringify(w.doc)
    expect(w.command({ type: 'propagate', service: 'db' })).toMatch(/^AT_MAX: db is at its max \(1 instance\); nothing changed/)
    expect(JSON.stringify(w.doc)).toBe(before)
  })

  it('names that are members of every object ("constructor", "__proto__") are unknown, never inherited', () => {
    const w = launched()
    const before = JSON.stringify(w.doc)
    expect(w.command({ type: 'propagate', service: 'constructor' })).toMatch(/^NOT_FOUND: no service "constructor"/)
    expect(w.command({ type: 'scale', service: 'toString', count: 1 })).toMatch(/^NOT_FOUND/)
    expect(w.command({ type: 'migrate', instance: '__proto__' })).toMatch(/^NOT_FOUND/)
    const www = Object.values(w.doc.instances).find(i => i.service === 'www')!
    expect(w.command({ type: 'migrate', instance: www.id, to: 'constructor' })).toMatch(/^NOT_FOUND: no node "constructor"/)
    expect(JSON.stringify(w.doc)).toBe(before)
  })

  it('a dead node: its instances come back elsewhere, it is terminated and leaves the voters', () => {
    const w = launched()
    const victim = w.online('app')[0]!.split('@')[1]!
    expect(victim).not.toBe('vm-1')
    w.kill(victim)
    w.nodes.get(victim)!.status = 'dead'
    w.run(40)
    // Its app is replaced at once; the node keeps its place (and vote) during the grace period.
    expect(w.online('app')).toHaveLength(1)
    expect(w.online('app')[0]).not.toContain(victim)
    expect(w.doc.voters).toContain(victim)
    w.run(100)
    expect(w.online('app')).toHaveLength(1)
    expect(w.online('app')[0]).not.toContain(victim)
    expect(w.doc.nodes[victim]).toBeUndefined()
    expect(w.doc.voters).not.toContain(victim)
    expect(Object.keys(w.doc.nodes).length).toBeGreaterThanOrEqual(3)
  })

  it('migrating a stateless instance starts the new one first and stops the old one after', () => {
    const w = launched()
    const old = Object.values(w.doc.instances).find(i => i.service === 'www')!
    expect(w.command({ type: 'migrate', instance: old.id })).toContain(`${old.id} -> www-`)
    let bothOnline = false
    w.run(30, () => { if (w.online('www').length === 2) bothOnline = true; expect(w.online('www').length).toBeGreaterThanOrEqual(w.doc.instances[old.id] ? 0 : 1) })
    expect(bothOnline).toBe(true)
    expect(w.doc.instances[old.id]).toBeUndefined()
    expect(w.online('www')).toHaveLength(1)
    expect(w.online('www')[0]).not.toContain(`@${old.node}`)
  })

  it('migrating a stateful instance stops it before its volume moves: never on two nodes at once', () => {
    const w = launched()
    const old = Object.values(w.doc.instances).find(i => i.service === 'db')!
    w.command({ type: 'migrate', instance: old.id })
    w.run(40, () => expect(w.runningOf('db').length).toBeLessThanOrEqual(1))
    const now = Object.values(w.doc.instances).find(i => i.service === 'db')!
    expect(now.id).not.toBe(old.id)
    expect(now.node).not.toBe(old.node)
    expect(w.doc.volumes['db-data']).toMatchObject({ attachedTo: now.node, wantAt: now.node })
    expect(w.online('db')).toHaveLength(1)
  })

  it('a migration with no room elsewhere waits for a new VM and never lands back on the node it left', () => {
    const w = launched()
    w.command({ type: 'scale', service: 'www', count: 2 })
    w.command({ type: 'scale', service: 'app', count: 2 })
    w.run(20)
    const old = Object.values(w.doc.instances).find(i => i.service === 'db')!
    w.command({ type: 'migrate', instance: old.id })
    let without = 0
    w.run(40, () => {
      expect(w.runningOf('db').length).toBeLessThanOrEqual(1)
      if (w.online('db').length === 0) without++
    })
    const now = Object.values(w.doc.instances).find(i => i.service === 'db')!
    expect(now.node).not.toBe(old.node)
    expect(w.online('db')).toHaveLength(1)
    expect(w.launched).toBe(3)
    // The old db kept serving while the new VM booted: the gap is stop, move the volume, start.
    expect(without).toBeLessThanOrEqual(4)
  })

  it('shutdown stops lb first and db in the last step, then terminates every VM but the one asked', () => {
    const w = launched()
    w.command({ type: 'shutdown', askedOn: 'vm-1' })
    w.run(40)
    const order = w.stops.map(s => s.split('-')[0])
    expect(order[0]).toBe('lb')
    expect(order.at(-1)).toMatch(/db|www/)
    expect(order.indexOf('app')).toBeLessThan(order.indexOf('db'))
    expect(Object.keys(w.doc.instances)).toEqual([])
    expect(Object.keys(w.doc.nodes)).toEqual(['vm-1'])
    expect(w.doc.voters).toEqual(['vm-1'])
  })

  it('shutdown after the db moved off the kept node leaves no volume move pending', () => {
    const w = launched()
    const db = Object.values(w.doc.instances).find(i => i.service === 'db')!
    w.command({ type: 'migrate', instance: db.id })
    w.run(30)
    expect(Object.values(w.doc.instances).find(i => i.service === 'db')!.node).not.toBe('vm-1')
    w.command({ type: 'shutdown', askedOn: 'vm-1' })
    w.run(40)
    expect(Object.keys(w.doc.nodes)).toEqual(['vm-1'])
    for (const v of Object.values(w.doc.volumes)) expect(v.wantAt).toBe(v.attachedTo)
    expect(Object.keys(w.doc.terminations)).toEqual([])
  })

  it('an instance without room waits for a new VM, within max_nodes', () => {
    const w = launched()
    w.command({ type: 'scale', service: 'app', count: 4 })
    w.command({ type: 'scale', service: 'www', count: 3 })
    w.run(40)
    expect(w.online('app')).toHaveLength(4)
    expect(w.online('www')).toHaveLength(3)
    expect(Object.keys(w.doc.nodes).length).toBeLessThanOrEqual(8)
    expect(w.command({ type: 'scale', service: 'app', count: 9 })).toMatch(/^BAD_REQUEST/)
  })
})

describe('scheduler: crash loops', () => {
  /** The node of www's instance starts crash-looping it (its supervisor gave up). */
  function crashWww (w: World): { id: string, node: string } {
    const inst = Object.values(w.doc.instances).find(i => i.service === 'www')!
    w.crashLoops.add(`www@${inst.node}`)
    w.nodes.get(inst.node!)!.running.set(inst.id, 'FAIL')
    return { id: inst.id, node: inst.node! }
  }

  it('an instance its node gave up on moves to another node and comes ONLINE there', () => {
    const w = launched()
    const bad = crashWww(w)
    w.run(20)
    expect(w.doc.instances[bad.id]).toBeUndefined()
    expect(w.stops).toContain(`${bad.id}@${bad.node}`)
    const www = Object.values(w.doc.instances).filter(i => i.service === 'www')
    expect(www).toHaveLength(1)
    expect(www[0]!.node).not.toBe(bad.node)
    expect(www[0]!.failedOn).toEqual([bad.node])
    expect(w.online('www')).toEqual([`${www[0]!.id}@${www[0]!.node}`])
    expect(w.log.some(n => n.startsWith(`${bad.id}: crash loop on ${bad.node}`) && n.includes(`moving to ${www[0]!.id} on ${www[0]!.node}`))).toBe(true)
  })

  it('after failing on restart.max_nodes nodes it stays FAIL with its error, and a new leader does not move it again', () => {
    const w = launched()
    for (const n of w.nodes.keys()) w.crashLoops.add(`www@${n}`)
    crashWww(w)
    w.run(40)
    const www = Object.values(w.doc.instances).filter(i => i.service === 'www')
    expect(www).toHaveLength(1)
    expect(new Set(www[0]!.failedOn)).toEqual(new Set(w.nodes.keys()))
    expect(www[0]!.gaveUp).toMatch(/^failed on 3 nodes \(.*; restart.max_nodes 3\): left FAIL; last error: crash loop: gave up after 5 failures; last: exited with code 3$/)
    const starts = w.starts.filter(x => x.startsWith('www-')).length
    expect(starts).toBe(3)
    // Nothing more happens, with this leader or a new one (the attempts are in the document).
    const before = JSON.stringify(w.doc)
    w.mem.drainSince.clear()
    w.run(20)
    expect(w.starts.filter(x => x.startsWith('www-')).length).toBe(starts)
    expect(schedule({ doc: w.doc, obs: w.observe(), mem: newLeaderMemory(), now: w.now + 100, term: 2, self: 'vm-1' }).next).toBeUndefined()
    expect(JSON.stringify(w.doc)).toBe(before)
    expect(w.launched).toBe(2) // a crash loop never launches VMs
    // Fixed (a new spec restarted it and it serves): no longer marked, its history kept.
    const id = www[0]!.id
    for (const n of w.nodes.values()) if (n.running.has(id)) n.running.set(id, 'ONLINE')
    w.run(2)
    expect(w.doc.instances[id]?.gaveUp).toBeUndefined()
    expect(w.doc.instances[id]?.failedOn).toHaveLength(3)
    expect(w.log).toContain(`${id}: ONLINE again on ${w.doc.instances[id]!.node} after its crash loop`)
  })

  it('a migration whose new instance crash-loops is called off: the old one stays', () => {
    const w = launched()
    const old = Object.values(w.doc.instances).find(i => i.service === 'www')!
    const to = [...w.nodes.keys()].find(n => n !== old.node)!
    w.crashLoops.add(`www@${to}`)
    expect(w.command({ type: 'migrate', instance: old.id, to })).toContain(`to ${to}`)
    w.run(20)
    expect(Object.values(w.doc.instances).filter(i => i.service === 'www').map(i => [i.id, i.node, i.phase, i.migratingTo])).toEqual([[old.id, old.node, 'run', undefined]])
    expect(w.online('www')).toEqual([`${old.id}@${old.node}`])
    expect(w.log.some(n => n.includes(`migration of ${old.id} called off, it stays on ${old.node}`))).toBe(true)
  })

  it('with no other node with room it stays FAIL where it is (no VM is launched for it)', () => {
    const w = new World()
    const spec = webSpec()
    spec.cluster.min_nodes = 1
    spec.cluster.max_instances_per_node = 8
    w.command({ type: 'launch', spec })
    w.run(30)
    const bad = crashWww(w)
    w.run(20)
    expect(w.doc.instances[bad.id]?.node).toBe(bad.node)
    expect(w.doc.instances[bad.id]?.phase).toBe('run')
    expect(w.launched).toBe(0)
    expect(w.log).toContain(`${bad.id}: crash loop on ${bad.node}; no other node with room where it has not failed, so it stays FAIL`)
  })
})

// Bugs the simulator found, driven directly through schedule() with a hand-made document.
describe('scheduler: zones and lost VMs', () => {
  const spec = webSpec()
  const node = (id: string, zone: string): ObservedNode => ({ id, status: 'alive', ip: `10.0.0.${id.slice(3)}`, peer: id, zone, current: true, committed: { term: 1, version: 5 }, instances: {} })
  function doc (over: Partial<ClusterDoc>): ClusterDoc {
    return {
      ...emptyDoc('test'),
      term: 1,
      version: 5,
      voters: ['vm-1', 'vm-2', 'vm-3'],
      nodes: {
        'vm-1': { id: 'vm-1', ip: '10.0.0.1', peer: 'vm-1', zone: 'z-a' },
        'vm-2': { id: 'vm-2', ip: '10.0.0.2', peer: 'vm-2', zone: 'z-a' },
        'vm-3': { id: 'vm-3', ip: '10.0.0.3', peer: 'vm-3', zone: 'z-b' }
      },
      spec,
      phase: 'up',
      desired: { db: 1, www: 0, app: 0, lb: 0 },
      seq: 10,
      ...over
    }
  }
  const observe = (...nodes: ObservedNode[]): Observed => ({ nodes: new Map(nodes.map(n => [n.id, n])) })

  it('a db placed outside its volume\'s zone (placed before the zone was known) is placed again in the zone', () => {
    // The answer of the attach that created the volume (in z-b) was lost; the db was re-placed on
    // vm-2 (z-a) before the document learnt the zone. Once it knows, the db moves to vm-3 (z-b).
    const d = doc({
      instances: { 'db-9': { id: 'db-9', service: 'db', node: 'vm-2', slot: 0, phase: 'run', volume: 'db-data' } },
      volumes: { 'db-data': { name: 'db-data', service: 'db', attachedTo: null, wantAt: 'vm-2', zone: 'z-b' } }
    })
    const s = schedule({ doc: d, obs: observe(node('vm-1', 'z-a'), node('vm-2', 'z-a'), node('vm-3', 'z-b')), mem: newLeaderMemory(), now: 1_000, term: 1, self: 'vm-1' })
    expect(s.next?.instances['db-9']).toMatchObject({ node: 'vm-3' })
    expect(s.next?.volumes['db-data']).toMatchObject({ wantAt: 'vm-3' })
    expect(planCloud(s.next!).filter(a => a.type === 'attach-volume')).toEqual([expect.objectContaining({ node: 'vm-3' })])
  })

  it('with no node in the volume\'s zone, the db waits for a VM launched in that zone', () => {
    const d = doc({
      nodes: { 'vm-1': { id: 'vm-1', ip: '10.0.0.1', peer: 'vm-1', zone: 'z-a' }, 'vm-2': { id: 'vm-2', ip: '10.0.0.2', peer: 'vm-2', zone: 'z-a' } },
      voters: ['vm-1', 'vm-2'],
      instances: { 'db-9': { id: 'db-9', service: 'db', node: 'vm-2', slot: 0, phase: 'run', volume: 'db-data' } },
      volumes: { 'db-data': { name: 'db-data', service: 'db', attachedTo: null, wantAt: 'vm-2', zone: 'z-b' } }
    })
    const s = schedule({ doc: d, obs: observe(node('vm-1', 'z-a'), node('vm-2', 'z-a')), mem: newLeaderMemory(), now: 1_000, term: 1, self: 'vm-1' })
    expect(s.next?.instances['db-9']).toMatchObject({ node: null })
    expect(Object.values(s.next!.launches).some(l => l.zone === 'z-b')).toBe(true)
  })

  it('a db whose volume is attached where it runs is never moved by the zone rule', () => {
    const d = doc({
      instances: { 'db-9': { id: 'db-9', service: 'db', node: 'vm-2', slot: 0, phase: 'run', volume: 'db-data' } },
      volumes: { 'db-data': { name: 'db-data', service: 'db', attachedTo: 'vm-2', wantAt: 'vm-2', zone: 'z-b' } }
    })
    const s = schedule({ doc: d, obs: observe(node('vm-1', 'z-a'), node('vm-2', 'z-a'), node('vm-3', 'z-b')), mem: newLeaderMemory(), now: 1_000, term: 1, self: 'vm-1' })
    expect((s.next ?? d).instances['db-9']).toMatchObject({ node: 'vm-2' })
  })

  it('a launched VM that was heard, then died before it joined, is given up after the dead grace (not the join deadline)', () => {
    // vm-4 booted, sent one heartbeat and was lost before the leader admitted it: it will never join.
    const d = doc({
      desired: { db: 0, www: 0, app: 0, lb: 0 },
      spec: { ...spec, cluster: { ...spec.cluster, min_nodes: 4 } },
      launches: { 'launch-7': { id: 'launch-7', term: 1, status: 'launched', vm: 'vm-4', reason: 'below min_nodes (4)' } }
    })
    const dead: ObservedNode = { ...node('vm-4', 'z-a'), status: 'dead', current: false }
    const obs = observe(node('vm-1', 'z-a'), node('vm-2', 'z-a'), node('vm-3', 'z-b'), dead)
    const mem = newLeaderMemory()
    let cur = d
    let now = 1_000
    const step = () => { const s = schedule({ doc: cur, obs, mem, now, term: 1, self: 'vm-1' }); if (s.next) cur = { ...s.next, version: cur.version + 1 } }
    step()
    expect(cur.launches['launch-7']?.status).toBe('launched') // not before the grace: a crashed daemon comes back
    now += DEFAULT_SCHEDULER.deadGraceMs
    step()
    expect(cur.launches['launch-7']).toMatchObject({ status: 'failed', error: expect.stringContaining('died before it joined') })
    expect(cur.terminations['vm-4']).toMatchObject({ status: 'pending' })
    expect(planCloud(cur)).toContainEqual(expect.objectContaining({ type: 'terminate', node: 'vm-4' }))
    // A replacement is decided at once (a lost VM is no reason to hold off launching), well before the join deadline.
    expect(Object.values(cur.launches).filter(l => l.status === 'pending')).toHaveLength(1)
    expect(now).toBeLessThan(DEFAULT_SCHEDULER.joinDeadlineMs)
  })
})
