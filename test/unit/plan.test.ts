// Plan / dry run: the scheduler run forward on a copy, its changes listed as actions; nothing changes.
import { describe, expect, it } from 'vitest'
import type { Command } from '../../src/core/commands.js'
import { formatPlan, planCommand, type PlanOk } from '../../src/core/plan.js'
import { webSpec, World } from '../helpers/world.js'

function launched (): World {
  const w = new World()
  w.command({ type: 'launch', spec: webSpec() })
  w.run(30)
  return w
}

/** Plan `cmd` on the world's leader, checking that neither the document nor the memory moved. */
function plan (w: World, cmd?: Command): ReturnType<typeof planCommand> {
  const doc = JSON.stringify(w.doc)
  const mem = JSON.stringify([...w.mem.drainSince, ...w.mem.deadSince, ...w.mem.launchedSince, w.mem.lastLaunchFailure])
  const obs = w.observe()
  const obsBefore = JSON.stringify([...obs.nodes])
  const p = planCommand({ doc: w.doc, obs, mem: w.mem, now: w.now, term: 1, self: 'vm-1', ...(cmd ? { cmd } : {}) })
  expect(JSON.stringify(w.doc)).toBe(doc)
  expect(JSON.stringify([...w.mem.drainSince, ...w.mem.deadSince, ...w.mem.launchedSince, w.mem.lastLaunchFailure])).toBe(mem)
  expect(JSON.stringify([...obs.nodes])).toBe(obsBefore)
  return p
}

const ok = (p: ReturnType<typeof planCommand>): PlanOk => {
  if (!p.ok) throw new Error(`${p.code}: ${p.message}`)
  return p
}

describe('plan', () => {
  it('propagate: one place action on a node without that service, and what the command would answer', () => {
    const w = launched()
    const p = ok(plan(w, { type: 'propagate', service: 'app' }))
    expect(p.message).toBe('app: 1 -> 2 instances')
    expect(p.settled).toBe(true)
    expect(p.actions).toHaveLength(1)
    const a = p.actions[0]!
    expect(a.kind).toBe('place')
    const appNode = Object.values(w.doc.instances).find(i => i.service === 'app')!.node
    expect(a.what).toMatch(/^app-\d+ \(app\) on vm-\d$/)
    expect(a.what).not.toContain(`on ${appNode}`)
    // Doing it for real gives the same placement.
    w.command({ type: 'propagate', service: 'app' })
    w.run(5)
    const placed = Object.values(w.doc.instances).filter(i => i.service === 'app').map(i => `${i.id} (app) on ${i.node}`)
    expect(placed).toContain(a.what)
  })

  it('a command that cannot apply is the same error as the real one', () => {
    const w = launched()
    const p = plan(w, { type: 'propagate', service: 'db' })
    expect(p).toMatchObject({ ok: false, code: 'AT_MAX' })
    expect(plan(w, { type: 'migrate', instance: 'nope-1' })).toMatchObject({ ok: false, code: 'NOT_FOUND' })
  })

  it('more instances than room: a VM launch, then the instance placed on it', () => {
    const w = launched()
    const p = ok(plan(w, { type: 'scale', service: 'app', count: 4 }))
    const kinds = p.actions.map(a => a.kind)
    expect(kinds).toContain('launch')
    const launch = p.actions.find(a => a.kind === 'launch')!
    expect(launch.why).toBe('no node has room')
    expect(p.actions.some(a => a.kind === 'place' && a.what.includes('on new-vm-1') && a.step > launch.step)).toBe(true)
  })

  it('migrate: a move, then the old instance drained and stopped after the new one is ONLINE', () => {
    const w = launched()
    const www = Object.values(w.doc.instances).find(i => i.service === 'www')!
    const p = ok(plan(w, { type: 'migrate', instance: www.id }))
    const move = p.actions.find(a => a.kind === 'move')!
    expect(move.what).toMatch(new RegExp(`^${www.id} \\(www\\) from ${www.node} to vm-\\d as www-\\d+$`))
    const drain = p.actions.find(a => a.kind === 'drain' && a.what.includes(www.id))!
    const stop = p.actions.find(a => a.kind === 'stop' && a.what.includes(www.id))!
    expect(drain.why).toMatch(/^drain \(migrated to www-\d+ on vm-\d\)$/)
    expect(drain.step).toBeGreaterThan(move.step)
    expect(stop.step).toBeGreaterThan(drain.step)
  })

  it('shutdown: lb drained first, db last, then every VM but the one asked on terminated', () => {
    const w = launched()
    const p = ok(plan(w, { type: 'shutdown', askedOn: 'vm-1' }))
    // (Nothing depends on a stopping instance that still serves here, so drain and stop come together.)
    const drains = p.actions.filter(a => a.kind === 'drain' || a.kind === 'stop').map(a => a.what.split(' ')[1]!.split('-')[0])
    expect(drains[0]).toBe('lb')
    expect(drains.indexOf('app')).toBeLessThan(drains.indexOf('db'))
    const terms = p.actions.filter(a => a.kind === 'terminate')
    expect(terms.map(t => t.what).sort()).toEqual(['terminate vm-2', 'terminate vm-3'])
    expect(terms.every(t => t.why === 'cluster shutdown')).toBe(true)
    expect(p.settled).toBe(true)
  })

  it('without a command: what the leader does on its own (a crash loop moved, with why)', () => {
    const w = launched()
    expect(ok(plan(w)).actions).toEqual([])
    const www = Object.values(w.doc.instances).find(i => i.service === 'www')!
    w.nodes.get(www.node!)!.running.set(www.id, 'FAIL')
    const p = ok(plan(w))
    const move = p.actions.find(a => a.kind === 'move')!
    expect(move.what).toContain(`${www.id} (www) from ${www.node}`)
    expect(move.why).toMatch(/^crash loop on vm-\d \(crash loop: gave up after 5 failures; last: exited with code 3\); moving to www-\d+ on vm-\d/)
    expect(formatPlan(p).at(-1)).toBe('nothing was changed (dry run)')
  })
})
