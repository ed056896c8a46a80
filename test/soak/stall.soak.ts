// Case 03, long version (`npm run soak`, not in CI): one balancer and three app instances under a
// steady request loop; the daemon of the node running app-2 is frozen (SIGSTOP, its services keep
// serving) for 3 s every 30 s for 5 minutes. It must never be evicted anywhere, the balancer's
// member list must never change, (almost) no reload may happen, and no client request may fail.
// WAKAME_SOAK_MS, WAKAME_SOAK_PERIOD_MS and WAKAME_SOAK_STALL_MS change the schedule.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { balancerUrl, kill, requestLoop, settled, type TestCluster } from '../helpers/cluster.js'
import { balancerBackends, describeStatus, instancesOf, selfEvictionWindows, settledCluster, sleep, statusAt, waitUntil, watchStatus } from '../helpers/faults.js'

const NET = '127.0.29'
const SOAK_MS = Number(process.env.WAKAME_SOAK_MS ?? 5 * 60_000)
const PERIOD_MS = Number(process.env.WAKAME_SOAK_PERIOD_MS ?? 30_000)
const STALL_MS = Number(process.env.WAKAME_SOAK_STALL_MS ?? 3_000)

let c: TestCluster | undefined
let stops: Array<() => Promise<unknown>> = []
afterAll(async () => {
  await Promise.all(stops.map(async stop => await stop()))
  stops = []
  await c?.cleanup()
})

/** "balancer reloaded" lines in the balancer process's own log (each is one config reload). */
function balancerReloads (cl: TestCluster, vm: string, lb: string): number {
  return readFileSync(join(cl.vmDir(vm), 'data', 'instances', lb, 'output.log'), 'utf8').split('\n').filter(l => l.includes('balancer reloaded')).length
}

it(`a daemon frozen for ${STALL_MS} ms every ${PERIOD_MS} ms for ${Math.round(SOAK_MS / 1000)} s: never evicted, no balancer change, 0 failed requests`, async () => {
  const cl = await settledCluster(NET, x => { c = x })
  const sc = await cl.cli('scale', 'app', '3')
  expect(sc.code, sc.stdout + sc.stderr).toBe(0)
  const s0 = await cl.waitFor('3 app behind the balancer', s => settled(s) && s.services.find(v => v.name === 'app')!.current === 3, 120_000)
  const lb = instancesOf(s0, 'lb')[0]!
  const apps = instancesOf(s0, 'app')
  // app-2 is the second app instance; if the balancer shares its node, the next one that does not.
  const app2 = [apps[1]!, ...apps].find(i => i.node !== lb.node)!
  const victim = app2.node!
  const observers = Object.fromEntries(s0.nodes.filter(n => n.id !== victim).map(n => [n.id, cl.api(n.id)]))
  const backends0 = JSON.stringify(balancerBackends(cl, lb.node!, lb.id))
  const deps0 = JSON.stringify(lb.deps)
  const rerenders0 = lb.rerenders ?? 0
  const reloads0 = balancerReloads(cl, lb.node!, lb.id)
  console.log(`${describeStatus(s0)}\nfreezing the daemon of ${victim} (runs ${app2.id}); balancer ${lb.id} on ${lb.node}: ${backends0}`)

  const seen = new Map<string, Map<string, number>>()
  const changes: string[] = []
  const watch = watchStatus(observers, o => {
    if (!o.status) return
    const st = o.status.nodes.find(n => n.id === victim)?.status ?? 'missing'
    const m = seen.get(o.node) ?? new Map<string, number>()
    m.set(st, (m.get(st) ?? 0) + 1)
    seen.set(o.node, m)
    const l = instancesOf(o.status, 'lb')[0]
    if (l?.deps && JSON.stringify(l.deps) !== deps0) changes.push(`${new Date(o.at).toISOString()} ${o.node} reports lb deps ${JSON.stringify(l.deps)}`)
    try {
      const b = JSON.stringify(balancerBackends(cl, lb.node!, lb.id))
      if (b !== backends0) changes.push(`${new Date(o.at).toISOString()} balancer.json ${b}`)
    } catch (err) { changes.push(`balancer.json unreadable: ${(err as Error).message}`) }
  }, 250)
  const loop = requestLoop(new URL('/api', balancerUrl(s0)).toString(), 20)
  stops.push(watch.stop, loop.stop)
  const pid = cl.daemonPid(victim)
  const recoveries: number[] = []
  const start = Date.now()
  try {
    for (let cycle = 0; Date.now() - start + STALL_MS <= SOAK_MS; cycle++) {
      const t = start + cycle * PERIOD_MS
      // The schedule is the fault itself (wall time), not a wait for a condition.
      await sleep(Math.max(0, t - Date.now()))
      kill(pid, 'SIGSTOP')
      await sleep(STALL_MS)
      kill(pid, 'SIGCONT')
      const back = await waitUntil(`${victim} alive again everywhere`, async () => {
        const all = await Promise.all(Object.values(observers).map(async api => await statusAt(api)))
        return all.every(s => s.nodes.find(n => n.id === victim)?.status === 'alive') ? Date.now() : undefined
      }, 20_000, 100)
      recoveries.push(back - t - STALL_MS)
      console.log(`cycle ${cycle + 1}: frozen ${STALL_MS} ms at +${Math.round((t - start) / 1000)} s; alive again everywhere ${back - t - STALL_MS} ms after SIGCONT; balancer changes so far: ${changes.length}`)
    }
  } finally {
    kill(pid, 'SIGCONT')
  }
  await watch.stop()
  const r = await loop.stop()
  const s1 = await cl.status()
  const lb1 = instancesOf(s1, 'lb')[0]!
  const reloads = balancerReloads(cl, lb.node!, lb.id) - reloads0
  console.log(`soak of ${Math.round((Date.now() - start) / 1000)} s: ${recoveries.length} freezes; back to alive everywhere after SIGCONT in ${Math.min(...recoveries)}-${Math.max(...recoveries)} ms; ` +
    `statuses of ${victim} seen: ${[...seen].map(([n, m]) => `${n}: ${[...m].map(([k, v]) => `${k}×${v}`).join(' ')}`).join('; ')}; ` +
    `requests ${r.ok} ok, ${r.failed} failed; lb rerenders ${rerenders0} -> ${lb1.rerenders ?? 0}; balancer reloads ${reloads}`)
  // The frozen daemon must not judge its peers by its own freeze either.
  expect(selfEvictionWindows(cl, victim, start)).toEqual([])
  for (const [node, m] of seen) expect(m.has('dead'), `${node} saw ${victim} dead`).toBe(false)
  expect(changes, changes.slice(0, 10).join('\n')).toEqual([])
  // "Almost no reloads": at most one over the whole run (none is expected).
  expect((lb1.rerenders ?? 0) - rerenders0).toBeLessThanOrEqual(1)
  expect(reloads).toBeLessThanOrEqual(1)
  expect(r.failed, r.failures.slice(0, 10).join('\n')).toBe(0)
  expect(s1.services.flatMap(v => v.instances).filter(i => i.node === victim).map(i => i.id).sort())
    .toEqual(s0.services.flatMap(v => v.instances).filter(i => i.node === victim).map(i => i.id).sort())
})
