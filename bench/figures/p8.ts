// P8 work: on the example web cluster (examples/webcluster: db, www, app, builtin balancer;
// min_nodes 3), `launch_cluster` from a lone first node → every service ONLINE and settled; then
// `propagate_service app` → the new instance serving /api through the balancer.
import { join } from 'node:path'
import type { StatusReport } from '../../src/core/status.js'
import type { Ctx } from '../lib/ctx.js'
import { load, sleep, waitUntil } from '../lib/proc.js'
import { record } from '../lib/results.js'
import { summarize } from '../lib/stats.js'
import { ROOT, startWakame, waitUntilSettled } from '../lib/wakame.js'

const NET = '127.0.104'

const settled = (s: StatusReport) => s.phase === 'up' && s.settled && s.services.every(v => v.current === v.desired && v.instances.every(i => i.state === 'ONLINE'))

export async function p8 (ctx: Ctx): Promise<void> {
  console.log(`\n== P8 work: the example web cluster (load ${load().join(' ')})`)
  const lb = load()[0]
  const launch: number[] = []
  const propagate: number[] = []
  const trials = ctx.quick ? 1 : 3
  for (let k = 0; k < trials; k++) {
    const c = await startWakame({ name: `p8-${k}`, net: NET, nodes: 1, spec: '', specFile: join(ROOT, 'examples/webcluster/cluster.yaml'), launch: false })
    try {
      await sleep(1_000)
      const t0 = Date.now()
      await c.change('/v1/cluster/launch')
      await waitUntil('the example cluster settled', async () => settled(await c.status()), 120_000, 50)
      launch.push(Date.now() - t0)
      await waitUntilSettled(c, 3, 60_000)
      await sleep(1_000)
      const s0 = await c.status()
      const before = new Set(s0.services.find(v => v.name === 'app')!.instances.map(i => i.id))
      const url = new URL('/api', s0.services.find(v => v.name === 'lb')!.urls![0]!).toString()
      const t1 = Date.now()
      await c.change('/v1/services/app/propagate')
      await waitUntil('the new app instance serving through the balancer', async () => {
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(2_000) })
          const body = await res.json() as { instance?: string }
          return body.instance !== undefined && !before.has(body.instance)
        } catch { return false }
      }, 60_000, 5)
      propagate.push(Date.now() - t1)
    } finally {
      await c.stop()
    }
  }
  record({ figure: 'P8', what: 'launch_cluster → all ONLINE (example, 3 VMs)', system: 'wakame', n: 3, unit: 's', samples: launch.map(x => x / 1000), loadBefore: lb, goal: '≤ 10 s', met: summarize(launch).median <= 10_000, note: 'POST /v1/cluster/launch on a lone first node → status settled (2 VMs launched, db/www, then app, then lb, health-checked)' })
  record({ figure: 'P8', what: 'propagate_service app → serving through the balancer', system: 'wakame', n: 3, unit: 's', samples: propagate.map(x => x / 1000), loadBefore: lb, goal: '≤ 3 s', met: summarize(propagate).median <= 3_000, note: 'POST propagate → first /api answer through the balancer from the new instance (polled every 5 ms)' })
}
