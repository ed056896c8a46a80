// P4 balancer: a membership change → the balancer's config live, and the first request served by
// the new member; changes applied per burst of 10. Measured for the builtin proxy and for HAProxy
// (Debian's, installed if missing; membership changes through its runtime API, no reload).
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Ctx } from '../lib/ctx.js'
import { load, sleep, waitUntil } from '../lib/proc.js'
import { record } from '../lib/results.js'
import { summarize } from '../lib/stats.js'
import { ensurePackages } from '../lib/serf.js'
import { benchSpec, startWakame, waitUntilSettled, type WakameCluster } from '../lib/wakame.js'

const NET = '127.0.105'
const NET_HAPROXY = '127.0.106'

interface Reload { time: number, backends: number }

type Kind = 'builtin' | 'haproxy'

/** The lb's changes applied since `from` (builtin: its own log; HAProxy: the lb node's agent log). */
function applied (kind: Kind, c: WakameCluster, node: string, inst: string, from: number, mark: Map<string, number>): Reload[] {
  if (kind === 'builtin') return reloads(c, node, inst, from)
  return c.logsSince(mark, e => e.instance === inst && (e.msg === 'balancer members changed through the runtime API' || e.msg === 'balancer reloaded'))
    .map(e => ({ time: e.time, backends: -1 }))
}

/** Servers HAProxy's installed config lists for www (the file is rewritten after each runtime change). */
function haproxyServers (c: WakameCluster, node: string, inst: string): number {
  try {
    return readFileSync(join(c.vmDir(node), 'data', 'instances', inst, 'haproxy.cfg'), 'utf8').split('\n').filter(l => /^\s+server www-/.test(l)).length
  } catch { return -1 }
}

function reloads (c: WakameCluster, node: string, inst: string, from: number): Reload[] {
  const file = join(c.vmDir(node), 'data', 'instances', inst, 'output.log')
  if (!existsSync(file)) return []
  const out: Reload[] = []
  for (const line of readFileSync(file).subarray(from).toString('utf8').split('\n')) {
    if (!line.includes('balancer reloaded')) continue
    try { const e = JSON.parse(line) as { time: number, backends: Record<string, number> }; out.push({ time: e.time, backends: e.backends['/'] ?? 0 }) } catch {}
  }
  return out
}

export async function p4 (ctx: Ctx): Promise<void> {
  await p4Kind(ctx, 'builtin')
  ensurePackages([{ bin: 'haproxy', pkg: 'haproxy' }])
  await p4Kind(ctx, 'haproxy')
}

async function p4Kind (ctx: Ctx, kind: Kind): Promise<void> {
  console.log(`\n== P4 balancer: ${kind} (load ${load().join(' ')})`)
  const system = kind === 'builtin' ? 'builtin-lb' : 'haproxy'
  const nodes = 6
  const c = await startWakame({ name: `p4-${kind}`, net: kind === 'builtin' ? NET : NET_HAPROXY, nodes, spec: benchSpec({ minNodes: nodes, lbKind: kind, www: { min: 1, max: 12, maxPerNode: 2 } }) })
  try {
    const lb0 = load()[0]
    const toReload: number[] = []
    const toServed: number[] = []
    const trials = ctx.quick ? 3 : 10
    let failedTrials = 0
    for (let k = 0; k < trials; k++) {
      const s = await waitUntilSettled(c, nodes, 60_000)
      const lbInst = s.services.find(v => v.name === 'lb')!.instances[0]!
      const url = s.services.find(v => v.name === 'lb')!.urls![0]!
      const logFile = join(c.vmDir(lbInst.node!), 'data', 'instances', lbInst.id, 'output.log')
      const from = existsSync(logFile) ? readFileSync(logFile).length : 0
      const before = new Set(s.services.find(v => v.name === 'www')!.instances.map(i => i.id))
      const mark = c.logMark()
      // A steady request loop through the balancer; the first answer from a new instance is the time.
      let served: number | undefined
      let stop = false
      const loop = (async () => {
        while (!stop && served === undefined) {
          try {
            const res = await fetch(url, { signal: AbortSignal.timeout(2_000) })
            const who = res.headers.get('x-wakame-instance') ?? ''
            await res.arrayBuffer()
            if (who && !before.has(who)) served = Date.now()
          } catch {}
          await sleep(2)
        }
      })()
      await c.change('/v1/services/www/scale', { count: 2 })
      try {
        await waitUntil('the new www served through the balancer', () => served !== undefined, 30_000, 20)
      } catch (err) {
        failedTrials++
        console.error(`  P4 trial ${k}: ${(err as Error).message}`)
      } finally { stop = true }
      await loop
      const online = c.logsSince(mark, e => e.msg === 'instance ONLINE' && String(e.instance ?? '').startsWith('www-'))[0]
      const reload = applied(kind, c, lbInst.node!, lbInst.id, from, mark).find(r => kind === 'builtin' ? r.backends === 2 : r.time >= (online?.time ?? Infinity))
      if (online && reload && served !== undefined) { toReload.push(reload.time - online.time); toServed.push(served! - online.time) }
      await c.change('/v1/services/www/scale', { count: 1 })
      await waitUntilSettled(c, nodes, 60_000)
      await sleep(500)
    }
    record({ figure: 'P4', what: `www ONLINE → ${kind} has it live`, system, n: nodes, unit: 'ms', samples: toReload, loadBefore: lb0, note: kind === 'builtin' ? 'from the new instance\'s "instance ONLINE" (its node) to the proxy\'s "balancer reloaded" (lb node): gossip + 50 ms render coalescing + render + SIGHUP' : 'from the new instance\'s "instance ONLINE" (its node) to "balancer members changed through the runtime API" (lb node): gossip + 50 ms render coalescing + render + validation + runtime API' })
    record({ figure: 'P4', what: 'www ONLINE → first request served by it', system, n: nodes, unit: 'ms', samples: toServed, loadBefore: lb0, goal: '≤ 50 ms HAProxy / ≤ 100 ms nginx (from the lb node learning of it)', note: `requests through the balancer every ~2 ms; includes the gossip hop (see P2), which the goal excludes${failedTrials > 0 ? `; ${failedTrials} trial(s) never saw the new instance within 30 s` : ''}` })

    // A burst: 10 new instances at once (scale 1 → 11), then 10 gone (11 → 1).
    for (const [what, count] of [['burst of 10 additions', 11], ['burst of 10 removals', 1]] as const) {
      const lb = load()[0]
      const s = await waitUntilSettled(c, nodes, 60_000)
      const lbInst = s.services.find(v => v.name === 'lb')!.instances[0]!
      const out = join(c.vmDir(lbInst.node!), 'data', 'instances', lbInst.id, 'output.log')
      const from = existsSync(out) ? readFileSync(out).length : 0
      const mark = c.logMark()
      await c.change('/v1/services/www/scale', { count })
      await waitUntilSettled(c, nodes, 120_000)
      await sleep(3_000)
      const rl = applied(kind, c, lbInst.node!, lbInst.id, from, mark)
      const changes = c.logsSince(mark, e => String(e.instance ?? '').startsWith('www-') && (e.msg === 'instance ONLINE' || e.msg === 'stopped'))
      const span = changes.length > 0 ? changes[changes.length - 1]!.time - changes[0]!.time : NaN
      const final = kind === 'builtin' ? rl[rl.length - 1]?.backends : haproxyServers(c, lbInst.node!, lbInst.id)
      record({ figure: 'P4', what: `changes applied per ${what}`, system, n: nodes, unit: 'reloads', samples: [rl.length], loadBefore: lb, goal: '≤ 2 (changes within 100 ms)', met: rl.length <= 2, note: `${changes.length} instance changes spread over ${Math.round(span)} ms (not within 100 ms: started by 6 nodes); ${kind === 'builtin' ? 'last reload lists' : 'the installed config lists'} ${final} backend(s), want ${count}${final === count ? ' (live)' : ' (NOT live)'}` })
    }
    void summarize
  } finally {
    await c.stop()
  }
}
