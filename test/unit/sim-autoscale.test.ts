// Autoscaling in the simulator: the real node loop of three nodes, the leader's scheduler deciding
// from the metric the app instances report (a synthetic load spread over the ONLINE ones, noisy).
import { describe, expect, it } from 'vitest'
import { loadSpecText } from '../../src/spec/load.js'
import { makePlan } from '../../src/sim/plan.js'
import { Simulation, type DesiredChange } from '../../src/sim/simulation.js'

const SPEC = loadSpecText(`cluster: { min_nodes: 3, max_nodes: 6, max_instances_per_node: 3 }
services:
  db: { command: [db], port: 6380, min: 1, max: 1 }
  app:
    command: [app]
    port: 8081
    depends_on: [db]
    min: 1
    max: 4
    health: { http: { path: /health } }
    scale: { policy: target, metric: reported, target: 0.6, warmup_ms: 3000, scale_out_cooldown_ms: 5000, scale_in_cooldown_ms: 10000, scale_in_window_ms: 10000 }
  lb:
    port: 8080
    depends_on: [app]
    balancer: { routes: [{ path: /, service: app }] }
`, 'autoscale.yaml', '/sim')

/** Low, then a burst that needs 3 instances (1.5 / 0.6 = 2.5), then low again. */
const load = (t: number): number => t >= 30_000 && t < 90_000 ? 1.5 : 0.2

async function simulate (seed: number): Promise<{ trace: DesiredChange[], violation: unknown }> {
  const plan = { ...makePlan(seed, { nodes: 3, calm: true }), faultEndMs: 5_000, livenessMs: 175_000 }
  const sim = new Simulation({ plan, spec: SPEC, load: { service: 'app', at: load, noise: 0.1 }, stopWhenConverged: false })
  const r = await sim.run()
  return { trace: sim.desiredTrace.filter(c => c.service === 'app'), violation: r.violation }
}

describe('simulator: autoscaling', () => {
  for (const seed of [1, 2, 3]) {
    it(`a synthetic load takes app from 1 to 3 and back to 1, without flapping (seed ${seed})`, async () => {
      const { trace, violation } = await simulate(seed)
      expect(violation).toBeUndefined()
      const steps = trace.map(c => `${c.from}->${c.to}`)
      // Out at once to 3 (not 1 -> 2 -> 3), then in one at a time.
      expect(steps).toEqual(['1->3', '3->2', '2->1'])
      const [out, in1, in2] = trace
      expect(out!.at).toBeGreaterThanOrEqual(30_000)
      expect(out!.at).toBeLessThan(40_000)
      // Scale-in only after the load dropped and the metric stayed low for the window.
      expect(in1!.at).toBeGreaterThanOrEqual(90_000 + 10_000)
      expect(in2!.at - in1!.at).toBeGreaterThanOrEqual(10_000)
      expect(trace.length).toBeLessThanOrEqual(4)
    }, 120_000)
  }

  it('a steady load with a noisy metric (±30 % per sample) for 10 simulated minutes: no flapping', async () => {
    for (const [seed, level] of [[4, 0.55], [5, 0.7], [6, 1.25], [7, 1.7], [8, 2.2]] as const) {
      const plan = { ...makePlan(seed, { nodes: 3, calm: true }), faultEndMs: 5_000, livenessMs: 600_000 }
      const sim = new Simulation({ plan, spec: SPEC, load: { service: 'app', at: () => level, noise: 0.3 }, stopWhenConverged: false })
      const r = await sim.run()
      expect(r.violation, `load ${level}`).toBeUndefined()
      const trace = sim.desiredTrace.filter(c => c.service === 'app')
      // Up to what the load needs (a noisy first sample may take two steps), then nothing.
      const shown = trace.map(c => `${c.from}->${c.to}@${Math.round(c.at / 1000)}s`).join(' ')
      expect(trace.length, `load ${level}: ${shown}`).toBeLessThanOrEqual(2)
      expect(trace.every(c => c.to > c.from), `load ${level}: ${shown}`).toBe(true)
      expect(trace.every(c => c.at < 60_000), `load ${level}: ${shown}`).toBe(true)
      // A metric changes in every heartbeat (~1,200 in 10 minutes), but it is not news: the
      // heartbeats' content revision, which makes receivers re-examine a heartbeat, stays low.
      for (const n of sim.nodes.values()) for (const m of n.core.membership.all()) expect(m.rev ?? 0).toBeLessThan(150)
    }
  }, 120_000)

  it('with faults and operator commands (partitions, crashes, lost VMs; seeds 100-109): every invariant holds, and app ends back at 1', async () => {
    for (let seed = 100; seed < 110; seed++) {
      const plan = makePlan(seed)
      // High from 20 s until 30 s after the faults end (so operator counts are overridden), then low.
      const at = (t: number): number => t >= 20_000 && t < plan.faultEndMs + 30_000 ? 1.5 : 0.2
      const sim = new Simulation({ plan: { ...plan, livenessMs: 120_000 }, spec: SPEC, load: { service: 'app', at, noise: 0.1 }, stopWhenConverged: false })
      const r = await sim.run()
      expect(r.violation, `seed ${seed}`).toBeUndefined()
      const trace = sim.desiredTrace.filter(c => c.service === 'app')
      expect(trace.at(-1)?.to, `seed ${seed}`).toBe(1)
      expect(Math.max(...trace.map(c => c.to)), `seed ${seed}`).toBeLessThanOrEqual(4)
    }
  }, 120_000)
})
