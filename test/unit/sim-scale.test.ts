// Large simulated clusters converge: one leader, the same document and membership everywhere.
// Speed is printed, not asserted (benchmarks measure it: npm run bench -- --only sim).
import { describe, expect, it } from 'vitest'
import { makePlan } from '../../src/sim/plan.js'
import { Simulation } from '../../src/sim/simulation.js'

describe('simulator at scale', () => {
  for (const nodes of [100, 1_000]) {
    it(`${nodes} nodes converge`, async () => {
      const r = await new Simulation({ plan: makePlan(11, { nodes, calm: true }) }).run()
      console.log(`sim: ${nodes} nodes converged at ${(r.convergedAt! / 1000).toFixed(1)} s simulated, in ${(r.realMs / 1000).toFixed(1)} s (${r.deliveries} deliveries)`)
      expect(r.violation).toBeUndefined()
      expect(r.nodes).toBe(nodes)
    }, 300_000)
  }
})
