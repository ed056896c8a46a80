// `npm run sim -- --seed N [--nodes K]` replays one seed; `--seeds K` runs K fresh ones and reports
// seeds per second; a failure prints its seed and the exact command that replays it.
import '../polyfill.js'
import { Command, InvalidArgumentError } from 'commander'
import { makePlan } from './plan.js'
import { Simulation, type SimResult } from './simulation.js'

const int = (v: string): number => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('a whole number')
  return Number(v)
}

export async function runSeed (seed: number, nodes?: number, log?: string[], durationMs?: number): Promise<SimResult> {
  const plan = makePlan(seed, nodes !== undefined ? { nodes, calm: nodes > 7 } : {})
  // A fixed duration keeps running after convergence (a steady-state speed measurement).
  if (durationMs !== undefined) plan.livenessMs = durationMs
  return await new Simulation({ plan, ...(log ? { log } : {}), ...(durationMs !== undefined ? { stopWhenConverged: false } : {}) }).run()
}

function replay (seed: number, nodes?: number): string {
  return `npm run sim -- --seed ${seed}${nodes !== undefined ? ` --nodes ${nodes}` : ''}`
}

async function main (): Promise<void> {
  const o = new Command('wakame-sim')
    .description('the deterministic simulator of wakame\'s control plane')
    .option('--seed <n>', 'replay one seed', int)
    .option('--seeds <k>', 'run k fresh seeds', int)
    .option('--start <n>', 'first seed of --seeds (default: from the clock)', int)
    .option('--nodes <k>', 'cluster size (a calm run when above 7: no faults, for scale)', int)
    .option('--verbose', 'print every seed')
    .option('--duration <ms>', 'with --seed: simulate this long after healing, even once converged (speed figures)', int)
    .option('--log <nodes>', 'print these nodes\' logs (comma-separated ids, e.g. vm-1,vm-2) with --seed', (v: string) => v.split(','))
    .parse().opts<{ seed?: number, seeds?: number, start?: number, nodes?: number, verbose?: boolean, log?: string[], duration?: number }>()
  if (o.seed !== undefined) {
    const r = await runSeed(o.seed, o.nodes, o.log, o.duration)
    console.log(JSON.stringify(r, null, 2))
    if (!r.ok) { console.log(`FAILED: ${r.violation!.checker}: ${r.violation!.message}\nreplay: ${replay(o.seed, o.nodes)}`); process.exitCode = 1 }
    else console.log(`ok: converged ${((r.convergedAt! - r.healedAt) / 1000).toFixed(1)} s after healing; ${(r.simulatedMs / r.realMs).toFixed(1)}x real time at ${r.nodes} nodes`)
    return
  }
  const k = o.seeds ?? 100
  const start = o.start ?? (Date.now() % 1_000_000_000)
  const t0 = performance.now()
  let failures = 0
  let simulated = 0
  for (let i = 0; i < k; i++) {
    const seed = start + i
    const r = await runSeed(seed, o.nodes)
    simulated += r.simulatedMs
    if (o.verbose) console.log(`seed ${seed}: ${r.ok ? 'ok' : 'FAILED'} (${r.nodes} nodes, ${Math.round(r.realMs)} ms)`)
    if (!r.ok) {
      failures++
      console.log(`FAILED seed ${seed}: ${r.violation!.checker}: ${r.violation!.message} (at ${(r.violation!.at / 1000).toFixed(2)} s)\n  replay: ${replay(seed, o.nodes)}`)
    }
  }
  const secs = (performance.now() - t0) / 1000
  console.log(`${k} seeds (${start}..${start + k - 1}) in ${secs.toFixed(1)} s: ${(k / secs).toFixed(1)} seeds/s, ${(simulated / 1000 / secs).toFixed(0)} simulated s per real s; ${failures} failed`)
  if (failures > 0) process.exitCode = 1
}

void main()
