// Failures on real processes: the leader's VM killed, and a daemon frozen for 2 s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { balancerUrl, kill, requestLoop, settled, startCluster, type TestCluster } from '../helpers/cluster.js'

let c: TestCluster

beforeAll(async () => {
  c = await startCluster({ net: '127.0.22' })
  const r = await c.cli('launch_cluster')
  if (r.code !== 0) throw new Error(r.stderr)
  await c.waitFor('all ONLINE on 3 voters', s => settled(s) && s.nodes.filter(n => n.voter).length === 3)
})
afterAll(async () => { await c?.cleanup() })

describe('failover', () => {
  it('SIGSTOP of a daemon for 2 s: nobody declares it dead, and no balancer list changes', async () => {
    const s0 = await c.status()
    const lbNode = s0.services.find(v => v.name === 'lb')!.instances[0]!.node!
    // Freeze a node that runs app or www (not the balancer's node), whose services keep serving.
    const victim = s0.services.filter(v => v.name === 'app' || v.name === 'www').flatMap(v => v.instances).map(i => i.node!).find(n => n !== lbNode)!
    const observer = s0.nodes.find(n => n.id !== victim && n.status === 'alive')!.id
    const loop = requestLoop(new URL('/api', balancerUrl(s0)).toString(), 10)
    const seen = new Set<string>()
    // The daemon only (not its VM's init, which leads the group): its services keep serving.
    const pid = c.daemonPid(victim)
    kill(pid, 'SIGSTOP')
    const until = Date.now() + 2_000
    while (Date.now() < until) {
      const s = await c.status(c.api(observer))
      for (const n of s.nodes) if (n.id === victim) seen.add(n.status)
      await new Promise(r => setTimeout(r, 100))
    }
    kill(pid, 'SIGCONT')
    await c.waitFor('victim alive again', s => s.nodes.find(n => n.id === victim)?.status === 'alive', 10_000, c.api(observer))
    const res = await loop.stop()
    expect(seen.has('dead'), [...seen].join()).toBe(false)
    expect(res.failed, res.failures.join('\n')).toBe(0)
    // Its instances never moved.
    const s1 = await c.status()
    expect(s1.services.flatMap(v => v.instances).filter(i => i.node === victim).map(i => i.id).sort())
      .toEqual(s0.services.flatMap(v => v.instances).filter(i => i.node === victim).map(i => i.id).sort())
  })

  it('SIGKILL of the leader\'s VM: a new leader in a higher term, and the cluster keeps working', async () => {
    const s0 = await c.waitFor('settled', settled)
    const old = s0.leader!
    const oldTerm = s0.term
    const other = s0.nodes.find(n => n.id !== old && n.status === 'alive')!.id
    const t0 = Date.now()
    kill(-c.vm(old).pgid, 'SIGKILL')
    const s1 = await c.waitFor('a new leader', s => s.leader !== null && s.leader !== old, 30_000, c.api(other))
    const failover = Date.now() - t0
    expect(s1.term).toBeGreaterThan(oldTerm)
    console.log(`leader ${old} killed: ${s1.leader} leads term ${s1.term} after ${failover} ms (seen by polling)`)
    // The cluster keeps working: instances of the dead VM come back, and a change still applies.
    const s2 = await c.waitFor('settled again', s => settled(s) && !s.services.some(v => v.instances.some(i => i.node === old)), 90_000, c.api(other))
    expect(s2.services.map(v => v.current)).toEqual(s2.services.map(v => v.desired))
    const cli = await c.cli('--node', c.api(other), 'propagate_service', 'www')
    expect(cli.code, cli.stdout + cli.stderr).toBe(0)
    const s3 = await c.waitFor('two www', s => settled(s) && s.services.find(v => v.name === 'www')!.current === 2, 60_000, c.api(other))
    const lb = balancerUrl(s3)
    const res = await (await fetch(new URL('/api', lb))).json() as { hits: number }
    expect(res.hits).toBeGreaterThan(0)
  })
})
