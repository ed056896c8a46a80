// `npm run bench` (every figure) and `npm run bench -- --only P3` (some): wakame measured side by
// side with serf and etcd on this machine, in one run. Prints a table, writes JSON to
// bench/results/<date>.json. See BENCHMARKS.md.
import { execFileSync } from 'node:child_process'
import { cpus, totalmem, release } from 'node:os'
import { join } from 'node:path'
import { Command } from 'commander'
import type { Ctx } from './lib/ctx.js'
import { cleanupAll, installCleanup, runReaper } from './lib/cleanup.js'
import { load } from './lib/proc.js'
import { computeRatios, rows, table, writeJson } from './lib/results.js'
import { ROOT } from './lib/wakame.js'
import { serfGroup, wakameGroup, type GroupFigure } from './figures/groups.js'
import { simFigures } from './figures/sim.js'
import { p3 } from './figures/p3.js'
import { p4 } from './figures/p4.js'
import { p8 } from './figures/p8.js'
import { profileIdle } from './figures/profile.js'

const ALL = ['SIM', 'P8', 'P4', 'P3', 'P5', 'P9', 'P2', 'P1', 'P7'] as const

function sh (cmd: string, args: string[]): string {
  try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() } catch { return '?' }
}

export function machine (): Record<string, unknown> {
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', 'src']).split('\n').filter(Boolean).length
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    ramGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10,
    kernel: release(),
    node: process.version,
    wakame: `${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}${dirty > 0 ? ` (+${dirty} uncommitted files in src/)` : ''}`,
    serf: sh('serf', ['version']).split('\n')[0],
    etcd: sh('etcd', ['--version']).split('\n')[0],
    haproxy: sh('haproxy', ['-v']).split('\n')[0],
    loadAtStart: load()
  }
}

async function main (): Promise<void> {
  if (process.argv[2] === '__reaper') { await runReaper(Number(process.argv[3]), process.argv[4]!); return }
  const list = (v: string) => v.split(',').map(s => s.trim()).filter(Boolean)
  const o = new Command('bench')
    .description('wakame benchmarks, side by side with serf and etcd')
    .option('--only <figures>', `comma-separated: ${ALL.join(',')} (P1a/P1b run as P1)`, list)
    .option('--quick', 'fewer trials, N=10 only, 1-minute election windows, 15 s idle windows')
    .option('--n <sizes>', 'cluster sizes for P1, P2, P5, P7 (default 10,50)', list)
    .option('--growth <sizes>', 'cluster sizes for P9 (default 10,30,50)', list)
    .option('--trials <k>', 'base trial count (figures scale it)', Number)
    .option('--election-minutes <m>', 'length of each spurious-election window (P3)', Number)
    .option('--idle-seconds <s>', 'length of the idle footprint window (P5, P9)', Number)
    .option('--failover-trials <k>', 'P3 leader-kill trials (default 20)', Number)
    .option('--no-serf', 'skip the serf side of P1, P2, P5, P7, P9')
    .option('--profile-idle <n>', 'instead of figures: an idle n-node cluster with --cpu-prof daemons (profiles to bench/results/profiles)', Number)
    .parse().opts<{ only?: string[], quick?: boolean, n?: string[], growth?: string[], trials?: number, electionMinutes?: number, idleSeconds?: number, failoverTrials?: number, serf: boolean, profileIdle?: number }>()
  const quick = !!o.quick
  const ctx: Ctx = {
    quick,
    ns: (o.n ?? (quick ? ['10'] : ['10', '50'])).map(Number),
    growthNs: (o.growth ?? (quick ? ['10'] : ['10', '30', '50'])).map(Number),
    trials: o.trials ?? (quick ? 2 : 5),
    electionMinutes: o.electionMinutes ?? (quick ? 1 : 10),
    idleSeconds: o.idleSeconds ?? (quick ? 15 : 60),
    failoverTrials: o.failoverTrials ?? (quick ? 5 : 20)
  }
  const only = new Set((o.only ?? [...ALL]).map(f => f.toUpperCase().replace(/^P1[AB]$/, 'P1')))
  for (const f of only) if (!(ALL as readonly string[]).includes(f)) throw new Error(`unknown figure ${f}; figures: ${ALL.join(', ')}`)
  installCleanup([process.execPath, process.argv[1]!])
  if (o.profileIdle !== undefined) {
    try { await profileIdle(o.profileIdle, ctx.idleSeconds, join(ROOT, 'bench', 'results', 'profiles')) } finally { await cleanupAll() }
    return
  }
  const meta = machine()
  console.log(`wakame benchmarks ${quick ? '(quick) ' : ''}— ${JSON.stringify(meta)}`)
  let failed = 0
  const attempt = async (name: string, fn: () => Promise<void>) => {
    try { await fn() } catch (err) { failed++; console.error(`\n${name} FAILED: ${(err as Error).stack ?? err}`) }
  }
  try {
    if (only.has('SIM')) await attempt('SIM', () => simFigures(ctx))
    if (only.has('P8')) await attempt('P8', () => p8(ctx))
    if (only.has('P4')) await attempt('P4', () => p4(ctx))
    if (only.has('P3')) await attempt('P3', () => p3(ctx))
    const groupFigs = (['P1', 'P2', 'P5', 'P7', 'P9'] as GroupFigure[]).filter(f => only.has(f))
    const sizes = [...new Set([...(groupFigs.some(f => f !== 'P9') ? ctx.ns : []), ...(groupFigs.includes('P9') ? ctx.growthNs : [])])].sort((a, b) => a - b)
    for (const n of sizes) {
      const figs = new Set(groupFigs.filter(f => f === 'P9' ? ctx.growthNs.includes(n) : ctx.ns.includes(n)))
      if (figs.size === 0) continue
      await attempt(`wakame N=${n}`, () => wakameGroup(n, figs, ctx))
      if (o.serf) await attempt(`serf N=${n}`, () => serfGroup(n, figs, ctx))
    }
  } finally {
    await cleanupAll()
  }
  computeRatios()
  console.log(`\n${table()}\n`)
  const file = writeJson(join(ROOT, 'bench', 'results'), { ...meta, loadAtEnd: load(), options: ctx, only: [...only], failed })
  console.log(`${rows.length} rows; JSON: ${file}${failed > 0 ? `; ${failed} figure group(s) FAILED (see above)` : ''}`)
  if (failed > 0) process.exitCode = 1
}

void main().catch(async (err) => { console.error(err); await cleanupAll(); process.exit(1) })
