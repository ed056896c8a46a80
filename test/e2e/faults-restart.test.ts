// Daemon restarts on real VMs (127.0.28.x): each local VM runs its daemon under an init
// (vm-init.ts) that restarts it, as systemd does on EC2, while the VM's services keep running and
// are adopted by the new daemon. Every daemon SIGKILLed at the same moment must come back to one
// leader and one document without restarting any service; the balancer keeps serving throughout
// (case 02: nothing rendered before the node knows the membership). One cluster per test.
import { afterEach, describe, expect, it } from 'vitest'
import type { StatusReport } from '../../src/core/status.js'
import { balancerUrl, kill, requestLoop, settled, type LoopResult, type TestCluster } from '../helpers/cluster.js'
import {
  agentLogLines, balancerBackends, describeStatus, instancesOf, procStartTime, registryVms, servicePids, settledCluster,
  statusAt, waitUntil, watchStatus
} from '../helpers/faults.js'

const NET = '127.0.28'
let c: TestCluster | undefined
let stops: Array<() => Promise<unknown>> = []

afterEach(async () => {
  await Promise.all(stops.map(async stop => await stop()))
  stops = []
  await c?.cleanup()
  c = undefined
})

/** Polls the balancer's rendered config every 20 ms and keeps each distinct one with its time. */
function watchBalancerFile (cl: TestCluster, vm: string, lb: string): { seen: Array<{ at: number, backends: string }>, stop: () => Promise<void> } {
  const seen: Array<{ at: number, backends: string }> = []
  let running = true
  const done = (async () => {
    while (running) {
      try {
        const b = JSON.stringify(balancerBackends(cl, vm, lb))
        if (seen.at(-1)?.backends !== b) seen.push({ at: Date.now(), backends: b })
      } catch {}
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  })()
  return { seen, stop: async () => { running = false; await done } }
}

/** Recorded by the full-restart test for the next one (the part that fails today: bug 2). */
let fullRestart: { loop: LoopResult, files: Array<{ at: number, backends: string }>, t0: number, rerenders: string[] } | undefined

describe('daemon restarts under the VM init', () => {
  it('every daemon SIGKILLed at once: one leader, one document, all ONLINE, no service restarted', async () => {
    const cl = await settledCluster(NET, x => { c = x })
    const s0 = await cl.status()
    const ids = s0.nodes.map(n => n.id)
    const lb = instancesOf(s0, 'lb')[0]!
    const pids0 = servicePids(cl, s0)
    const placement0 = s0.services.flatMap(v => v.instances.map(i => `${i.id}@${i.node}`)).sort()
    const daemons0 = new Map(ids.map(id => [id, cl.daemonPid(id)]))
    console.log(`before: ${describeStatus(s0)}; services ${[...pids0].map(([id, p]) => `${id}:${p.pid}`).join(' ')}`)
    const files = watchBalancerFile(cl, lb.node!, lb.id)
    const loop = requestLoop(new URL('/api', balancerUrl(s0)).toString(), 10)
    stops.push(files.stop, loop.stop)

    // All at the same moment: one synchronous loop of kill(2) calls, daemons only (not the inits).
    const t0 = Date.now()
    for (const pid of daemons0.values()) kill(pid, 'SIGKILL')
    const restartedAt = await waitUntil('every init to restart its daemon', () => ids.every(id => {
      try { const p = cl.daemonPid(id); return p !== daemons0.get(id) && procStartTime(p) !== undefined } catch { return false }
    }) ? Date.now() : undefined, 10_000, 20)
    const s1 = await waitUntil('one leader, one committed document on every node, all ONLINE', async () => {
      const all: StatusReport[] = await Promise.all(ids.map(async id => await statusAt(cl.api(id))))
      const leaders = new Set(all.map(s => s.leader))
      const docs = new Set(all.map(s => JSON.stringify(s.committed)))
      const s = all.find(x => x.answeredBy === x.leader)
      return leaders.size === 1 && !leaders.has(null) && docs.size === 1 && s && settled(s) ? s : undefined
    }, 30_000, 100)
    const recoveredMs = Date.now() - t0
    await files.stop()
    const r = await loop.stop()
    console.log(`all ${ids.length} daemons killed: restarted by their inits within ${restartedAt - t0} ms; one leader (${s1.leader}, term ${s1.term}) and one document (${s1.committed?.term}/${s1.committed?.version}) on every node, all ONLINE, ${recoveredMs} ms after the kill`)

    // Nothing was restarted or moved: the same processes serve the same instances on the same nodes.
    expect(s1.services.flatMap(v => v.instances.map(i => `${i.id}@${i.node}`)).sort()).toEqual(placement0)
    const pids1 = servicePids(cl, s1)
    for (const [id, p] of pids0) {
      expect(pids1.get(id)?.pid, `${id}'s process`).toBe(p.pid)
      expect(procStartTime(p.pid), `${id} (pid ${p.pid}) still the same live process`).toBe(p.startTime)
    }
    expect(registryVms(cl).filter(v => v.state !== 'running').map(v => v.id), 'VMs terminated').toEqual([])
    for (const id of ids) expect(agentLogLines(cl, id, /"daemon restarted"/).length, `${id} restarted once`).toBe(1)
    const rerenders = ids.flatMap(id => agentLogLines(cl, id, /re-rendered/).filter(l => (JSON.parse(l) as { time: number }).time >= t0).map(l => `${id}: ${l.slice(0, 300)}`))
    fullRestart = { loop: r, files: files.seen, t0, rerenders }
  })

  // Case 02. This failed until adopted instances were health-checked during adopt(), before the
  // daemon's first heartbeat: they were reported Starting and dropped from every view for ~300 ms.
  it('... and through all of it the balancer kept every member and no request failed (case 02)', () => {
    const f = fullRestart!
    const r = f.loop
    console.log(`request loop on /api across the restart: ${r.ok} ok, ${r.failed} failed${r.failed > 0 ? `; first failures:\n${r.failures.slice(0, 4).join('\n')}` : ''}`)
    console.log(`balancer.json backends over time: ${f.files.map(x => `+${x.at - f.t0} ms ${x.backends}`).join(' | ')}`)
    if (f.rerenders.length > 0) console.log(`re-renders after the kill:\n${f.rerenders.join('\n')}`)
    expect(f.files.length, 'balancer.json changed').toBe(1)
    expect(r.failed, r.failures.slice(0, 5).join('\n')).toBe(0)
  })

  // A refused redial makes the peer dead at once (by design: the daemon is gone), but its stateless
  // instances are replaced only after 3 s and dependents keep them meanwhile: a daemon restarted by
  // its init in ~250 ms moves nothing. (Until that grace, its instances moved and requests failed.)
  it('one daemon SIGKILLed alone: its init restarts it, nothing moves, no request fails', async () => {
    const cl = await settledCluster(NET, x => { c = x })
    const s0 = await cl.status()
    const victim = instancesOf(s0, 'app')[0]!.node!
    const observers = Object.fromEntries(s0.nodes.filter(n => n.id !== victim).map(n => [n.id, cl.api(n.id)]))
    const pids0 = [...servicePids(cl, s0)].filter(([, p]) => p.node === victim)
    const placement0 = s0.services.flatMap(v => v.instances.map(i => `${i.id}@${i.node}`)).sort()
    const seen: string[] = []
    let t0 = Date.now()
    const watch = watchStatus(observers, o => {
      const st = o.status?.nodes.find(n => n.id === victim)?.status
      if (st && st !== 'alive') seen.push(`+${o.at - t0} ms ${o.node} sees ${victim} ${st}`)
    }, 100)
    const loop = requestLoop(new URL('/api', balancerUrl(s0)).toString(), 10)
    stops.push(watch.stop, loop.stop)
    const before = cl.daemonPid(victim)
    t0 = Date.now()
    kill(before, 'SIGKILL')
    await waitUntil(`${victim}'s daemon back`, async () => {
      const p = cl.daemonPid(victim)
      return p !== before && (await statusAt(cl.api(victim))).leader !== null
    }, 15_000, 100)
    const s1 = await cl.waitFor('settled again', s => settled(s) && s.nodes.every(n => n.status === 'alive'), 30_000)
    await watch.stop()
    const r = await loop.stop()
    const pids1 = servicePids(cl, s1)
    console.log(`daemon of ${victim} killed and restarted; others saw: ${seen.slice(0, 6).join('; ') || 'always alive'}; after: ${describeStatus(s1)}`)
    console.log(`${victim}'s instances before: ${pids0.map(([id, p]) => `${id}(pid ${p.pid})`).join(' ')}; after: ${[...pids1].filter(([, p]) => p.node === victim).map(([id, p]) => `${id}(pid ${p.pid})`).join(' ') || 'none'}; requests ${r.ok} ok, ${r.failed} failed ${r.failures.slice(0, 3).join(' | ')}`)
    expect(s1.services.flatMap(v => v.instances.map(i => `${i.id}@${i.node}`)).sort()).toEqual(placement0)
    for (const [id, p] of pids0) expect(pids1.get(id)?.pid, `${id}'s process`).toBe(p.pid)
    expect(r.failed).toBe(0)
  })
})
