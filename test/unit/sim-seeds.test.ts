// The simulator in CI: the pinned seeds (every seed that once failed) and fresh seeds each run
// (even seeds here, odd ones in sim-seeds-b, so both halves run in parallel).
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { FRESH_SEEDS, freshStart, runSeeds } from '../helpers/sim.js'

const pinned = (JSON.parse(readFileSync(new URL('../sim/pinned-seeds.json', import.meta.url), 'utf8')) as { seeds: number[] }).seeds

describe('simulator', () => {
  it(`the ${pinned.length} pinned seeds pass`, async () => {
    expect(await runSeeds(pinned)).toEqual([])
  }, 120_000)

  it(`${FRESH_SEEDS} fresh seeds pass`, async () => {
    const start = freshStart()
    const seeds = Array.from({ length: FRESH_SEEDS }, (_, i) => start + 2 * i)
    const t0 = performance.now()
    const failures = await runSeeds(seeds)
    console.log(`sim: ${FRESH_SEEDS} fresh seeds (${start}, ${start + 2}, ...) in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    expect(failures).toEqual([])
  }, 600_000)
})
