// Election and replication, on simulated time (test/helpers/consensus-net.ts). Section numbers
// refer to the Raft paper (Ongaro & Ousterhout, 2014).
import { describe, expect, it } from 'vitest'
import { Consensus } from '../../src/core/consensus/consensus.js'
import { DEFAULT_CONSENSUS } from '../../src/core/consensus/config.js'
import { emptyDoc } from '../../src/core/types.js'
import { ConsensusNet } from '../helpers/consensus-net.js'

function oneLeaderPerTerm (net: ConsensusNet): void {
  for (const [term, ids] of net.leadersByTerm) expect(ids.size, `term ${term} leaders ${[...ids]}`).toBe(1)
}

describe('consensus', () => {
  it('a single bootstrapped node elects itself and can act once its own document commits', () => {
    const net = new ConsensusNet(['a'])
    net.bootstrap(['a'])
    net.run(300)
    expect(net.leaders()).toEqual(['a'])
    expect(net.node('a').currentTerm).toBe(1)
    expect(net.actors()).toEqual(['a'])
    expect(net.node('a').committed?.term).toBe(1)
  })

  it('nodes booted together elect exactly one leader (§5.2)', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const net = new ConsensusNet(['a', 'b', 'c'], seed)
      net.bootstrap(['a', 'b', 'c'])
      net.run(3_000)
      expect(net.leaders()).toHaveLength(1)
      oneLeaderPerTerm(net)
      const leader = net.leaders()[0]!
      for (const id of ['a', 'b', 'c']) expect(net.node(id).currentLeader).toBe(leader)
      // Followers hold the committed document of the current term: they may act on it.
      for (const id of ['a', 'b', 'c']) expect(net.node(id).isCurrent).toBe(true)
    }
  })

  it('a proposal commits once a majority of voters persisted it, and followers learn it (§5.3)', () => {
    const net = new ConsensusNet(['a', 'b', 'c'])
    net.bootstrap(['a', 'b', 'c'])
    net.run(1_000)
    const leader = net.leaders()[0]!
    const base = net.node(leader).acceptedDoc!
    const { term: _t, version: _v, ...content } = base
    const id = net.node(leader).propose({ ...content, desired: { www: 2 } }, net.now)
    expect(id).toBeDefined()
    net.run(100)
    expect(net.node(leader).commit).toEqual(id)
    for (const n of ['a', 'b', 'c']) expect(net.node(n).committed?.desired).toEqual({ www: 2 })
  })

  it('nothing commits without a majority: a leader cut off from both followers cannot commit', () => {
    const net = new ConsensusNet(['a', 'b', 'c'])
    net.bootstrap(['a', 'b', 'c'])
    net.run(1_000)
    const leader = net.leaders()[0]!
    const others = ['a', 'b', 'c'].filter(x => x !== leader)
    net.partition([leader], others)
    const before = net.node(leader).commit
    const { term: _t, version: _v, ...content } = net.node(leader).acceptedDoc!
    net.node(leader).propose({ ...content, desired: { app: 3 } }, net.now)
    net.run(500)
    expect(net.node(leader).commit).toEqual(before)
  })

  it('a leader that loses its majority stops acting within its lease; the majority elects a new one; never two actors', () => {
    const net = new ConsensusNet(['a', 'b', 'c'], 7)
    net.bootstrap(['a', 'b', 'c'])
    net.run(1_000)
    const old = net.leaders()[0]!
    const others = ['a', 'b', 'c'].filter(x => x !== old)
    const cutAt = net.now
    net.partition([old], others)
    let oldStoppedAt = -1
    net.run(8_000, 10, () => {
      expect(net.actors().length).toBeLessThanOrEqual(1)
      if (oldStoppedAt < 0 && !net.node(old).canAct(net.now)) oldStoppedAt = net.now
    })
    expect(oldStoppedAt - cutAt).toBeLessThanOrEqual(net.cfg.leaseMs + 600)
    const now = net.leaders().filter(l => l !== old)
    expect(now).toHaveLength(1)
    expect(net.node(now[0]!).currentTerm).toBeGreaterThan(1)
    oneLeaderPerTerm(net)
    // After healing, the old leader follows the new one.
    net.heal()
    net.run(2_000)
    expect(net.leaders()).toEqual(now)
    expect(net.node(old).currentLeader).toBe(now[0])
  })

  it('pre-vote: a node returning from isolation does not depose a healthy leader (leader stickiness)', () => {
    const net = new ConsensusNet(['a', 'b', 'c'], 3)
    net.bootstrap(['a', 'b', 'c'])
    net.run(1_000)
    const leader = net.leaders()[0]!
    const term = net.node(leader).currentTerm
    const loner = ['a', 'b', 'c'].find(x => x !== leader)!
    net.partition([loner], ['a', 'b', 'c'].filter(x => x !== loner))
    net.run(15_000)
    // Pre-vote never succeeded, so the loner did not bump its term.
    expect(net.node(loner).currentTerm).toBe(term)
    net.heal()
    net.run(2_000)
    expect(net.leaders()).toEqual([leader])
    expect(net.node(leader).currentTerm).toBe(term)
  })

  it('a leader known dead (refused redial) is replaced fast, without waiting for the election timeout', () => {
    const net = new ConsensusNet(['a', 'b', 'c'], 11)
    net.bootstrap(['a', 'b', 'c'])
    net.run(1_000)
    const old = net.leaders()[0]!
    net.crash(old)
    const t0 = net.now
    for (const id of ['a', 'b', 'c']) if (id !== old) net.node(id).leaderIsDead(old, net.now)
    let elected = -1
    net.run(2_000, 5, () => { if (elected < 0 && net.actors().length === 1) elected = net.now })
    expect(elected).toBeGreaterThan(0)
    expect(elected - t0).toBeLessThan(net.cfg.electionTimeoutMinMs)
    oneLeaderPerTerm(net)
  })

  it('votes are durable: a restarted voter does not vote twice in a term (§5.2)', () => {
    const c1 = new Consensus('b', null, 0, () => 0.5)
    c1.bootstrap({ ...emptyDoc('t'), voters: ['a', 'b', 'c'] }, 0)
    c1.ready()
    c1.step({ type: 'vote-req', term: 5, from: 'a', preVote: false, last: { term: 0, version: 1 } }, 10_000)
    const rd = c1.ready()
    expect(rd.send).toContainEqual(expect.objectContaining({ type: 'vote-resp', granted: true, to: 'a' }))
    expect(rd.persist?.votedFor).toBe('a')
    // Restart from what was persisted; c asks for a vote in the same term (once a restarted voter
    // votes again at all: see the next test).
    const c2 = new Consensus('b', rd.persist!, 20_000, () => 0.5)
    c2.step({ type: 'vote-req', term: 5, from: 'c', preVote: false, last: { term: 0, version: 1 } }, 25_000)
    expect(c2.ready().send).toContainEqual(expect.objectContaining({ type: 'vote-resp', granted: false, to: 'c' }))
  })

  it('a restarted voter grants no vote while a lease it may have granted before its crash can still run', () => {
    // b follows leader a (term 1) and acknowledges its heartbeat at 10 s: a may act until 13 s on
    // that. b's daemon crashes and is back at 10.2 s; it no longer knows it heard a. c (cut off
    // from a) asks for b's vote: granting it would let c lead and act while a still holds its lease.
    const b1 = new Consensus('b', null, 0, () => 0.5)
    b1.bootstrap({ ...emptyDoc('t'), voters: ['a', 'b', 'c'] }, 0)
    b1.step({ type: 'append', term: 1, from: 'a', doc: { ...emptyDoc('t'), voters: ['a', 'b', 'c'], term: 1, version: 2 }, commit: { term: 1, version: 2 } }, 9_000)
    b1.heartbeat({ node: 'a', peer: 'a', incarnation: 1, seq: 1, ip: '', mesh: '', api: '', load1: 0, term: 1, leader: 'a', accepted: { term: 1, version: 2 }, committed: { term: 1, version: 2 }, ackLeaderSeq: 7, joining: false, bootstrapExpect: 0, instances: {} }, 10_000)
    const disk = b1.ready().persist ?? { term: 1, votedFor: null, accepted: b1.acceptedDoc }
    const restartAt = 10_200
    const b2 = new Consensus('b', disk, restartAt, () => 0.5)
    const ask = (at: number, preVote: boolean) => {
      b2.step({ type: 'vote-req', term: 2, from: 'c', preVote, last: { term: 1, version: 2 } }, at)
      return b2.ready().send.find(m => m.type === 'vote-resp')
    }
    expect(ask(10_300, true)).toMatchObject({ granted: false })
    expect(ask(10_300, false)).toMatchObject({ granted: false })
    expect(b2.currentTerm).toBe(1)
    expect(ask(restartAt + DEFAULT_CONSENSUS.electionTimeoutMinMs - 1, false)).toMatchObject({ granted: false })
    // Past the time any lease it granted could run, it votes again (a fresh cluster member is not held back).
    expect(ask(restartAt + DEFAULT_CONSENSUS.electionTimeoutMinMs, true)).toMatchObject({ granted: true })
    expect(ask(restartAt + DEFAULT_CONSENSUS.electionTimeoutMinMs, false)).toMatchObject({ granted: true })
    expect(DEFAULT_CONSENSUS.leaseMs).toBeLessThan(DEFAULT_CONSENSUS.electionTimeoutMinMs)
  })

  it('a voter that crashed while leading votes at once after its restart (it owed no lease), and one that stepped down first does not', () => {
    // a wins term 1 (b votes for it), leads, and crashes; back at 10.2 s, b (which saw a dead) asks
    // for its vote: it grants it at once. The bench's back-to-back leader kills waited 4 s for this.
    const a1 = new Consensus('a', null, 0, () => 0)
    a1.bootstrap({ ...emptyDoc('t'), voters: ['a', 'b', 'c'] }, 0)
    a1.tick(1)
    expect(a1.ready().send).toContainEqual(expect.objectContaining({ type: 'vote-req', preVote: true }))
    a1.step({ type: 'vote-resp', term: 1, from: 'b', to: 'a', preVote: true, granted: true }, 2)
    a1.step({ type: 'vote-resp', term: 1, from: 'b', to: 'a', preVote: false, granted: true }, 3)
    expect(a1.currentRole).toBe('leader')
    const leading = a1.ready().persist!
    expect(leading.leading).toBe(true)
    const ask = (c: Consensus, at: number, preVote: boolean) => {
      c.step({ type: 'vote-req', term: 2, from: 'b', preVote, last: { term: 1, version: 2 } }, at)
      return c.ready().send.find(m => m.type === 'vote-resp')
    }
    const a2 = new Consensus('a', leading, 10_200, () => 0.5)
    expect(ask(a2, 10_300, true)).toMatchObject({ granted: true })
    expect(ask(a2, 10_300, false)).toMatchObject({ granted: true })
    // The same leader deposed by a higher term (it may then acknowledge the new leader) persists
    // that it no longer leads: after a crash it is quiet again.
    a1.step({ type: 'vote-req', term: 5, from: 'c', preVote: false, last: { term: 9, version: 9 } }, 20_000)
    const deposed = a1.ready().persist!
    expect(deposed.leading).toBe(false)
    const a3 = new Consensus('a', deposed, 20_200, () => 0.5)
    a3.step({ type: 'vote-req', term: 6, from: 'b', preVote: true, last: { term: 9, version: 9 } }, 20_300)
    expect(a3.ready().send.find(m => m.type === 'vote-resp')).toMatchObject({ granted: false })
  })

  it('up-to-date check: a voter refuses a candidate whose document is older than its own (§5.4.1)', () => {
    const c = new Consensus('b', { term: 3, votedFor: null, accepted: { ...emptyDoc('t'), voters: ['a', 'b', 'c'], term: 3, version: 9 } }, 0, () => 0.5)
    c.step({ type: 'vote-req', term: 4, from: 'a', preVote: false, last: { term: 3, version: 8 } }, 10_000)
    expect(c.ready().send).toContainEqual(expect.objectContaining({ type: 'vote-resp', granted: false }))
    c.step({ type: 'vote-req', term: 4, from: 'c', preVote: false, last: { term: 3, version: 9 } }, 10_000)
    expect(c.ready().send).toContainEqual(expect.objectContaining({ type: 'vote-resp', granted: true, to: 'c' }))
  })

  it('majorities count the committed voter set, not live members: two of five cannot elect', () => {
    const net = new ConsensusNet(['a', 'b', 'c', 'd', 'e'], 5)
    net.bootstrap(['a', 'b', 'c', 'd', 'e'])
    net.run(1_000)
    for (const id of ['a', 'b', 'c', 'd', 'e']) net.crash(id)
    net.restart('a')
    net.restart('b')
    net.run(20_000)
    expect(net.leaders()).toEqual([])
  })

  it('a node that lost its state (amnesia) votes again only after a committed removal from the voters', () => {
    const c = new Consensus('b', null, 0, () => 0.5, undefined, true)
    c.step({ type: 'append', term: 7, from: 'a', doc: { ...emptyDoc('t'), voters: ['a', 'b', 'c'], term: 7, version: 3 }, commit: { term: 7, version: 3 } }, 0)
    c.ready()
    expect(c.heartbeatFields(1).amnesic).toBe(true)
    c.step({ type: 'vote-req', term: 8, from: 'c', preVote: false, last: { term: 7, version: 3 } }, 60_000)
    expect(c.ready().send.filter(m => m.type === 'vote-resp')).toEqual([])
    // The leader removes it (committed), then adds it back: it votes again.
    c.step({ type: 'append', term: 9, from: 'a', doc: { ...emptyDoc('t'), voters: ['a', 'c'], term: 9, version: 4 }, commit: { term: 9, version: 4 } }, 61_000)
    expect(c.isAmnesic).toBe(false)
    c.step({ type: 'append', term: 9, from: 'a', doc: { ...emptyDoc('t'), voters: ['a', 'b', 'c'], term: 9, version: 5 }, commit: { term: 9, version: 5 } }, 61_100)
    c.ready()
    c.step({ type: 'vote-req', term: 10, from: 'c', preVote: false, last: { term: 9, version: 5 } }, 120_000)
    expect(c.ready().send).toContainEqual(expect.objectContaining({ type: 'vote-resp', granted: true, to: 'c' }))
  })
})
