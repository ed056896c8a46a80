// Membership view: heartbeats in, alive/suspect/dead out. Pure: the caller passes the time.
//
// A libp2p disconnect only makes a peer *suspect*. A refused redial (the host answers, the daemon
// is gone) makes it dead at once. Silence makes it dead only after `deadAfterMs`, so a node frozen
// for less than that (GC pause, disk stall, SIGSTOP) is never evicted: false deaths cost more
// (rescheduling, balancer churn) than slow detection.
import type { Heartbeat, NodeId } from './types.js'

export type MemberStatus = 'alive' | 'suspect' | 'dead'

export interface MembershipConfig {
  /** Silence after which a member is suspect. @default 1500 */
  suspectAfterMs: number
  /** Silence after which a member is dead (the stall bound). @default 4000 */
  deadAfterMs: number
  /** Dead members are forgotten after this long, unless heard again. @default 600000 */
  forgetAfterMs: number
}

export const DEFAULT_MEMBERSHIP: MembershipConfig = {
  suspectAfterMs: 1_500,
  deadAfterMs: 4_000,
  forgetAfterMs: 600_000
}

export interface Member {
  id: NodeId
  status: MemberStatus
  /** Incarnation, sequence and content revision of the last heartbeat (kept here: compared on every heartbeat). */
  incarnation: number
  seq: number
  rev: number | undefined
  /** Local time the last heartbeat arrived. */
  heardAt: number
  /** Local time of the last status change. */
  since: number
  hb: Heartbeat
  /** Why it is suspect or dead. */
  reason?: string
  /** The heardAt of the silence it was last probed for (one probe per silence). */
  probedFor?: number
}

export interface MemberChange { id: NodeId, from: MemberStatus | 'new', to: MemberStatus, reason: string }

export class Membership {
  private readonly members = new Map<NodeId, Member>()
  /**
   * No member can change state before this time, so tick() skips its scan until then: a heartbeat
   * only moves a deadline later, and status changes lower this. Keeps tick O(1) in a steady cluster.
   */
  private nextCheckAt = -Infinity
  private sorted: Member[] | undefined
  constructor (readonly self: NodeId, readonly cfg: MembershipConfig = DEFAULT_MEMBERSHIP) {}

  /** Record a heartbeat. Returns the change it caused, if any. */
  /**
   * What the last heartbeat() found: 'stale' (an old or duplicate heartbeat, dropped), 'same' (only
   * news of life: its content revision did not change), or 'new'.
   */
  lastOutcome: 'stale' | 'same' | 'new' = 'new'

  heartbeat (hb: Heartbeat, now: number): MemberChange | undefined {
    const m = this.members.get(hb.node)
    if (m) {
      // Drop reordered or duplicated heartbeats of the same incarnation.
      if (hb.incarnation < m.incarnation || (hb.incarnation === m.incarnation && hb.seq <= m.seq)) { this.lastOutcome = 'stale'; return undefined }
      this.lastOutcome = hb.rev !== undefined && hb.rev === m.rev && hb.incarnation === m.incarnation ? 'same' : 'new'
      m.hb = hb
      m.heardAt = now
      m.incarnation = hb.incarnation
      m.seq = hb.seq
      m.rev = hb.rev
      if (m.status !== 'alive') return this.set(m, 'alive', now, 'heartbeat')
      return undefined
    }
    this.lastOutcome = 'new'
    this.members.set(hb.node, { id: hb.node, status: 'alive', heardAt: now, since: now, hb, incarnation: hb.incarnation, seq: hb.seq, rev: hb.rev })
    this.sorted = undefined
    this.nextCheckAt = Math.min(this.nextCheckAt, now + this.cfg.suspectAfterMs)
    return { id: hb.node, from: 'new', to: 'alive', reason: 'first heartbeat' }
  }

  /** The transport lost its connection to the member. */
  disconnected (id: NodeId, now: number): MemberChange | undefined {
    const m = this.members.get(id)
    if (!m || m.status !== 'alive') return undefined
    return this.set(m, 'suspect', now, 'connection lost')
  }

  /** A redial was refused: the host is up but nothing listens, so the daemon is gone. */
  refused (id: NodeId, now: number): MemberChange | undefined {
    const m = this.members.get(id)
    // Only a suspect can be confirmed dead this way: a heartbeat since the disconnect means it is
    // back (e.g. restarted on the same address), whatever an older dial says.
    if (!m || m.status !== 'suspect') return undefined
    return this.set(m, 'dead', now, 'connection refused')
  }

  /**
   * This node itself was stalled (GC, SIGSTOP, a paused VM) for `gapMs`: its peers' heartbeats
   * wait unread in the socket buffers, so their silence says nothing. Move every deadline by the gap.
   */
  forgiveStall (gapMs: number, now: number): void {
    for (const m of this.members.values()) if (m.id !== this.self && m.status !== 'dead') m.heardAt = Math.min(now, m.heardAt + gapMs)
    this.nextCheckAt = -Infinity
  }

  tick (now: number): MemberChange[] {
    if (now < this.nextCheckAt) return []
    const changes: MemberChange[] = []
    let next = Infinity
    for (const m of this.members.values()) {
      if (m.id === this.self) continue
      const silent = now - m.heardAt
      if (m.status !== 'dead' && silent >= this.cfg.deadAfterMs) changes.push(this.set(m, 'dead', now, `silent for ${Math.round(silent)} ms`))
      else if (m.status === 'alive' && silent >= this.cfg.suspectAfterMs) changes.push(this.set(m, 'suspect', now, `silent for ${Math.round(silent)} ms`))
      else if (m.status === 'dead' && now - m.since >= this.cfg.forgetAfterMs) { this.members.delete(m.id); this.sorted = undefined; continue }
      next = Math.min(next, m.status === 'alive' ? m.heardAt + this.cfg.suspectAfterMs : m.status === 'suspect' ? m.heardAt + this.cfg.deadAfterMs : m.since + this.cfg.forgetAfterMs)
    }
    this.nextCheckAt = next
    return changes
  }

  /**
   * Members to probe now: not dead, quiet for `afterMs`, and not yet probed in this silence. Each
   * silence yields a member once; a heartbeat (or a forgiven stall) starts a new one.
   */
  takeQuiet (now: number, afterMs: number): Member[] {
    const out: Member[] = []
    for (const m of this.members.values()) {
      if (m.id === this.self || m.status === 'dead' || now - m.heardAt < afterMs || m.probedFor === m.heardAt) continue
      m.probedFor = m.heardAt
      out.push(m)
    }
    return out
  }

  get (id: NodeId): Member | undefined { return this.members.get(id) }
  status (id: NodeId): MemberStatus | undefined { return this.members.get(id)?.status }
  /** Every member, by id (cached until a member comes or goes). */
  all (): Member[] {
    this.sorted ??= [...this.members.values()].sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
    return this.sorted
  }
  /** Members not dead (alive or suspect): a suspect keeps its place until confirmed dead. */
  live (): Member[] { return this.all().filter(m => m.status !== 'dead') }
  forget (id: NodeId): void { this.members.delete(id); this.sorted = undefined }

  private set (m: Member, to: MemberStatus, now: number, reason: string): MemberChange {
    const from = m.status
    this.nextCheckAt = -Infinity // deadlines changed: look again at the next tick
    m.status = to
    m.since = now
    m.reason = to === 'alive' ? undefined : reason
    return { id: m.id, from, to, reason }
  }
}
