// One node's loop — membership, election, the leader's scheduling and cloud calls, heartbeats —
// with everything outside it injected: time, randomness, the transport, the disk, the cloud and the
// node's local work. The daemon wires it to libp2p, files, processes and EC2; the simulator wires
// the very same code to a simulated network, disk and cloud.
import { bootstrapVoters } from '../core/bootstrap.js'
import type { Command } from '../core/commands.js'
import { Consensus, type PersistentState } from '../core/consensus/consensus.js'
import type { ConsensusConfig } from '../core/consensus/config.js'
import type { ConsensusMsg } from '../core/consensus/messages.js'
import { Membership, type Member, type MemberChange, type MembershipConfig } from '../core/membership.js'
import type { Observed, ObservedNode } from '../core/observed.js'
import type { SchedulerConfig } from '../core/scheduler.js'
import { buildStatus, type StatusReport } from '../core/status.js'
import { emptyDoc, type ClusterDoc, type DocId, type Heartbeat, type InstanceReport, type NodeId } from '../core/types.js'
import { clip, leaderEventId, type ClusterEvent, type EventKind } from '../events/event.js'
import type { Provider } from '../providers/provider.js'
import type { Logger } from '../util/log.js'
import { CloudExecutor } from './executor.js'
import { LeaderLoop, type PlanAnswerResult, type SubmitResult } from './leader.js'

/** A gap between ticks above this means the process was stalled (ticks come every ~100 ms). */
const STALL_GAP_MS = 500

export interface NodeIdentity {
  id: NodeId
  cluster: string
  /** libp2p peer id (the simulator uses the node id). */
  peer: string
  ip: string
  /** Address others dial (multiaddr). */
  mesh: string
  /** Admin API base URL. */
  api: string
  zone?: string
  /** Launch decision that created this VM. */
  launch?: string
  bootstrapExpect: number
  hasBootstrapPeers: boolean
  /** A restart is a new incarnation (the daemon uses its start time). */
  incarnation: number
}

export interface NodeTiming {
  heartbeatIntervalMs: number
  membership: MembershipConfig
  consensus: ConsensusConfig
  scheduler?: SchedulerConfig
  /** With bootstrap peers, wait this long for an existing cluster before forming one. @default 2000 */
  joinWaitMs?: number
}

/** What the node needs from outside. */
export interface NodePorts {
  publishHeartbeat: (hb: Heartbeat) => void
  publishControl: (msg: ConsensusMsg) => void
  /** Must be durable when it returns (etcd's Ready contract: persist, then send). */
  persist: (state: PersistentState) => void
  provider: Provider
  /** What this node reports about its instances (supervisor and relations). */
  localReports: () => Record<string, InstanceReport>
  /** The committed document or the membership changed: local work may need redoing. */
  localWorkChanged: () => void
  /** 1-minute load average. */
  load: () => number
  logger: Logger
  rng: () => number
  /** Time for the executor's lease checks, between ticks. */
  now: () => number
  /** Volumes mounted on this node now (reported in heartbeats). */
  mounts?: () => string[]
  /** Why this node is leaving (spot interruption, maintenance), if it is. */
  draining?: () => string | undefined
  /** Every document the leader's loop proposes (for the simulator's checkers). */
  onPropose?: (id: DocId, mayAct: boolean) => void
  /**
   * Events for the node's event log: member and leader changes and instance transitions seen here,
   * the leader's decisions, and those carried by each committed document (ids repeat: dedupe them).
   */
  onEvent?: (e: ClusterEvent) => void
  /** Wall-clock time for event stamps (`now` may be monotonic). @default now */
  wallClock?: () => number
}

export class NodeCore {
  readonly id: NodeId
  readonly membership: Membership
  readonly consensus: Consensus
  private readonly leader: LeaderLoop
  private readonly executor: CloudExecutor
  private lastTickAt = 0
  private hbSeq = 0
  private rev = 0
  private lastContent = ''
  private lastHeartbeatAt = -Infinity
  private readonly startedAt: number
  private eventCounter = 0
  /** Ids of the decision events of the last committed document, so each commit passes on only new ones. */
  private docEventIds = new Set<string>()

  constructor (readonly me: NodeIdentity, readonly timing: NodeTiming, private readonly ports: NodePorts, persisted: PersistentState | null, amnesic: boolean, now: number) {
    this.id = me.id
    this.startedAt = now
    this.membership = new Membership(me.id, timing.membership)
    this.consensus = new Consensus(me.id, persisted, now, ports.rng, timing.consensus, amnesic)
    this.leader = new LeaderLoop({ self: me.id, consensus: this.consensus, observe: (t) => this.observe(t), logger: ports.logger.child({ component: 'leader' }), flush: () => this.flush(), ...(timing.scheduler ? { scheduler: timing.scheduler } : {}), ...(ports.onPropose ? { onPropose: ports.onPropose } : {}), ...(ports.onEvent ? { onEvent: ports.onEvent } : {}), ...(ports.wallClock ? { wallClock: ports.wallClock } : {}) })
    this.executor = new CloudExecutor({
      self: me.id,
      provider: ports.provider,
      logger: ports.logger.child({ component: 'executor' }),
      canAct: () => this.consensus.canAct(ports.now()),
      report: (cmd) => this.leader.report(cmd),
      onLaunchFailure: () => this.leader.noteLaunchFailure(ports.now()),
      bootstrapAddrs: () => this.membership.live().map(m => m.hb.mesh).filter(Boolean),
      mountedOn: (volume, node) => {
        const m = this.membership.get(node)
        return m !== undefined && m.status !== 'dead' && (m.hb.mounts ?? []).includes(volume)
      },
      random: ports.rng
    })
  }

  // ---- inputs ----

  tick (now: number): void {
    // A tick far later than the last one means this process was stalled: what it did not hear
    // meanwhile it could not have heard, so it judges nobody by that silence.
    const gap = now - this.lastTickAt
    if (this.lastTickAt > 0 && gap > STALL_GAP_MS) {
      this.ports.logger.warn({ stalledMs: Math.round(gap) }, 'this node was stalled; peers are not judged by the silence')
      this.membership.forgiveStall(gap, now)
    }
    this.lastTickAt = now
    for (const ch of this.membership.tick(now)) this.onMemberChange(ch, now)
    this.consensus.tick(now)
    this.maybeBootstrap(now)
    this.flush()
    this.leader.tick(now)
    const committed = this.consensus.committed
    if (this.consensus.currentRole === 'leader' && committed && this.consensus.canAct(now)) this.executor.reconcile(committed, now)
    if (now - this.lastHeartbeatAt >= this.timing.heartbeatIntervalMs) this.sendHeartbeat(now)
  }

  onHeartbeat (hb: Heartbeat, now: number): void {
    if (hb.node === this.id) return
    const before = this.ports.onEvent ? this.membership.get(hb.node)?.hb.instances : undefined
    const ch = this.membership.heartbeat(hb, now)
    const outcome = this.membership.lastOutcome
    if (outcome === 'stale') return
    if (before) this.instanceEvents(hb.node, before, hb.instances)
    if (ch) this.onMemberChange(ch, now)
    // A heartbeat that only says "alive" matters to the election only coming from the leader (its
    // lease and our election timer) or going to it (acknowledgements): the rest is skipped cheaply.
    if (outcome === 'new' || ch || hb.leader === hb.node || this.consensus.currentRole === 'leader') {
      const acked = this.consensus.heardLeaderHeartbeat
      this.consensus.heartbeat(hb, now)
      this.flush()
      // The first heartbeat of a new leader is acknowledged at the next tick: its lease needs it.
      if (!acked && this.consensus.heardLeaderHeartbeat) this.lastHeartbeatAt = -Infinity
    }
    // Its instances may have changed: dependency views may change.
    if (outcome === 'new' && !ch) this.ports.localWorkChanged()
  }

  onControl (msg: ConsensusMsg, now: number): void {
    this.consensus.step(msg, now)
    this.flush()
  }

  /** The transport lost its connection to a member: suspect. */
  disconnected (id: NodeId, now: number): void {
    const ch = this.membership.disconnected(id, now)
    if (ch) this.onMemberChange(ch, now)
  }

  /** A redial of a suspect member was refused: the daemon is gone. */
  refused (id: NodeId, now: number): void {
    const ch = this.membership.refused(id, now)
    if (ch) this.onMemberChange(ch, now)
  }

  /** Publish a heartbeat now (also when local instances changed, for fast dissemination). */
  sendHeartbeat (now: number): void {
    this.lastHeartbeatAt = now
    const hb = this.buildHeartbeat(now)
    const before = this.membership.get(this.id)?.hb.instances
    this.membership.heartbeat(hb, now)
    this.ports.publishHeartbeat(hb)
    // Our own instances feed our own views too (a balancer and an app on the same node).
    if (before !== undefined && !sameReports(before, hb.instances)) {
      this.instanceEvents(this.id, before, hb.instances)
      this.ports.localWorkChanged()
    }
  }

  get lastHeartbeat (): number { return this.lastHeartbeatAt }

  async submit (cmd: Command, by?: string): Promise<SubmitResult> {
    return await this.leader.submit(cmd, by)
  }

  plan (cmd: Command | undefined, now: number): PlanAnswerResult {
    return this.leader.plan(cmd, now)
  }

  // ---- queries ----

  status (now: number): StatusReport {
    const c = this.consensus
    return buildStatus({ doc: c.committed ?? c.acceptedDoc, members: this.memberMap(), self: this.id, leader: c.currentLeader, term: c.currentTerm, now, cluster: this.me.cluster })
  }

  memberMap (): Map<NodeId, Member> {
    return new Map(this.membership.all().map(m => [m.id, m]))
  }

  get uptimeSince (): number { return this.startedAt }

  // ---- internals ----

  /** Persist first, then send, then act on what was committed (etcd's Ready contract). */
  private flush (): void {
    const rd = this.consensus.ready()
    if (rd.persist) this.ports.persist(rd.persist)
    for (const m of rd.send) this.ports.publishControl(m)
    for (const e of rd.events) {
      this.ports.logger.info({ ...e }, `consensus: ${e.type}`)
      if (e.type === 'leader-changed' && e.leader) this.event('leader', e.leader, `${e.leader} leads term ${e.term}`, e.term, undefined, leaderEventId(e.term, e.leader))
      if (e.type === 'stepped-down') this.event('leader', this.id, `stepped down in term ${e.term}: ${e.reason}`, e.term)
    }
    // A new leader acts only once a majority acknowledged one of its heartbeats (its lease): it
    // announces itself, and followers acknowledge it, at the next tick instead of a heartbeat
    // interval later (half a second of failover otherwise).
    if (rd.events.some(e => e.type === 'leader-changed' && e.leader !== null)) this.lastHeartbeatAt = -Infinity
    if (rd.committed) {
      // The leader's decisions reach every node's log with the document (deduplicated by id there).
      const events = this.consensus.committed?.events ?? []
      if (this.ports.onEvent) for (const e of events) if (!this.docEventIds.has(e.id)) this.ports.onEvent(e)
      this.docEventIds = new Set(events.map(e => e.id))
      this.ports.localWorkChanged()
    }
  }

  private event (kind: EventKind, subject: string, reason: string, term = this.consensus.currentTerm, change?: { from: string, to: string }, id?: string): void {
    if (!this.ports.onEvent) return
    const now = this.ports.now()
    this.ports.onEvent({ id: id ?? `${this.id}.${this.me.incarnation}.${++this.eventCounter}`, at: new Date(this.ports.wallClock?.() ?? now).toISOString(), term, node: this.id, kind, subject: clip(subject, 128), ...change, reason: clip(reason) })
  }

  /** Instance state changes between two heartbeats of a node (every node logs every node's instances). */
  private instanceEvents (node: NodeId, before: Record<string, InstanceReport>, after: Record<string, InstanceReport>): void {
    if (!this.ports.onEvent || before === after) return
    for (const [id, r] of Object.entries(after)) {
      const was = before[id]?.state
      if (was === r.state) continue
      this.event('instance', id, `on ${node}${r.error && r.state === 'FAIL' ? `: ${r.error}` : ''}`, undefined, { from: was ?? 'new', to: r.state })
    }
    for (const [id, r] of Object.entries(before)) {
      if (!(id in after)) this.event('instance', id, `on ${node}`, undefined, { from: r.state, to: 'gone' })
    }
  }

  private buildHeartbeat (now: number): Heartbeat {
    const m = this.me
    const fields = this.consensus.heartbeatFields(now)
    const instances = this.ports.localReports()
    const mounts = this.ports.mounts?.()
    const draining = this.ports.draining?.()
    // The revision changes with anything a receiver acts on (not seq, load, autoscaling metrics or
    // the lease counter: those are read from the latest heartbeat, whatever its revision).
    const { ackLeaderSeq: _a, ...meaning } = fields
    const key = JSON.stringify([meaning, withoutMetrics(instances), mounts, draining])
    if (key !== this.lastContent) { this.lastContent = key; this.rev++ }
    return {
      node: m.id,
      peer: m.peer,
      incarnation: m.incarnation,
      seq: ++this.hbSeq,
      rev: this.rev,
      ip: m.ip,
      mesh: m.mesh,
      api: m.api,
      load1: this.ports.load(),
      ...(m.zone ? { zone: m.zone } : {}),
      ...fields,
      bootstrapExpect: m.bootstrapExpect,
      ...(m.launch ? { launch: m.launch } : {}),
      ...(mounts && mounts.length > 0 ? { mounts } : {}),
      ...(draining ? { draining } : {}),
      instances
    }
  }

  private onMemberChange (ch: MemberChange, now: number): void {
    this.ports.logger.info({ member: ch.id, from: ch.from, to: ch.to, reason: ch.reason }, `member ${ch.id} is ${ch.to}`)
    this.event('member', ch.id, ch.reason, undefined, { from: ch.from, to: ch.to })
    if (ch.to === 'dead') this.consensus.leaderIsDead(ch.id, now)
    this.ports.localWorkChanged()
  }

  private maybeBootstrap (now: number): void {
    // A node that lost its state belonged to a cluster: forming another one (a first node started
    // with bootstrap_expect 1) would later pull the old cluster's nodes into an empty document.
    if (this.consensus.acceptedDoc || this.consensus.isAmnesic) return
    const voters = bootstrapVoters({
      self: this.id,
      expect: this.me.bootstrapExpect,
      members: this.membership.all(),
      now,
      startedAt: this.startedAt,
      joinWaitMs: this.timing.joinWaitMs ?? 2_000,
      hasBootstrapPeers: this.me.hasBootstrapPeers
    })
    if (!voters) return
    const doc: ClusterDoc = emptyDoc(this.me.cluster)
    doc.voters = voters
    for (const id of voters) {
      const hb = this.membership.get(id)?.hb
      if (hb) doc.nodes[id] = { id, ip: hb.ip, peer: hb.peer, ...(hb.zone ? { zone: hb.zone } : {}), ...(hb.launch ? { launch: hb.launch } : {}) }
    }
    this.ports.logger.info({ voters }, 'forming a new cluster')
    this.consensus.bootstrap(doc, now)
  }

  /** What the leader's scheduler sees. */
  private observe (now: number): Observed {
    const nodes = new Map<string, ObservedNode>()
    const term = this.consensus.currentTerm
    for (const m of this.membership.all()) {
      nodes.set(m.id, {
        id: m.id,
        status: m.status,
        ip: m.hb.ip,
        peer: m.hb.peer,
        ...(m.hb.zone ? { zone: m.hb.zone } : {}),
        current: m.id === this.id ? this.consensus.isCurrent : (!m.hb.joining && m.hb.term === term),
        committed: m.hb.committed,
        ...(m.hb.launch ? { launch: m.hb.launch } : {}),
        ...(m.hb.amnesic ? { amnesic: true } : {}),
        ...(m.hb.draining ? { draining: m.hb.draining } : {}),
        load1: m.hb.load1,
        instances: m.hb.instances
      })
    }
    const doc = this.consensus.acceptedDoc
    for (const [id, n] of Object.entries(doc?.nodes ?? {})) {
      if (nodes.has(id)) continue
      // In the document but never heard since this node started: dead once that is meaningful.
      nodes.set(id, { id, status: now - this.startedAt > this.timing.membership.deadAfterMs ? 'dead' : 'unknown', ip: n.ip, peer: n.peer, current: false, committed: null, instances: {} })
    }
    return { nodes }
  }
}

function withoutMetrics (instances: Record<string, InstanceReport>): Record<string, InstanceReport> {
  let out: Record<string, InstanceReport> | undefined
  for (const [id, r] of Object.entries(instances)) {
    if (r.metric === undefined) continue
    out ??= { ...instances }
    const { metric: _m, ...rest } = r
    out[id] = rest
  }
  return out ?? instances
}

/** Whether two heartbeats report the same instances (called for every heartbeat: kept cheap). */
export function sameReports (a: Record<string, InstanceReport>, b: Record<string, InstanceReport>): boolean {
  if (a === b) return true
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  for (const k of ka) {
    const x = a[k]!
    const y = b[k]
    if (!y || x.state !== y.state || x.port !== y.port || x.view !== y.view || x.viewHash !== y.viewHash || x.error !== y.error || x.rerenders !== y.rerenders) return false
    if ((x.deps || y.deps || x.onChange || y.onChange) && JSON.stringify([x.deps, x.onChange]) !== JSON.stringify([y.deps, y.onChange])) return false
  }
  return true
}
