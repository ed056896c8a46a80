// Leader election and replication of the cluster document, after Raft (Ongaro & Ousterhout 2014)
// with etcd's PreVote and CheckQuorum. A pure state machine in the style of etcd's raft package:
// step(msg, now), heartbeat(hb, now) and tick(now) only record what to persist and send; the caller
// drains ready(), persists first, then sends. No timers, sockets or clocks inside.
//
// The replicated "log" is one document that each version replaces whole, identified by
// (term, version) and compared term first, like Raft's (lastLogTerm, lastLogIndex).
// Safety rules (see ../shared/ARCHITECTURE.md, "Safety notes"):
// - majorities are counted over the voter set in the latest document, never over live members;
// - (term, votedFor) is persisted before a vote is sent;
// - a voter refuses a candidate whose document is older than its own (§5.4.1);
// - a leader counts acknowledgements only for documents of its own term (§5.4.2), and proposes a
//   document in its term when elected, so earlier documents commit through it;
// - pre-vote, and voters ignore vote requests while they hear a leader (leader stickiness), and
//   grant none for the same time after a restart (stickiness is not persisted);
// - a leader acts only while it holds a lease: a majority acknowledged a heartbeat it sent within
//   leaseMs, which is below the time voters wait before voting for anyone else.
import { compareDocId, type ClusterDoc, type DocId, type Heartbeat, type NodeId } from '../types.js'
import { DEFAULT_CONSENSUS, type ConsensusConfig } from './config.js'
import type { Ack, Append, ConsensusMsg, DocRequest, VoteRequest, VoteResponse } from './messages.js'

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader'

/** What must survive a restart. Persisted before any message that depends on it is sent. */
export interface PersistentState {
  term: number
  votedFor: NodeId | null
  /** Latest document this node accepted (from a leader, or made as leader). */
  accepted: ClusterDoc | null
  /**
   * Written while this node led `term`. A leader acknowledges nobody's heartbeats, and it campaigned
   * only once no lease from its own acknowledgements could run (4 s after hearing the old leader, or
   * that leader dead), so after a restart from such a state it owes no quiet period (restartedAt).
   */
  leading?: boolean
  /**
   * Written while the node is amnesic (it lost its state, see Consensus.amnesic), so that another
   * restart before it is re-added does not make it look fresh (and, with bootstrap_expect 1, form a
   * new cluster).
   */
  amnesic?: boolean
}

export type ConsensusEvent =
  | { type: 'became-leader', term: number }
  | { type: 'stepped-down', term: number, reason: string }
  | { type: 'leader-changed', leader: NodeId | null, term: number }
  | { type: 'term-changed', term: number }

export interface Ready {
  /** Persist this before sending `send`. */
  persist?: PersistentState
  send: ConsensusMsg[]
  /** A newer committed document to act on. */
  committed?: ClusterDoc
  events: ConsensusEvent[]
}

/** Randomness is injected so the simulator can replay a seed: returns a number in [0, 1). */
export type Rng = () => number

const RECENT_DOCS = 8
const NOTHING: Ready = Object.freeze({ send: Object.freeze([]) as unknown as ConsensusMsg[], events: Object.freeze([]) as unknown as ConsensusEvent[] }) as Ready

export class Consensus {
  readonly id: NodeId
  private readonly cfg: ConsensusConfig
  private readonly rng: Rng

  // Persistent
  private term: number
  private votedFor: NodeId | null
  private accepted: ClusterDoc | null

  // Volatile
  private role: Role = 'follower'
  private leader: NodeId | null = null
  private leaderDead = false
  private lastLeaderContact = -Infinity
  private electionDeadline: number
  private votes = new Set<NodeId>()
  private commitId: DocId | null = null
  private committedDoc: ClusterDoc | null = null
  /** True once this node holds a committed document from the leader of its current term. */
  private current = false
  /** Recent documents by "term:version", so a commit point can be matched to the document it names. */
  private readonly recent = new Map<string, ClusterDoc>()

  // Leader only
  private acks = new Map<NodeId, DocId>()
  private seq = 0
  private readonly seqSentAt = new Map<number, number>()
  private readonly ackSentAt = new Map<NodeId, number>()
  private lastQuorumAt = -Infinity
  private lastAppendAt = -Infinity

  // Output buffer
  private dirty = false
  private out: ConsensusMsg[] = []
  private events: ConsensusEvent[] = []
  private newlyCommitted: ClusterDoc | undefined

  /**
   * Set when the persisted state was lost (a corrupt file): this node may have voted, and
   * acknowledged documents, that it no longer remembers. Like a server that lost its disk in Raft,
   * it must not vote until it has been removed from the voter set (the leader does that when it
   * sees `amnesic` in its heartbeats) and re-added afresh.
   */
  private amnesic: boolean

  /**
   * When a node restarted with its persisted state (undefined for a fresh node). Before the crash
   * it may have acknowledged a leader's heartbeat, granting that leader a lease that may still run:
   * leader stickiness is volatile, so for electionTimeoutMinMs after the restart it grants no vote
   * to anyone, exactly as if it had just heard that leader (which it cannot name any more).
   * Not when it crashed as the leader (PersistentState.leading): then no such lease exists, and
   * its silence would only slow the election that replaces it.
   */
  private readonly restartedAt: number | undefined

  constructor (id: NodeId, persisted: PersistentState | null, now: number, rng: Rng, cfg: ConsensusConfig = DEFAULT_CONSENSUS, amnesic = false) {
    this.id = id
    this.amnesic = amnesic || persisted?.amnesic === true
    // Remember the amnesia at once: the lost file is gone, and the next start must still know.
    if (this.amnesic) this.dirty = true
    this.cfg = cfg
    this.rng = rng
    this.term = persisted?.term ?? 0
    this.votedFor = persisted?.votedFor ?? null
    this.accepted = persisted?.accepted ?? null
    if (this.accepted) this.remember(this.accepted)
    this.restartedAt = persisted?.accepted && persisted.leading !== true ? now : undefined
    this.electionDeadline = now + this.randomTimeout()
  }

  // ---- queries ----

  get currentTerm (): number { return this.term }
  get currentRole (): Role { return this.role }
  get currentLeader (): NodeId | null { return this.leader }
  get acceptedDoc (): ClusterDoc | null { return this.accepted }
  get committed (): ClusterDoc | null { return this.committedDoc }
  get commit (): DocId | null { return this.commitId }
  get votedForInTerm (): NodeId | null { return this.votedFor }
  /** Lost its persisted state; does not vote until re-added to the voters. */
  get isAmnesic (): boolean { return this.amnesic }
  /** Holds the committed document of the current leader's term (a restarted node acts on nothing before). */
  get isCurrent (): boolean { return this.current }
  voters (): NodeId[] { return this.accepted?.voters ?? [] }
  isVoter (id: NodeId = this.id): boolean { return this.voters().includes(id) }

  /** The leader may act: it holds a lease and has committed a document of its own term. */
  canAct (now: number): boolean {
    return this.role === 'leader' && this.leaseValid(now) && this.committedDoc?.term === this.term
  }

  leaseValid (now: number): boolean {
    if (this.role !== 'leader') return false
    const voters = this.voters()
    let fresh = voters.includes(this.id) ? 1 : 0
    for (const v of voters) {
      if (v === this.id) continue
      const at = this.ackSentAt.get(v)
      if (at !== undefined && now - at < this.cfg.leaseMs) fresh++
    }
    return fresh >= majority(voters.length)
  }

  /** Fields this node puts in its heartbeat; a leader's heartbeat gets a sequence number for its lease. */
  heartbeatFields (now: number): Pick<Heartbeat, 'term' | 'leader' | 'commit' | 'accepted' | 'committed' | 'ackLeaderSeq' | 'joining' | 'amnesic'> {
    const base = {
      ...(this.amnesic ? { amnesic: true } : {}),
      term: this.term,
      leader: this.leader,
      accepted: docId(this.accepted),
      committed: docId(this.committedDoc),
      joining: !this.current
    }
    if (this.role === 'leader') {
      this.seq++
      this.seqSentAt.set(this.seq, now)
      for (const s of this.seqSentAt.keys()) if (s < this.seq - 64) this.seqSentAt.delete(s)
      // In a leader's heartbeat, ackLeaderSeq is its own sequence number, which followers echo back.
      return { ...base, commit: this.commitId ?? undefined, ackLeaderSeq: this.seq }
    }
    return { ...base, ackLeaderSeq: this.leaderSeqHeard }
  }

  private leaderSeqHeard: number | undefined
  /** Whether this follower has heard a heartbeat of its current leader (it has something to acknowledge). */
  get heardLeaderHeartbeat (): boolean { return this.leaderSeqHeard !== undefined }

  // ---- inputs ----

  /** Start a new cluster with these voters (nodes booted together, or a single first node). */
  bootstrap (doc: ClusterDoc, now: number): void {
    if (this.accepted) return
    this.accepted = { ...doc, term: 0, version: 1 }
    this.remember(this.accepted)
    this.dirty = true
    // Campaign soon: nobody leads a cluster that did not exist a moment ago. Voters go in id order,
    // a jitter apart, so nodes booted together rarely split the first vote.
    const rank = Math.max(0, doc.voters.indexOf(this.id))
    this.electionDeadline = now + (rank + this.rng()) * this.cfg.fastElectionJitterMs
  }

  /** Membership declared the leader dead (its redial was refused, or it fell silent past the stall bound). */
  leaderIsDead (id: NodeId, now: number): void {
    if (id !== this.leader || this.role === 'leader') return
    this.leaderDead = true
    this.electionDeadline = Math.min(this.electionDeadline, now + this.rng() * this.cfg.fastElectionJitterMs)
  }

  heartbeat (hb: Heartbeat, now: number): void {
    if (hb.node === this.id) return
    if (hb.term > this.term) {
      this.becomeFollower(hb.term, hb.leader === hb.node ? hb.node : null, now)
    }
    if (hb.term !== this.term) return
    if (hb.leader === hb.node && hb.node !== this.id) {
      this.heardLeader(hb.node, now)
      if (hb.ackLeaderSeq !== undefined) this.leaderSeqHeard = hb.ackLeaderSeq
      if (hb.commit) this.learnCommit(hb.commit)
      return
    }
    if (this.role === 'leader' && hb.leader === this.id && hb.ackLeaderSeq !== undefined) {
      const sentAt = this.seqSentAt.get(hb.ackLeaderSeq)
      if (sentAt !== undefined && (this.ackSentAt.get(hb.node) ?? -Infinity) < sentAt) this.ackSentAt.set(hb.node, sentAt)
      if (this.leaseValid(now)) this.lastQuorumAt = now
      // What a follower reports having persisted counts as its acknowledgement: an ack lost on the
      // way would otherwise leave a document uncommitted until the next change.
      if (hb.accepted && hb.accepted.term === this.term && compareDocId(hb.accepted, this.acks.get(hb.node)) > 0) {
        this.acks.set(hb.node, hb.accepted)
        this.advanceCommit(now)
      }
      // A follower without our latest document gets it again (at most once per 200 ms): an append
      // lost on the way would otherwise never commit (Raft retries AppendEntries the same way).
      if (compareDocId(hb.accepted, docId(this.accepted)) < 0) this.sendAppend(now, false)
    }
  }

  step (msg: ConsensusMsg, now: number): void {
    if (msg.from === this.id) return
    if ('to' in msg && msg.to !== this.id) return
    switch (msg.type) {
      case 'vote-req': return this.onVoteRequest(msg, now)
      case 'vote-resp': return this.onVoteResponse(msg, now)
      case 'append': return this.onAppend(msg, now)
      case 'ack': return this.onAck(msg, now)
      case 'commit':
        if (msg.term > this.term) this.becomeFollower(msg.term, msg.from, now)
        if (msg.term === this.term && msg.from === this.leader) { this.heardLeader(msg.from, now); this.learnCommit(msg.commit) }
        return
      case 'doc-req': return this.onDocRequest(msg, now)
    }
  }

  tick (now: number): void {
    if (this.role === 'leader') {
      if (this.leaseValid(now)) this.lastQuorumAt = now
      else if (now - this.lastQuorumAt >= this.cfg.electionTimeoutMaxMs) {
        // CheckQuorum: a leader cut off from a majority stops claiming the role.
        this.events.push({ type: 'stepped-down', term: this.term, reason: 'no majority of voters heard within the election timeout' })
        this.becomeFollower(this.term, null, now)
      }
      return
    }
    if (now < this.electionDeadline) return
    this.electionDeadline = now + this.randomTimeout()
    if (!this.isVoter() || this.amnesic) return
    this.startPreVote(now)
  }

  /**
   * Leader only: replace the document. `next` is built from the current accepted document; term
   * and version are set here. Returns its id, or undefined when this node is not the leader.
   */
  propose (next: Omit<ClusterDoc, 'term' | 'version'>, now: number): DocId | undefined {
    if (this.role !== 'leader' || !this.accepted) return undefined
    const doc: ClusterDoc = { ...next, term: this.term, version: this.accepted.version + 1 } as ClusterDoc
    this.accepted = doc
    this.remember(doc)
    this.dirty = true
    this.acks.set(this.id, docId(doc)!)
    this.sendAppend(now, true)
    this.advanceCommit(now)
    return docId(doc)!
  }

  /** Everything to persist, send and act on since the last call. */
  ready (): Ready {
    // The common case (a heartbeat that changed nothing) allocates nothing.
    if (!this.dirty && this.out.length === 0 && this.events.length === 0 && this.newlyCommitted === undefined) return NOTHING
    const rd: Ready = {
      send: this.out,
      events: this.events,
      persist: this.dirty ? { term: this.term, votedFor: this.votedFor, accepted: this.accepted, leading: this.role === 'leader', ...(this.amnesic ? { amnesic: true } : {}) } : undefined,
      committed: this.newlyCommitted
    }
    this.out = []
    this.events = []
    this.dirty = false
    this.newlyCommitted = undefined
    return rd
  }

  // ---- election ----

  private startPreVote (now: number): void {
    this.role = 'pre-candidate'
    this.votes = new Set([this.id])
    this.out.push({ type: 'vote-req', term: this.term + 1, from: this.id, preVote: true, last: docId(this.accepted) })
    this.maybeWin(now, true)
  }

  private campaign (now: number): void {
    this.role = 'candidate'
    this.term++
    this.votedFor = this.id
    this.leader = null
    this.dirty = true
    this.votes = new Set([this.id])
    this.events.push({ type: 'term-changed', term: this.term })
    this.out.push({ type: 'vote-req', term: this.term, from: this.id, preVote: false, last: docId(this.accepted) })
    // A majority already agreed (pre-vote) that there is no leader: after a split vote, retry soon
    // rather than after a full election timeout.
    this.electionDeadline = now + this.cfg.fastElectionJitterMs * (1 + 3 * this.rng())
    this.maybeWin(now, false)
  }

  private maybeWin (now: number, preVote: boolean): void {
    const voters = this.voters()
    let n = 0
    for (const v of this.votes) if (voters.includes(v)) n++
    if (n < majority(voters.length)) return
    if (preVote) this.campaign(now)
    else this.becomeLeader(now)
  }

  private onVoteRequest (m: VoteRequest, now: number): void {
    // Any node holding a document answers, voter or not, as in Raft: a voter added by a change it
    // has not received yet must still be able to vote (the candidate counts only its own voters).
    if (!this.accepted || this.amnesic) return
    // Leader stickiness: while a live leader was heard recently, requests are ignored, so a node
    // returning from a partition cannot depose a healthy leader by bumping the term.
    const inLease = this.leader !== null && this.leader !== m.from && !this.leaderDead &&
      now - this.lastLeaderContact < this.cfg.electionTimeoutMinMs
    // Just restarted: a lease it granted before may still run (see restartedAt).
    const quiet = this.restartedAt !== undefined && now - this.restartedAt < this.cfg.electionTimeoutMinMs
    // Up to date (§5.4.1); and a candidate must be a voter of the configuration we know, unless its
    // document is newer than ours (then it may hold a change that added it).
    const cmp = compareDocId(m.last, docId(this.accepted))
    const candidateOk = cmp >= 0 && (cmp > 0 || this.isVoter(m.from))
    if (m.preVote) {
      const granted = m.term > this.term && !inLease && !quiet && candidateOk && this.role !== 'leader'
      this.out.push({ type: 'vote-resp', term: granted ? m.term : this.term, from: this.id, to: m.from, preVote: true, granted })
      return
    }
    if (m.term < this.term || quiet) {
      this.out.push({ type: 'vote-resp', term: this.term, from: this.id, to: m.from, preVote: false, granted: false })
      return
    }
    if (inLease) return
    if (m.term > this.term) this.becomeFollower(m.term, null, now)
    const granted = (this.votedFor === null || this.votedFor === m.from) && candidateOk
    if (granted) {
      this.votedFor = m.from
      this.dirty = true
      this.electionDeadline = now + this.randomTimeout()
    }
    this.out.push({ type: 'vote-resp', term: this.term, from: this.id, to: m.from, preVote: false, granted })
  }

  private onVoteResponse (m: VoteResponse, now: number): void {
    if (m.preVote) {
      if (this.role !== 'pre-candidate') return
      if (m.granted && m.term === this.term + 1) { this.votes.add(m.from); this.maybeWin(now, true) } else if (!m.granted && m.term > this.term) this.becomeFollower(m.term, null, now)
      return
    }
    if (m.term > this.term) { this.becomeFollower(m.term, null, now); return }
    if (this.role !== 'candidate' || m.term !== this.term || !m.granted) return
    this.votes.add(m.from)
    this.maybeWin(now, false)
  }

  private becomeLeader (now: number): void {
    this.role = 'leader'
    this.leader = this.id
    this.leaderDead = false
    this.acks = new Map()
    this.ackSentAt.clear()
    this.seqSentAt.clear()
    this.lastQuorumAt = now
    this.current = false
    this.events.push({ type: 'became-leader', term: this.term })
    this.events.push({ type: 'leader-changed', leader: this.id, term: this.term })
    // Commit a document of our own term: earlier ones commit through it (Raft §5.4.2).
    const { term: _t, version: _v, ...content } = this.accepted!
    this.propose(content, now)
  }

  private becomeFollower (term: number, leader: NodeId | null, now: number): void {
    const wasLeader = this.role === 'leader'
    if (term > this.term) {
      this.term = term
      this.votedFor = null
      this.dirty = true
      this.current = false
      this.events.push({ type: 'term-changed', term })
    }
    if (wasLeader) this.events.push({ type: 'stepped-down', term: this.term, reason: 'a higher term was seen' })
    // The persisted state must stop saying "leading" before this node acknowledges anyone.
    if (wasLeader) this.dirty = true
    this.role = 'follower'
    if (leader !== this.leader) {
      this.leader = leader
      this.leaderSeqHeard = undefined
      this.events.push({ type: 'leader-changed', leader, term: this.term })
    }
    if (leader) this.heardLeader(leader, now)
  }

  private heardLeader (leader: NodeId, now: number): void {
    if (this.role !== 'follower') this.role = 'follower'
    if (this.leader !== leader) {
      this.leader = leader
      this.leaderSeqHeard = undefined
      this.events.push({ type: 'leader-changed', leader, term: this.term })
    }
    this.leaderDead = false
    this.lastLeaderContact = now
    this.electionDeadline = now + this.randomTimeout()
  }

  // ---- replication ----

  private onAppend (m: Append, now: number): void {
    if (m.term < this.term) return
    if (m.term > this.term || this.role !== 'follower' || this.leader !== m.from) this.becomeFollower(m.term, m.from, now)
    this.heardLeader(m.from, now)
    if (m.doc.term > m.term) return // malformed: a leader cannot send a document from the future
    if (compareDocId(docId(m.doc), docId(this.accepted)) > 0) {
      this.accepted = m.doc
      this.remember(m.doc)
      this.dirty = true
    }
    if (this.accepted) this.out.push({ type: 'ack', term: this.term, from: this.id, to: m.from, doc: docId(this.accepted)! })
    if (m.commit) this.learnCommit(m.commit)
  }

  private onAck (m: Ack, now: number): void {
    if (m.term > this.term) { this.becomeFollower(m.term, null, now); return }
    if (this.role !== 'leader' || m.term !== this.term) return
    const prev = this.acks.get(m.from)
    if (compareDocId(m.doc, prev) > 0) this.acks.set(m.from, m.doc)
    this.advanceCommit(now)
  }

  private onDocRequest (m: DocRequest, now: number): void {
    if (this.role !== 'leader') return
    if (compareDocId(m.have, this.commitId) < 0 || compareDocId(m.have, docId(this.accepted)) < 0) this.sendAppend(now, false)
  }

  private sendAppend (now: number, force: boolean): void {
    if (!this.accepted) return
    if (!force && now - this.lastAppendAt < 200) return
    this.lastAppendAt = now
    this.out.push({ type: 'append', term: this.term, from: this.id, doc: this.accepted, commit: this.commitId })
  }

  private advanceCommit (now: number): void {
    if (this.role !== 'leader' || !this.accepted) return
    const voters = this.voters()
    const need = majority(voters.length)
    // Highest version of this term acknowledged by a majority of voters.
    const versions: number[] = []
    for (const v of voters) {
      const a = v === this.id ? docId(this.accepted) : this.acks.get(v)
      if (a && a.term === this.term) versions.push(a.version)
    }
    if (versions.length < need) return
    versions.sort((a, b) => b - a)
    const committed: DocId = { term: this.term, version: versions[need - 1]! }
    if (compareDocId(committed, this.commitId) <= 0) return
    this.commitId = committed
    this.out.push({ type: 'commit', term: this.term, from: this.id, commit: committed })
    this.applyCommit()
    // A leader that removed itself from the voters hands over once that change is committed.
    if (!voters.includes(this.id) && this.committedDoc && !this.committedDoc.voters.includes(this.id)) {
      this.events.push({ type: 'stepped-down', term: this.term, reason: 'removed from the voters' })
      this.becomeFollower(this.term, null, now)
    }
  }

  private learnCommit (commit: DocId): void {
    if (compareDocId(commit, this.commitId) > 0) this.commitId = commit
    this.applyCommit()
    if (this.commitId && compareDocId(docId(this.committedDoc), this.commitId) < 0 && this.leader) {
      this.out.push({ type: 'doc-req', term: this.term, from: this.id, have: docId(this.accepted) })
    }
  }

  private applyCommit (): void {
    if (!this.commitId) return
    // The newest document we hold that is at or below the commit point.
    let best: ClusterDoc | undefined
    for (const d of this.recent.values()) {
      if (compareDocId(docId(d), this.commitId) <= 0 && compareDocId(docId(d), docId(best ?? null)) > 0) best = d
    }
    if (best && compareDocId(docId(best), docId(this.committedDoc)) > 0) {
      this.committedDoc = best
      this.newlyCommitted = best
      // Removed from the voters by a committed change: whatever it forgot no longer counts.
      if (this.amnesic && !best.voters.includes(this.id)) { this.amnesic = false; this.dirty = true }
    }
    if (this.committedDoc && compareDocId(docId(this.committedDoc), this.commitId) === 0 && this.commitId.term === this.term) this.current = true
  }

  private remember (doc: ClusterDoc): void {
    this.recent.set(`${doc.term}:${doc.version}`, doc)
    if (this.recent.size > RECENT_DOCS) {
      let oldest: string | undefined
      let oldestDoc: ClusterDoc | undefined
      for (const [k, d] of this.recent) if (!oldestDoc || compareDocId(docId(d), docId(oldestDoc)) < 0) { oldest = k; oldestDoc = d }
      this.recent.delete(oldest!)
    }
  }

  private randomTimeout (): number {
    const { electionTimeoutMinMs: lo, electionTimeoutMaxMs: hi } = this.cfg
    return lo + this.rng() * (hi - lo)
  }
}

export function majority (n: number): number {
  return Math.floor(n / 2) + 1
}

export function docId (doc: ClusterDoc | null | undefined): DocId | null {
  return doc ? { term: doc.term, version: doc.version } : null
}
