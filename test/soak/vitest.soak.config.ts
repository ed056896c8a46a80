// `npm run soak`: the long fault runs (not in CI). One file at a time, minutes per test.
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.ts'],
    fileParallelism: false,
    // 5 minutes of faults plus bring-up and settling.
    testTimeout: 15 * 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/e2e/global-setup.ts']
  }
})
