// Running simulator seeds from tests.
import { makePlan } from '../../src/sim/plan.js'
import { Simulation } from '../../src/sim/simulation.js'

/** Fresh seeds per CI run: WAKAME_SIM_SEEDS per test file (two files run in parallel). */
export const FRESH_SEEDS = Number(process.env.WAKAME_SIM_SEEDS ?? 1_000)

/** This run's first fresh seed, from the clock (printed with any failure). */
export function freshStart (): number {
  return (Math.floor(Date.now() / 1000) * 7919) % 1_000_000_000
}

/** Every failure as one line with its seed and the command that replays it. */
export async function runSeeds (seeds: number[]): Promise<string[]> {
  const failures: string[] = []
  for (const seed of seeds) {
    const r = await new Simulation({ plan: makePlan(seed) }).run()
    if (!r.ok) failures.push(`seed ${seed}: ${r.violation!.checker}: ${r.violation!.message} — replay: npm run sim -- --seed ${seed}`)
  }
  return failures
}
