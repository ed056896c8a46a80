// Proof that each invariant checker can fail: a deliberate bug of each kind is caught, and the same
// run without the bug is clean.
import { describe, expect, it } from 'vitest'
import { actsInTermOrder, actsOnlyAsLeaseholder, actsOnlyWithMajority } from '../../src/sim/invariants/acting.js'
import { crashLoopsMoveRight } from '../../src/sim/invariants/crash-loops.js'
import { desiredKept } from '../../src/sim/invariants/desired-kept.js'
import { noDuplicateVm } from '../../src/sim/invariants/no-duplicate-vm.js'
import { oneLeaderPerTerm } from '../../src/sim/invariants/one-leader-per-term.js'
import { statefulSingle } from '../../src/sim/invariants/stateful.js'
import type { Checker } from '../../src/sim/invariants/types.js'
import { makePlan, type SimPlan } from '../../src/sim/plan.js'
import { Simulation, type Mutation } from '../../src/sim/simulation.js'

function plan (over: Partial<SimPlan>): SimPlan {
  return { ...makePlan(7, { nodes: 3, calm: true }), faultEndMs: 30_000, livenessMs: 60_000, ...over }
}

const isolateLeader: Partial<SimPlan> = { faults: [{ at: 10_000, type: 'partition', target: 'leader', peers: 'all', oneWay: false, ms: 9_000 }] }
// Every launch answer is lost, and VMs boot slowly: the leader retries before they join.
const lostAnswers: Partial<SimPlan> = { initialNodes: 1, cloud: { capacityRate: 0, throttleRate: 0, lostAnswerRate: 1, delayMs: [5, 50], bootMs: [4_000, 6_000] } }
const scaled: Partial<SimPlan> = { workload: [{ at: 6_000, type: 'scale', service: 'www', count: 2 }, { at: 12_000, type: 'scale', service: 'app', count: 2 }] }

async function run (p: SimPlan, checker: Checker, mutation?: Mutation) {
  return await new Simulation({ plan: p, checkers: [checker], ...(mutation ? { mutation } : {}) }).run()
}

const cases: Array<[string, () => Checker, Mutation, Partial<SimPlan>]> = [
  ['a cut-off leader calling the cloud after its lease', actsOnlyAsLeaseholder, 'act-without-lease', isolateLeader],
  ['a cut-off leader calling the cloud without a majority', actsOnlyWithMajority, 'act-without-lease', isolateLeader],
  ['a deposed leader acting in the new leader\'s term', oneLeaderPerTerm, 'act-in-anothers-term', isolateLeader],
  ['a deposed leader acting in its old term after a newer leader acted', actsInTermOrder, 'act-in-old-term', isolateLeader],
  ['launch retries that ignore the idempotency token', noDuplicateVm, 'fresh-token-per-attempt', lostAnswers],
  ['a second copy of the db on another node', statefulSingle, 'stateful-twice', {}],
  ['a leader rolling back an acknowledged count', desiredKept, 'forget-desired', scaled],
  ['an instance moved for a crash loop that was not one', crashLoopsMoveRight, 'false-crash-report', {}]
]

describe('invariant checkers catch deliberate bugs', () => {
  for (const [what, make, mutation, over] of cases) {
    it(`${what}: caught by "${make().name}", and clean without the bug`, async () => {
      const bad = await run(plan(over), make(), mutation)
      expect(bad.ok, JSON.stringify(bad)).toBe(false)
      expect(bad.violation!.checker).toBe(make().name)
      const good = await run(plan(over), make())
      expect(good.violation?.checker === make().name ? good.violation.message : undefined).toBeUndefined()
    })
  }
})
