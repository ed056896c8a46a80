// The figures measured on an N-node cluster, ours then serf's at the same N: P5 footprint and P9
// cost (one idle window), P2 dissemination, P1b SIGSTOP detection, P1a SIGKILL detection (with
// the balancer dropping the dead node's backend), P7 join and the CLI round trip.
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { StatusReport } from '../../src/core/status.js'
import type { Ctx } from '../lib/ctx.js'
import { PortCounters, nftAvailable, type Counts } from '../lib/nft.js'
import { alive, cpuSeconds, load, rssMiB, signal, sleep, waitUntil } from '../lib/proc.js'
import { record } from '../lib/results.js'
import { startSerf, SERF_PORT, watchStatus, type SerfAgent, type SerfCluster } from '../lib/serf.js'
import { mean, summarize } from '../lib/stats.js'
import { benchSpec, BUNDLE, MESH_PORT, startWakame, waitUntilSettled, type LogEntry, type WakameCluster } from '../lib/wakame.js'

const run = promisify(execFile)
export const WAKAME_NET = '127.0.100'
export const SERF_NET = '127.0.101'

export type GroupFigure = 'P1' | 'P2' | 'P5' | 'P7' | 'P9'

// ---- the idle window: P5 and P9 ---------------------------------------------------------------

interface IdleSample { rss: number[], cpuPct: number[], initRss: number[], perNode: { packets: number, bytes: number }[], seconds: number }

async function idleWindow (pids: Array<{ ip: string, pid: number, init?: number }>, port: number, tag: string, seconds: number): Promise<IdleSample> {
  const counters = nftAvailable() ? new PortCounters(pids.map(p => p.ip), port, tag) : undefined
  try {
    const t0 = performance.now()
    const cpu0 = pids.map(p => cpuSeconds(p.pid) ?? NaN)
    const c0 = counters?.read()
    const rssSamples: number[][] = pids.map(() => [])
    const end = t0 + seconds * 1000
    while (performance.now() < end) {
      pids.forEach((p, i) => { const r = rssMiB(p.pid); if (r !== undefined) rssSamples[i]!.push(r) })
      await sleep(Math.min(5_000, Math.max(0, end - performance.now())))
    }
    const secs = (performance.now() - t0) / 1000
    const cpu1 = pids.map(p => cpuSeconds(p.pid) ?? NaN)
    const c1 = counters?.read()
    const perNode = pids.map(p => {
      if (!c0 || !c1) return { packets: NaN, bytes: NaN }
      const a = c0.get(p.ip)!
      const b = c1.get(p.ip)!
      const d = (x: Counts, y: Counts) => ({ packets: y.packets - x.packets, bytes: y.bytes - x.bytes })
      const s = d(a.sent, b.sent)
      const r = d(a.received, b.received)
      return { packets: (s.packets + r.packets) / secs, bytes: (s.bytes + r.bytes) / secs }
    })
    return {
      rss: rssSamples.map(s => mean(s)),
      cpuPct: pids.map((_, i) => (cpu1[i]! - cpu0[i]!) / secs * 100),
      initRss: pids.filter(p => p.init !== undefined).map(p => rssMiB(p.init!) ?? NaN),
      perNode,
      seconds: secs
    }
  } finally {
    await counters?.close()
  }
}

function recordIdle (system: 'wakame' | 'serf', n: number, s: IdleSample, figs: Set<GroupFigure>, loadBefore: number): void {
  const note = `${Math.round(s.seconds)} s idle window, every ${system === 'wakame' ? 'daemon' : 'agent'} of the cluster`
  if (figs.has('P5')) {
    record({ figure: 'P5', what: 'idle RSS per daemon', key: 'rss', system, n, unit: 'MB', samples: s.rss, loadBefore, note: `${note}; MiB (VmRSS), mean over the window`, ...(system === 'wakame' && n >= 50 ? { goal: '≤ 64 MB', met: summarize(s.rss).median <= 64 } : {}) })
    record({ figure: 'P5', what: 'idle CPU per daemon', key: 'cpu', system, n, unit: '%', samples: s.cpuPct, loadBefore, note: `${note}; % of one core (utime+stime)`, ...(system === 'wakame' && n >= 50 ? { goal: '≤ 1 %', met: summarize(s.cpuPct).median <= 1 } : {}) })
    if (system === 'wakame' && s.initRss.length > 0) record({ figure: 'P5', what: 'idle RSS per vm-init (local provider only)', system, n, unit: 'MB', samples: s.initRss, loadBefore, note: 'the local VM\'s init process (systemd\'s role on EC2), not counted above' })
  }
  if (figs.has('P9')) {
    record({ figure: 'P9', what: 'CPU per node per second', key: 'cpu', system, n, unit: 'ms', samples: s.cpuPct.map(p => p * 10), loadBefore, note: `${note}; CPU ms per wall second` })
    if (s.perNode.every(x => Number.isFinite(x.packets))) {
      record({ figure: 'P9', what: 'packets per node per second (in+out)', key: 'pkt', system, n, unit: 'pkt/s', samples: s.perNode.map(x => x.packets), loadBefore, note: `nftables counters on the ${system === 'wakame' ? 'mesh (TCP 7610)' : 'serf (TCP+UDP 7946)'} port, IP packets incl. ACKs` })
      record({ figure: 'P9', what: 'bytes per node per second (in+out)', key: 'bytes', system, n, unit: 'B/s', samples: s.perNode.map(x => x.bytes), loadBefore, note: 'IP packet bytes (headers included)' })
    }
  }
}

// ---- wakame ------------------------------------------------------------------------------------

const isOnlineProbe = (s: StatusReport, old: Set<string>) => s.services.find(v => v.name === 'probe')?.instances.find(i => i.state === 'ONLINE' && i.phase === 'run' && !old.has(i.id))

export async function wakameGroup (n: number, figs: Set<GroupFigure>, ctx: Ctx): Promise<void> {
  console.log(`\n== wakame, N=${n}: ${[...figs].join(' ')} (load ${load().join(' ')})`)
  const t = Date.now()
  const c = await startWakame({ name: `n${n}`, net: WAKAME_NET, nodes: n, spec: benchSpec({ minNodes: n, www: { min: 2, max: 12 }, probe: { max: n } }) })
  console.log(`  cluster of ${n} up and settled in ${((Date.now() - t) / 1000).toFixed(1)} s`)
  try {
    await sleep(ctx.quick ? 5_000 : 15_000)
    if (figs.has('P5') || figs.has('P9')) {
      const lb = load()[0]
      const pids = c.running().map(v => ({ ip: v.ip, pid: c.daemonPid(v.id), init: v.pid }))
      recordIdle('wakame', n, await idleWindow(pids, MESH_PORT, `w${n}`, ctx.idleSeconds), figs, lb)
    }
    if (figs.has('P2')) await wakameP2(c, n, ctx)
    if (figs.has('P1')) {
      await wakameP1b(c, n, ctx)
      await wakameP1a(c, n, ctx)
    }
    if (figs.has('P7')) await wakameP7(c, n, ctx)
  } finally {
    await c.stop()
  }
}

/** P2: an instance going ONLINE on one node → every other node's status shows it. */
async function wakameP2 (c: WakameCluster, n: number, ctx: Ctx): Promise<void> {
  const trials = ctx.quick ? 3 : Math.max(10, ctx.trials * 2)
  const lb = load()[0]
  const toLast: number[] = []
  const all: number[] = []
  let fallback = 0
  const ids = c.running().map(v => v.id)
  const pollMs = n <= 10 ? 50 : 150
  const old = new Set<string>()
  for (let k = 0; k < trials; k++) {
    // Every node has forgotten the last trial's probe before this one starts.
    await waitUntil('no probe on any node', async () => {
      const all = await Promise.all(ids.map(async id => await c.status(id, 3_000).catch(() => undefined)))
      return all.every(s => s && !s.services.find(v => v.name === 'probe')?.instances.some(i => i.phase === 'run'))
    }, 30_000, 200)
    const mark = c.logMark()
    interface Obs { lastNegSend: number, lastNegRecv: number, pos?: { send: number, recv: number, node: string, ageS?: number } }
    const obs = new Map<string, Obs>(ids.map(id => [id, { lastNegSend: -Infinity, lastNegRecv: -Infinity }]))
    let stop = false
    const pollers = ids.map(async id => {
      const o = obs.get(id)!
      while (!stop && !o.pos) {
        const send = Date.now()
        try {
          const s = await c.status(id, 3_000)
          const recv = Date.now()
          const inst = isOnlineProbe(s, old)
          if (inst) {
            const ageS = s.nodes.find(x => x.id === inst.node)?.heartbeatAgeS
            o.pos = { send, recv, node: inst.node!, ...(ageS !== undefined ? { ageS } : {}) }
          } else { o.lastNegSend = send; o.lastNegRecv = recv }
        } catch {}
        await sleep(pollMs)
      }
    })
    await sleep(pollMs * 2)
    await c.change('/v1/services/probe/scale', { count: 1 })
    await waitUntil('every node sees the probe ONLINE', () => [...obs.values()].every(o => o.pos), 20_000, 50).finally(() => { stop = true })
    await Promise.all(pollers)
    const online = c.logsSince(mark, e => e.msg === 'instance ONLINE' && String(e.instance ?? '').startsWith('probe-'))[0]
    if (!online) throw new Error('P2: no "instance ONLINE" log line for the probe')
    old.add(String(online.instance))
    const lat: number[] = []
    for (const [id, o] of obs) {
      if (id === online.node) continue
      const p = o.pos!
      let at: number
      const est = p.ageS !== undefined ? p.recv - p.ageS * 1000 : NaN
      // The last heartbeat heard from the probe's node is the one that carried ONLINE only when
      // no later one (500 ms after) could have arrived between the two polls.
      if (Number.isFinite(est) && est >= o.lastNegSend - 2 && est <= p.recv && p.recv - o.lastNegSend < 450) at = est
      else { at = (o.lastNegRecv + p.send) / 2; fallback++ }
      lat.push(at - online.time)
    }
    toLast.push(Math.max(...lat))
    all.push(...lat)
    await c.change('/v1/services/probe/scale', { count: 0 })
    await waitUntil('probe stopped', async () => !(await c.status()).services.find(v => v.name === 'probe')?.instances.length, 20_000, 200)
  }
  const note = `from the hosting node logging "instance ONLINE" to each node's status showing it (arrival from heartbeatAgeS; ${fallback}/${all.length} observations fell back to poll midpoints, ±${pollMs / 2} ms)`
  record({ figure: 'P2', what: 'ONLINE → seen by the last node', key: 'last', system: 'wakame', n, unit: 'ms', samples: toLast, loadBefore: lb, note })
  const s = summarize(all)
  record({ figure: 'P2', what: 'ONLINE → seen by a node (all node observations)', key: 'all', system: 'wakame', n, unit: 'ms', samples: all, loadBefore: lb, note: 'p50/p99 over every (trial, node)', ...(n >= 50 ? { goal: 'p99 ≤ 150 ms', met: s.p99 <= 150 } : {}) })
}

function pickVictim (s: StatusReport, opts: { withWww: boolean }, exclude: Set<string>): string | undefined {
  const lbNode = s.services.find(v => v.name === 'lb')?.instances[0]?.node
  const hosts = new Set(s.services.flatMap(v => v.instances.map(i => i.node)))
  const wwwNodes = new Set(s.services.find(v => v.name === 'www')?.instances.filter(i => i.state === 'ONLINE').map(i => i.node))
  return s.nodes.filter(x => x.status === 'alive' && x.id !== s.leader && x.id !== lbNode && x.id !== 'vm-1' && !exclude.has(x.id))
    .find(x => opts.withWww ? wwwNodes.has(x.id) : !hosts.has(x.id))?.id
}

/** Waits until every node in `observers` logged `member <victim> is <to>` after the mark. */
async function memberLogged (c: WakameCluster, mark: Map<string, number>, victim: string, to: string, observers: string[], timeoutMs: number): Promise<Map<string, LogEntry>> {
  const msg = `member ${victim} is ${to}`
  return await waitUntil(msg + ' everywhere', () => {
    const first = new Map<string, LogEntry>()
    for (const e of c.logsSince(mark, e => e.msg === msg)) if (!first.has(e.node)) first.set(e.node, e)
    return observers.every(o => first.has(o)) ? first : undefined
  }, timeoutMs, 100)
}

/** P1b: the daemon of a node frozen (SIGSTOP) → every other node has it dead. */
async function wakameP1b (c: WakameCluster, n: number, ctx: Ctx): Promise<void> {
  const trials = ctx.quick ? 2 : Math.max(3, ctx.trials)
  const lb = load()[0]
  const toLast: number[] = []
  const firsts: number[] = []
  const used = new Set<string>()
  for (let k = 0; k < trials; k++) {
    const s = await waitUntilSettled(c, n, 120_000)
    const victim = pickVictim(s, { withWww: false }, used) ?? pickVictim(s, { withWww: false }, new Set())
    if (!victim) throw new Error('P1b: no idle follower to freeze')
    used.add(victim)
    const observers = c.running().map(v => v.id).filter(id => id !== victim)
    const pid = c.daemonPid(victim)
    const mark = c.logMark()
    const t0 = Date.now()
    signal(pid, 'SIGSTOP')
    try {
      const dead = await memberLogged(c, mark, victim, 'dead', observers, 30_000)
      const times = [...dead.values()].map(e => e.time - t0)
      toLast.push(Math.max(...times))
      firsts.push(Math.min(...times))
    } finally {
      signal(pid, 'SIGCONT')
    }
    await memberLogged(c, mark, victim, 'alive', observers, 30_000)
  }
  const fl = summarize(firsts)
  record({ figure: 'P1b', what: 'SIGSTOP → dead on every node', system: 'wakame', n, unit: 's', samples: toLast.map(x => x / 1000), loadBefore: lb, note: `earliest death on any node: ${(fl.min / 1000).toFixed(2)} s (must never be < 3 s)`, ...(n >= 50 ? { goal: '≤ 5 s, never < 3 s', met: summarize(toLast).max <= 5_000 && fl.min >= 3_000 } : { goal: 'never < 3 s', met: fl.min >= 3_000 }) })
}

/** P1a: a node's VM SIGKILLed (its whole process group) → dead everywhere, and the balancer dropped its backend. */
async function wakameP1a (c: WakameCluster, n: number, ctx: Ctx): Promise<void> {
  const trials = ctx.quick ? 2 : Math.max(3, ctx.trials)
  const lb = load()[0]
  const toLast: number[] = []
  const dropped: number[] = []
  for (let k = 0; k < trials; k++) {
    const s = await waitUntilSettled(c, n, 180_000)
    const victim = pickVictim(s, { withWww: true }, new Set())
    if (!victim) throw new Error(`P1a: no follower with a www instance (status: ${JSON.stringify(s.services.map(v => [v.name, v.instances.map(i => i.node)]))})`)
    const lbInst = s.services.find(v => v.name === 'lb')!.instances[0]!
    const lbLog = join(c.vmDir(lbInst.node!), 'data', 'instances', lbInst.id, 'output.log')
    const before = s.services.find(v => v.name === 'www')!.instances.filter(i => i.state === 'ONLINE').length
    const lbMark = existsSync(lbLog) ? readFileSync(lbLog).length : 0
    const observers = c.running().map(v => v.id).filter(id => id !== victim)
    const mark = c.logMark()
    const pgid = c.vm(victim).pgid
    const t0 = Date.now()
    signal(-pgid, 'SIGKILL')
    const dead = await memberLogged(c, mark, victim, 'dead', observers, 30_000)
    toLast.push(Math.max(...[...dead.values()].map(e => e.time - t0)))
    const reload = await waitUntil('the balancer to drop the dead node\'s backend', () => {
      const text = readFileSync(lbLog).subarray(lbMark).toString('utf8')
      for (const line of text.split('\n')) {
        if (!line.includes('balancer reloaded')) continue
        try {
          const e = JSON.parse(line) as { time: number, backends: Record<string, number> }
          if ((e.backends['/'] ?? 0) < before) return e.time
        } catch {}
      }
      return undefined
    }, 30_000, 50)
    dropped.push(reload - t0)
  }
  record({ figure: 'P1a', what: 'SIGKILL → dead on every node', system: 'wakame', n, unit: 's', samples: toLast.map(x => x / 1000), loadBefore: lb, goal: '≤ 1 s', met: summarize(toLast).median <= 1_000, note: 'the victim\'s whole process group (daemon, init, its www); time of the "member X is dead" log line on the last node' })
  record({ figure: 'P1a', what: 'SIGKILL → balancer dropped its backend', system: 'wakame', n, unit: 's', samples: dropped.map(x => x / 1000), loadBefore: lb, goal: '≤ 1 s', met: summarize(dropped).median <= 1_000, note: 'the builtin balancer\'s "balancer reloaded" log line with one backend fewer' })
}

/** P7: a new VM's daemon process start → every node has it alive; the CLI's `status` round trip. */
async function wakameP7 (c: WakameCluster, n: number, ctx: Ctx): Promise<void> {
  const trials = ctx.quick ? 2 : Math.max(3, ctx.trials)
  const lb = load()[0]
  const fromStart: number[] = []
  const fromReady: number[] = []
  await waitUntilSettled(c, n, 180_000)
  for (let k = 0; k < trials; k++) {
    const observers = c.running().map(v => v.id)
    const mark = c.logMark()
    const rec = await c.launchVm('join')
    const alive = await memberLogged(c, mark, rec.id, 'alive', observers, 60_000)
    const own = c.logsSince(new Map(), e => e.node === rec.id && (e.msg === 'daemon started' || e.msg === 'wakame agent started'))
    const started = own.find(e => e.msg === 'daemon started')?.time
    const ready = own.find(e => e.msg === 'wakame agent started')?.time
    const last = Math.max(...[...alive.values()].map(e => e.time))
    if (started !== undefined) fromStart.push(last - started)
    if (ready !== undefined) fromReady.push(last - ready)
    await sleep(2_000)
  }
  record({ figure: 'P7', what: 'join: daemon process start → alive on every node', key: 'join', system: 'wakame', n, unit: 's', samples: fromStart.map(x => x / 1000), loadBefore: lb, note: 'from vm-init\'s "daemon started" to the last node\'s "member X is alive"; includes Node start, bundle load, key load and libp2p start', ...(n >= 50 ? { goal: '≤ 0.5 s', met: summarize(fromStart).median <= 500 } : {}) })
  record({ figure: 'P7', what: 'join: mesh up ("agent started") → alive on every node', system: 'wakame', n, unit: 's', samples: fromReady.map(x => x / 1000), loadBefore: lb, note: 'the part after the daemon\'s own start-up' })
  // The CLI: a whole `wakame status` process, and the HTTP round trip alone.
  const cli: number[] = []
  const http: number[] = []
  for (let k = 0; k < (ctx.quick ? 5 : 20); k++) {
    const t0 = performance.now()
    await run(process.execPath, [BUNDLE, '--node', c.first, 'status'], { timeout: 30_000 })
    cli.push(performance.now() - t0)
    const t1 = performance.now()
    await c.status()
    http.push(performance.now() - t1)
  }
  record({ figure: 'P7', what: 'CLI `wakame status` (whole process)', system: 'wakame', n, unit: 'ms', samples: cli, loadBefore: lb, goal: '≤ 150 ms', met: summarize(cli).median <= 150, note: 'node start + bundle load + GET /v1/status + printing' })
  record({ figure: 'P7', what: 'GET /v1/status round trip', system: 'wakame', n, unit: 'ms', samples: http, loadBefore: lb, note: 'fetch from the bench process' })
}

// ---- serf --------------------------------------------------------------------------------------

export async function serfGroup (n: number, figs: Set<GroupFigure>, ctx: Ctx): Promise<void> {
  console.log(`\n== serf, N=${n}: ${[...figs].join(' ')} (load ${load().join(' ')})`)
  const t = Date.now()
  const c = await startSerf({ net: SERF_NET, n, name: `n${n}` })
  console.log(`  ${n} serf agents up in ${((Date.now() - t) / 1000).toFixed(1)} s`)
  try {
    await sleep(ctx.quick ? 3_000 : 10_000)
    if (figs.has('P5') || figs.has('P9')) {
      const lb = load()[0]
      recordIdle('serf', n, await idleWindow(c.agents.map(a => ({ ip: a.ip, pid: a.pid })), SERF_PORT, `s${n}`, ctx.idleSeconds), figs, lb)
    }
    if (figs.has('P2')) await serfP2(c, n, ctx)
    if (figs.has('P1')) {
      await serfP1(c, n, ctx, 'SIGSTOP')
      await serfP1(c, n, ctx, 'SIGKILL')
    }
    if (figs.has('P7')) await serfP7(c, n, ctx)
  } finally {
    await c.stop()
  }
}

async function serfP2 (c: SerfCluster, n: number, ctx: Ctx): Promise<void> {
  const trials = ctx.quick ? 3 : Math.max(10, ctx.trials * 2)
  const lb = load()[0]
  const arrivals = new Map<string, Map<string, number>>()
  for (const a of c.agents) {
    await a.rpc.stream('user', e => {
      const name = String(e.Name)
      if (!arrivals.has(name)) arrivals.set(name, new Map())
      arrivals.get(name)!.set(a.name, Date.now())
    })
  }
  const toLast: number[] = []
  const all: number[] = []
  for (let k = 0; k < trials; k++) {
    const name = `bench-${k}-${Date.now()}`
    const sender = c.agents[k % c.agents.length]!
    const t0 = Date.now()
    await sender.rpc.userEvent(name, 'x', false)
    await waitUntil('every agent got the user event', () => (arrivals.get(name)?.size ?? 0) >= c.agents.length, 20_000, 10)
    const lat = [...arrivals.get(name)!.entries()].filter(([a]) => a !== sender.name).map(([, at]) => at - t0)
    toLast.push(Math.max(...lat))
    all.push(...lat)
    await sleep(300)
  }
  const note = 'serf event -coalesce=false through one agent\'s RPC; arrival on every agent\'s RPC event stream'
  record({ figure: 'P2', what: 'user event → last agent', key: 'last', system: 'serf', n, unit: 'ms', samples: toLast, loadBefore: lb, note })
  record({ figure: 'P2', what: 'user event → an agent (all agent observations)', key: 'all', system: 'serf', n, unit: 'ms', samples: all, loadBefore: lb, note })
}

async function serfP1 (c: SerfCluster, n: number, ctx: Ctx, sig: 'SIGSTOP' | 'SIGKILL'): Promise<void> {
  const trials = ctx.quick ? 2 : Math.max(3, ctx.trials)
  const lb = load()[0]
  const toLast: number[] = []
  const firsts: number[] = []
  for (let k = 0; k < trials; k++) {
    const live = c.agents.filter(a => alive(a.pid) && a !== c.agents[0])
    const victim = live[live.length - 1 - k]
    if (!victim) throw new Error('serf P1: no victim left')
    const observers = c.agents.filter(a => a !== victim && alive(a.pid))
    const t0 = Date.now()
    signal(victim.pid, sig)
    const seen = await watchStatus(observers, victim.name, 'failed', 60_000)
    const times = [...seen.values()].map(x => x - t0)
    toLast.push(Math.max(...times))
    firsts.push(Math.min(...times))
    if (sig === 'SIGSTOP') {
      signal(victim.pid, 'SIGCONT')
      await watchStatus(observers, victim.name, 'alive', 60_000)
    } else {
      // Remove the failed member everywhere before the next trial (serf keeps it as failed).
      victim.rpc.close()
      c.agents.splice(c.agents.indexOf(victim), 1)
    }
    await sleep(2_000)
  }
  record({ figure: sig === 'SIGKILL' ? 'P1a' : 'P1b', what: `${sig} → failed on every agent`, system: 'serf', n, unit: 's', samples: toLast.map(x => x / 1000), loadBefore: lb, note: `\`members\` over RPC polled every 50 ms on every agent; earliest: ${(summarize(firsts).min / 1000).toFixed(2)} s` })
}

async function serfP7 (c: SerfCluster, n: number, ctx: Ctx): Promise<void> {
  const trials = ctx.quick ? 2 : Math.max(3, ctx.trials)
  const lb = load()[0]
  const fromStart: number[] = []
  for (let k = 0; k < trials; k++) {
    const host = 200 + k
    const name = `serf-${host}`
    const observers = c.agents.filter(a => alive(a.pid))
    const t0 = Date.now()
    const joined: { agent?: SerfAgent } = {}
    const watching = watchStatus(observers, name, 'alive', 60_000, 20)
    joined.agent = await c.start(name, `${SERF_NET}.${host}`, `${c.agents[0]!.ip}:${SERF_PORT}`)
    const seen = await watching
    fromStart.push(Math.max(...seen.values()) - t0)
    await sleep(1_000)
  }
  record({ figure: 'P7', what: 'join: agent process start → alive on every agent', key: 'join', system: 'serf', n, unit: 's', samples: fromStart.map(x => x / 1000), loadBefore: lb, note: 'spawn of `serf agent -join` to the last agent listing it alive (members polled every 20 ms)' })
}
