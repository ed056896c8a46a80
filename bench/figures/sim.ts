// Simulator speed (simulated node-seconds per real second) and, at 1,000 nodes, the simulated
// cost per node (P9): messages delivered per node per simulated second.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Ctx } from '../lib/ctx.js'
import { load } from '../lib/proc.js'
import { record } from '../lib/results.js'

const run = promisify(execFile)
const SIM = join(import.meta.dirname, 'sim.mjs')

interface SimOut { nodes: number, simulatedMs: number, realMs: number, deliveries: number, events: number, ok: boolean }

async function simOnce (nodes: number, durationMs: number): Promise<SimOut> {
  const r = await run(process.execPath, [SIM, '--seed', '5', '--nodes', String(nodes), '--duration', String(durationMs)], { timeout: 600_000, maxBuffer: 64 * 1024 * 1024 })
  const json = r.stdout.slice(0, r.stdout.lastIndexOf('}') + 1)
  return JSON.parse(json) as SimOut
}

export async function simFigures (ctx: Ctx): Promise<void> {
  console.log(`\n== simulator (load ${load().join(' ')})`)
  for (const nodes of [100, 1000]) {
    const lb = load()[0]
    const reps = ctx.quick ? 1 : 3
    const speed: number[] = []
    const msgs: number[] = []
    let last: SimOut | undefined
    for (let k = 0; k < reps; k++) {
      const o = await simOnce(nodes, 30_000)
      last = o
      speed.push(o.nodes * (o.simulatedMs / 1000) / (o.realMs / 1000))
      msgs.push(o.deliveries / o.nodes / (o.simulatedMs / 1000))
    }
    record({ figure: 'SIM', what: 'simulated node-seconds per real second', system: 'sim', n: nodes, unit: 'node·s/s', samples: speed, loadBefore: lb, note: `seed 5, --duration 30000 (${((last!.simulatedMs) / 1000).toFixed(0)} simulated s, ${(last!.realMs / 1000).toFixed(1)} real s, ${last!.events} events)` })
    record({ figure: 'P9', what: 'messages delivered per node per second (simulated)', key: 'sim', system: 'sim', n: nodes, unit: 'msg/s', samples: msgs, loadBefore: lb, note: 'the simulator\'s deliveries / nodes / simulated seconds (heartbeats and control; unchanged follower heartbeats are thinned above 300 nodes in the simulator only)' })
  }
}
