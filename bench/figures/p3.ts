// P3 failover: the leader's daemon SIGKILLed → a change applies again (a scale POSTed to another
// node until it is committed), ≥ 20 trials; etcd's 3-member leader SIGKILLed → a put succeeds
// again. Then spurious elections (term changes) of both while idle and while both cores are
// saturated (stress --cpu 2).
import { spawn } from 'node:child_process'
import type { Ctx } from '../lib/ctx.js'
import { startEtcd, etcdPut, etcdStatus, type EtcdCluster } from '../lib/etcd.js'
import { killGroup, trackGroup } from '../lib/cleanup.js'
import { load, signal, sleep, waitUntil } from '../lib/proc.js'
import { record } from '../lib/results.js'
import { ensurePackages } from '../lib/serf.js'
import { summarize } from '../lib/stats.js'
import { benchSpec, startWakame, waitUntilSettled, type WakameCluster } from '../lib/wakame.js'

const WAKAME_NET = '127.0.103'
const ETCD_NET = '127.0.102'

export async function p3 (ctx: Ctx): Promise<void> {
  console.log(`\n== P3 failover (load ${load().join(' ')})`)
  const c = await startWakame({ name: 'p3', net: WAKAME_NET, nodes: 3, spec: benchSpec({ minNodes: 3, maxNodes: 4, www: { min: 1, max: 3 }, lb: false, probe: { max: 3 } }) })
  try {
    await wakameFailover(c, ctx)
    const e = await startEtcd(ETCD_NET)
    try {
      await etcdFailover(e, ctx)
      await spurious(c, e, ctx, false)
      await spurious(c, e, ctx, true)
    } finally {
      await e.stop()
    }
  } finally {
    await c.stop()
  }
}

async function wakameFailover (c: WakameCluster, ctx: Ctx): Promise<void> {
  const lb = load()[0]
  const acting: number[] = []
  const elected: number[] = []
  for (let k = 0; k < ctx.failoverTrials; k++) {
    await waitUntilSettled(c, 3, 120_000)
    const s = await waitUntil('3 voters alive, one leader, the same document everywhere', async () => {
      const all = await Promise.all(c.running().map(async v => await c.status(v.id, 2_000).catch(() => undefined)))
      const a = all[0]
      const ok = a && a.leader && all.length === 3 && all.every(x => x && x.leader === a.leader && x.term === a.term && x.committed?.version === a.committed?.version) &&
        a.nodes.filter(n => n.voter && n.status === 'alive').length === 3
      return ok ? a : undefined
    }, 60_000, 200)
    await sleep(1_000)
    const leader = s.leader!
    const others = c.running().map(v => v.id).filter(id => id !== leader)
    const want = (s.services.find(v => v.name === 'probe')?.desired ?? 0) === 0 ? 1 : 0
    const init = c.vm(leader).pid
    const daemon = c.daemonPid(leader)
    const mark = c.logMark()
    // The init is frozen so it does not restart the daemon during the trial (as etcd's member stays down).
    signal(init, 'SIGSTOP')
    const t0 = Date.now()
    signal(daemon, 'SIGKILL')
    let i = 0
    try {
      await waitUntil('a change committed by a new leader', async () => {
        const node = others[i++ % others.length]!
        try { await c.change('/v1/services/probe/scale', { count: want }, node); return true } catch { return false }
      }, 60_000, 20)
      acting.push(Date.now() - t0)
      const became = c.logsSince(mark, e => e.msg === 'consensus: became-leader')[0]
      if (became) elected.push(became.time - t0)
    } finally {
      signal(init, 'SIGCONT')
    }
  }
  const sa = summarize(acting)
  record({ figure: 'P3', what: 'leader SIGKILL → a change committed', system: 'wakame', n: 3, unit: 's', samples: acting.map(x => x / 1000), loadBefore: lb, goal: 'p50 ≤ 0.6 s, p99 ≤ 1.5 s', met: sa.p50 <= 600 && sa.p99 <= 1_500, note: 'leader daemon SIGKILLed (its VM init frozen meanwhile); POST scale to the other nodes every 20 ms (1 s timeout) until one answers ok (= committed by a majority)' })
  record({ figure: 'P3', what: 'leader SIGKILL → new leader elected', key: 'elected', system: 'wakame', n: 3, unit: 's', samples: elected.map(x => x / 1000), loadBefore: lb, note: '"consensus: became-leader" log line of the new leader' })
}

async function etcdFailover (e: EtcdCluster, ctx: Ctx): Promise<void> {
  const lb = load()[0]
  const samples: number[] = []
  for (let k = 0; k < ctx.failoverTrials; k++) {
    const leader = await e.leader()
    await sleep(1_000)
    const others = e.members.filter(m => m !== leader)
    const t0 = Date.now()
    signal(leader.pid, 'SIGKILL')
    let i = 0
    await waitUntil('an etcd write', async () => await etcdPut(others[i++ % others.length]!, `bench/${k}`, String(Date.now()), 1_000), 60_000, 20)
    samples.push(Date.now() - t0)
    await e.restart(leader)
  }
  record({ figure: 'P3', what: 'leader SIGKILL → a write succeeds', system: 'etcd', n: 3, unit: 's', samples: samples.map(x => x / 1000), loadBefore: lb, note: 'etcd 3 members; PUT through the v3 JSON gateway to the others every 20 ms (1 s timeout)' })
}

async function terms (c: WakameCluster, e: EtcdCluster): Promise<{ wakame: number, etcd: number }> {
  const w = await Promise.all(c.running().map(async v => (await c.status(v.id, 3_000).catch(() => undefined))?.term ?? 0))
  const t = await Promise.all(e.members.map(async m => (await etcdStatus(m).catch(() => undefined))?.raftTerm ?? 0))
  return { wakame: Math.max(...w), etcd: Math.max(...t.filter(Number.isFinite)) }
}

async function spurious (c: WakameCluster, e: EtcdCluster, ctx: Ctx, stressed: boolean): Promise<void> {
  await waitUntilSettled(c, 3, 120_000)
  await e.leader()
  await sleep(2_000)
  const minutes = ctx.electionMinutes
  let stressPid: number | undefined
  if (stressed) {
    ensurePackages([{ bin: 'stress', pkg: 'stress' }])
    const child = spawn('stress', ['--cpu', '2', '--timeout', String(Math.ceil(minutes * 60 + 30))], { detached: true, stdio: 'ignore' })
    child.unref()
    stressPid = child.pid!
    trackGroup(stressPid)
  }
  const lb = load()[0]
  const mark = c.logMark()
  const before = await terms(c, e)
  console.log(`  ${minutes} min ${stressed ? 'with both cores saturated (stress --cpu 2)' : 'idle'}: terms at start wakame ${before.wakame}, etcd ${before.etcd}`)
  try {
    await sleep(minutes * 60_000)
  } finally {
    if (stressPid !== undefined) killGroup(stressPid)
  }
  await sleep(2_000)
  const after = await terms(c, e)
  const logged = c.logsSince(mark, x => x.msg === 'consensus: term-changed').length
  const what = `spurious elections (term changes) in ${minutes} min ${stressed ? 'saturated' : 'idle'}`
  record({ figure: 'P3', what, key: stressed ? 'spurious-busy' : 'spurious-idle', system: 'wakame', n: 3, unit: 'terms', samples: [after.wakame - before.wakame], loadBefore: lb, goal: '0', met: after.wakame === before.wakame, note: `highest term of any node, start→end; ${logged} "term-changed" log lines on all nodes` })
  record({ figure: 'P3', what, key: stressed ? 'spurious-busy' : 'spurious-idle', system: 'etcd', n: 3, unit: 'terms', samples: [after.etcd - before.etcd], loadBefore: lb, note: 'raft_term of the members, start→end' })
}
