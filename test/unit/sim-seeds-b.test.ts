// The second half of CI's fresh simulator seeds (odd seeds), run in parallel with sim-seeds.test.ts.
import { describe, expect, it } from 'vitest'
import { FRESH_SEEDS, freshStart, runSeeds } from '../helpers/sim.js'

describe('simulator (second half)', () => {
  it(`${FRESH_SEEDS} more fresh seeds pass`, async () => {
    const start = freshStart() + 1
    const seeds = Array.from({ length: FRESH_SEEDS }, (_, i) => start + 2 * i)
    const t0 = performance.now()
    const failures = await runSeeds(seeds)
    console.log(`sim: ${FRESH_SEEDS} fresh seeds (${start}, ${start + 2}, ...) in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    expect(failures).toEqual([])
  }, 600_000)
})
