// Builds what `npm run bench` runs into bench/.build/ (git-ignored): its own copy of the wakame
// bundle and the simulator (so a concurrent `npm run build` cannot swap the daemon under a running
// benchmark), and the benchmark runner itself. Same esbuild options as ../build.mjs.
import { build } from 'esbuild'
import { chmodSync, readFileSync } from 'node:fs'

const root = new URL('..', import.meta.url).pathname
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
const banner = "import { createRequire as __wakameCreateRequire } from 'node:module'; const require = __wakameCreateRequire(import.meta.url);"
const common = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  legalComments: 'none',
  define: { WAKAME_VERSION: JSON.stringify(pkg.version) },
  logLevel: 'warning',
  banner: { js: banner }
}
await Promise.all([
  build({ ...common, entryPoints: ['src/main.ts'], outfile: 'bench/.build/wakame.mjs', banner: { js: `#!/usr/bin/env node\n${banner}` } }),
  build({ ...common, entryPoints: ['src/sim/cli.ts'], outfile: 'bench/.build/sim.mjs' }),
  build({ ...common, entryPoints: ['bench/main.ts'], outfile: 'bench/.build/bench.mjs' })
])
chmodSync(new URL('.build/wakame.mjs', import.meta.url), 0o755)
