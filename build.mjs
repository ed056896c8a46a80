// Bundles the daemon and the CLI (one entry point, src/main.ts) into dist/wakame.mjs with esbuild.
// One file means one thing to copy into an AMI, and no module resolution at start-up.
import { build } from 'esbuild'
import { chmodSync, readFileSync } from 'node:fs'

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'))

const common = {
  entryPoints: ['src/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  legalComments: 'none',
  define: { WAKAME_VERSION: JSON.stringify(pkg.version) },
  logLevel: 'warning',
}

await build({
  ...common,
  format: 'esm',
  outfile: 'dist/wakame.mjs',
  banner: {
    // Bundled CommonJS dependencies call require(); give them one in the ESM bundle.
    js: "#!/usr/bin/env node\nimport { createRequire as __wakameCreateRequire } from 'node:module'; const require = __wakameCreateRequire(import.meta.url);",
  },
})
chmodSync('dist/wakame.mjs', 0o755)

// The simulator (npm run sim): the same cores on simulated time.
await build({ ...common, entryPoints: ['src/sim/cli.ts'], format: 'esm', outfile: 'dist/sim.mjs', banner: { js: "import { createRequire as __wakameCreateRequire } from 'node:module'; const require = __wakameCreateRequire(import.meta.url);" } })
