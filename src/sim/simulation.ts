// The deterministic simulator: the real node loop of every node (src/node) on simulated time, with
// a simulated network, disk and cloud owned by the simulator. One seed decides the cluster size,
// delays, loss, duplication and reordering, partitions (symmetric and one-way), crashes and restarts
// with persisted (or corrupted) state, stalls, clock drift, and cloud faults. Invariants are checked
// after every step; after the faults heal, the cluster must converge within a bounded time.
import type { Command } from '../core/commands.js'
import type { ConsensusMsg } from '../core/consensus/messages.js'
import { majority } from '../core/consensus/consensus.js'
import type { Heartbeat } from '../core/types.js'
import type { NodeTiming } from '../node/node.js'
import { pino } from 'pino'
import type { Logger } from '../util/log.js'
import { loadSpecText } from '../spec/load.js'
import type { Spec } from '../spec/schema.js'
import { ipOf, SimCloud, type CloudCall, type SimVm } from './cloud.js'
import { allCheckers, type Ack, type Act, type Checker, type World } from './invariants/index.js'
import { notConverged } from './invariants/liveness.js'
import type { Fault, SimPlan, Target, Workload } from './plan.js'
import { EventQueue } from './queue.js'
import { Rng } from './rng.js'
import { SimNode, type Sent, type SimInstance } from './sim-node.js'

export const TIMING: NodeTiming = {
  heartbeatIntervalMs: 500,
  membership: { suspectAfterMs: 1_500, deadAfterMs: 4_000, forgetAfterMs: 600_000 },
  consensus: { electionTimeoutMinMs: 4_000, electionTimeoutMaxMs: 5_000, leaseMs: 3_000, fastElectionJitterMs: 150 }
}
const TICK_MS = 100
/** Cluster size above which unchanged follower heartbeats are thinned (see sendHeartbeat). */
const THIN_ABOVE = 300
const CHECK_MS = 10

export interface Violation { checker: string, message: string, at: number }

export interface SimResult {
  seed: number
  ok: boolean
  violation?: Violation
  /** Simulated time at which the cluster converged after the faults healed. */
  convergedAt?: number
  healedAt: number
  simulatedMs: number
  events: number
  deliveries: number
  nodes: number
  realMs: number
}

/** A deliberate bug, to prove the checkers catch it. */
export type Mutation = 'act-without-lease' | 'act-in-anothers-term' | 'act-in-old-term' | 'fresh-token-per-attempt' | 'stateful-twice' | 'forget-desired' | 'false-crash-report'

export interface SimOptions {
  plan: SimPlan
  mutation?: Mutation
  checkers?: Checker[]
  /** Stop at the first convergence after healing (default) or run the whole liveness window. */
  stopWhenConverged?: boolean
  /** Check invariants every CHECK_MS (default) or not at all (pure speed runs). */
  check?: boolean
  /** Node ids whose logs to print (with simulated time), to debug a seed. */
  log?: string[]
  /** Run this spec instead of the example web cluster (e.g. one with an autoscaled service). */
  spec?: Spec
  /**
   * A synthetic load on a service: its ONLINE instances report `at(t) / (ONLINE instances)` as
   * their metric (the load spread over them), each sample off by up to ±noise (a fraction).
   */
  load?: { service: string, at: (t: number) => number, noise?: number }
}

/** A change of a service's desired count in a document the leader proposed. */
export interface DesiredChange { at: number, service: string, from: number, to: number }

export class Simulation {
  now = 0
  readonly plan: SimPlan
  readonly nodes = new Map<string, SimNode>()
  readonly cloud: SimCloud
  private readonly q = new EventQueue()
  private readonly rng: Rng
  private readonly netRng: Rng
  private readonly faultRng: Rng
  private readonly cuts = new Map<string, number>()
  private readonly checkers: Checker[]
  private readonly acks: Ack[] = []
  private readonly fanned = new Map<string, { rev: number, at: number }>()
  private readonly spec: Spec
  private violation?: Violation
  private events = 0
  private deliveries = 0
  private flushNeeded = false
  private healedAt: number
  private convergedAt?: number
  private readonly metricRng: Rng
  private readonly lastDesired = new Map<string, number>()
  /** Every change of a desired count the leaders proposed, in order. */
  readonly desiredTrace: DesiredChange[] = []

  constructor (private readonly opts: SimOptions) {
    this.plan = opts.plan
    const root = new Rng(opts.plan.seed ^ 0x5eed)
    this.rng = root.fork()
    this.netRng = root.fork()
    this.faultRng = root.fork()
    this.checkers = opts.checkers ?? allCheckers()
    this.healedAt = opts.plan.faultEndMs
    this.spec = opts.spec ?? simSpec(opts.plan)
    this.cloud = new SimCloud(root.fork(), opts.plan.cloud, {
      now: () => this.now,
      schedule: (d, run) => this.at(this.now + d, () => { run(); this.flushNeeded = true }),
      booted: (vm) => this.addNode(vm, 0, true),
      terminated: (vm) => this.vmGone(vm),
      called: (call) => this.cloudCalled(call)
    })
    this.cloud.ignoreTokens = opts.mutation === 'fresh-token-per-attempt'
    // Forked last: runs without a synthetic load draw exactly what they drew before.
    this.metricRng = root.fork()
  }

  // ---- running ----

  async run (): Promise<SimResult> {
    const started = performance.now()
    const p = this.plan
    for (let i = 0; i < p.initialNodes; i++) this.addNode(this.cloud.createInitial(), p.initialNodes, false)
    for (let i = 0; i < p.joiners; i++) this.at(this.rng.range(500, 2_000), () => this.addNode(this.cloud.createInitial(), 0, true))
    for (const f of p.faults) this.at(f.at, () => this.fault(f))
    for (const w of p.workload) this.at(w.at, () => this.workload(w, 0))
    this.at(300, () => this.submitWhenLed({ type: 'launch', spec: this.spec }, 'launch', 0))
    this.at(p.faultEndMs, () => this.heal())
    if (this.opts.check !== false) this.at(CHECK_MS, () => this.checkStep())
    const lastWork = Math.max(p.faultEndMs, ...p.workload.map(w => w.at + 3_000))
    const end = p.faultEndMs + p.livenessMs
    this.at(lastWork, () => this.watchLiveness())
    while (this.q.size > 0 && !this.violation) {
      if (this.q.peekTime() > end) break
      if (this.convergedAt !== undefined && this.opts.stopWhenConverged !== false) break
      const e = this.q.pop()!
      this.now = e.at
      this.events++
      e.run()
      if (this.flushNeeded) {
        this.flushNeeded = false
        // Let promise continuations (cloud answers, command results) run now, deterministically.
        for (let i = 0; i < 24; i++) await null
      }
    }
    if (!this.violation && this.convergedAt !== undefined && this.opts.stopWhenConverged === false) {
      // A fixed-length run must still be converged at its end.
      const why = notConverged(this.world())
      if (why) this.violation = { checker: 'liveness', message: `converged, then diverged: ${why}`, at: this.now }
    }
    if (!this.violation && this.convergedAt === undefined) {
      this.violation = { checker: 'liveness', message: `no convergence within ${p.livenessMs / 1000} s after healing: ${notConverged(this.world()) ?? '?'}`, at: this.now }
    }
    return {
      seed: p.seed,
      ok: !this.violation,
      ...(this.violation ? { violation: this.violation } : {}),
      ...(this.convergedAt !== undefined ? { convergedAt: this.convergedAt } : {}),
      healedAt: this.healedAt,
      simulatedMs: this.now,
      events: this.events,
      deliveries: this.deliveries,
      nodes: this.nodes.size,
      realMs: performance.now() - started
    }
  }

  private at (t: number, run: () => void): void { this.q.push(t, run) }

  /** The node's own clock: simulated time at its drift. */
  private clock (n: SimNode): number { return this.now * (1 + n.drift) }

  private addNode (vm: SimVm, bootstrapExpect: number, joining: boolean): void {
    const host = {
      now: () => this.now,
      schedule: (d: number, run: () => void) => this.at(this.now + d, run),
      publishHeartbeat: (from: SimNode, hb: Heartbeat) => this.sendHeartbeat(from, hb),
      publishControl: (from: SimNode, msg: ConsensusMsg) => this.sendControl(from, msg),
      proposed: (from: SimNode, version: number, term: number, mayAct: boolean) => this.proposed(from, version, term, mayAct),
      provider: this.cloud.providerFor(vm.id),
      statefulStarted: (node: SimNode, inst: SimInstance) => this.statefulStarted(node, inst),
      // (The mutation: www "crash-loops" everywhere, though the seed made nothing crash.)
      crashes: (node: string, service: string) => (this.plan.crashLoop?.node === node && this.plan.crashLoop.service === service) || (this.opts.mutation === 'false-crash-report' && service === 'www'),
      clock: (n: SimNode) => this.clock(n),
      metric: (inst: SimInstance) => this.metric(inst),
      logger: (id: string) => this.opts.log?.includes(id) ? logFor(id, () => this.now) : undefined
    }
    const drift = this.rng.range(-this.plan.maxDrift, this.plan.maxDrift)
    const node = new SimNode(vm.id, ipOf(vm.id), vm.zone, vm.launch, bootstrapExpect, joining, TIMING, host, this.rng.fork(), drift)
    this.nodes.set(vm.id, node)
    if (joining) {
      // A new VM's daemon dials the nodes it was given; the others learn of it from its heartbeats.
      node.core.sendHeartbeat(this.clock(node))
    }
    this.at(this.now + this.rng.range(0, TICK_MS), () => this.tick(node))
  }

  private tick (n: SimNode): void {
    if (!n.vmUp) return
    if (n.running && !n.frozen) {
      const now = this.clock(n)
      if (n.inbox.length > 0) {
        const inbox = n.inbox
        const sent = n.inboxSent
        n.inbox = []
        n.inboxSent = []
        this.deliveries += inbox.length
        for (let i = 0; i < inbox.length; i++) {
          n.core.onHeartbeat(inbox[i]!, now)
          this.received(n, sent[i]!)
        }
      }
      n.core.tick(now)
    }
    this.at(this.now + TICK_MS, () => this.tick(n))
  }

  // ---- network ----

  private linkOk (from: string, to: string): boolean { return this.cuts.size === 0 || !this.cuts.has(`${from}>${to}`) }

  private delay (): number { const [lo, hi] = this.plan.net.delayMs; return this.netRng.range(lo, hi) }

  private sendHeartbeat (from: SimNode, hb: Heartbeat): void {
    const batch = this.nodes.size > 30
    const d = this.delay()
    const sent = this.sent(from, hb.term, hb.leader === hb.node)
    const deliverTo = (to: SimNode) => this.deliver(to, () => { to.core.onHeartbeat(hb, this.clock(to)); this.received(to, sent) })
    if (batch) {
      // Large clusters (heartbeats are O(N²) deliveries): a heartbeat lands in each receiver's
      // inbox, and the receiver takes its whole inbox at its next tick (≤ 100 ms later). Each node
      // then works on its own data in one go, which keeps the simulator fast at 1,000 nodes.
      const lossy = this.plan.net.loss > 0
      // Above THIN_ABOVE nodes, a follower's heartbeat that says nothing new (same content
      // revision) goes to every node only once a second; in between only the leader gets it (for
      // its lease). Receivers still hear everyone well within the 1.5 s suspicion bound. This is
      // the "digest level" of simulation: it halves the O(N²) deliveries at 1,000 nodes.
      const last = this.fanned.get(from.id)
      const thin = this.nodes.size > THIN_ABOVE && hb.leader !== hb.node && last !== undefined && last.rev === hb.rev && this.now - last.at < 1_000
      if (!thin) this.fanned.set(from.id, { rev: hb.rev ?? -1, at: this.now })
      for (const to of this.nodes.values()) {
        if (to === from || !to.running || !this.linkOk(from.id, to.id) || (lossy && this.lost())) continue
        if (thin && to.core.consensus.currentRole !== 'leader') continue
        to.inbox.push(hb)
        to.inboxSent.push(sent)
      }
      void d
      return
    }
    for (const to of this.nodes.values()) {
      if (to === from || !to.vmUp || !this.linkOk(from.id, to.id) || this.lost()) continue
      this.at(this.now + this.delay(), () => deliverTo(to))
    }
  }

  private sendControl (from: SimNode, msg: ConsensusMsg): void {
    const copy = structuredClone(msg)
    const sent = this.sent(from, msg.term, msg.type === 'append' || msg.type === 'commit')
    const targets = 'to' in msg ? [this.nodes.get(msg.to)].filter((n): n is SimNode => !!n) : [...this.nodes.values()]
    for (const to of targets) {
      if (to === from || !to.vmUp || !this.linkOk(from.id, to.id) || this.lost()) continue
      const times = this.netRng.chance(this.plan.net.duplicate) ? 2 : 1
      for (let k = 0; k < times; k++) this.at(this.now + this.delay(), () => this.deliver(to, () => { to.core.onControl(copy, this.clock(to)); this.received(to, sent) }))
    }
  }

  /** What the lease checkers need to know of a message as it leaves its sender (see received). */
  private sent (from: SimNode, term: number, asLeader: boolean): Sent {
    return { from, inc: from.incarnation, at: this.now, term, asLeader, followed: from.followedAt.size > 0 && this.opts.check !== false ? new Map(from.followedAt) : undefined }
  }

  /**
   * God view of leases, message by message: `to` just processed a message `sent` by another node.
   * If it was a leader's message (its heartbeat, an append, a commit) and `to` follows the sender
   * as leader of the message's term after it, `to` now owes the sender its lease from the
   * message's send time (it refuses other candidates from then on). And the
   * message tells `to` since when the sender followed `to`: a round trip completed, the evidence a
   * lease of `to` can rest on. Only round trips count, so messages queued for a stalled node, or
   * crossing a one-way cut, count exactly as far as they got.
   */
  private received (to: SimNode, sent: Sent): void {
    if (!to.running || this.opts.check === false) return
    const from = sent.from
    const c = to.core.consensus
    if (sent.asLeader && c.currentLeader === from.id && c.currentTerm === sent.term) {
      const f = to.followedAt.get(from.id)
      if (!f || f.inc < sent.inc || (f.inc === sent.inc && f.at < sent.at)) to.followedAt.set(from.id, { inc: sent.inc, at: sent.at })
    }
    const echo = sent.followed?.get(to.id)
    if (echo && echo.inc === to.incarnation && (to.contactAt.get(from.id) ?? -Infinity) < echo.at) to.contactAt.set(from.id, echo.at)
  }

  private lost (): boolean { return this.plan.net.loss > 0 && this.netRng.chance(this.plan.net.loss) }

  /** A stalled node gets its messages when it wakes (they queue in the kernel meanwhile). */
  private deliver (to: SimNode, fn: () => void): void {
    if (!to.running) return
    this.deliveries++
    if (to.frozen) to.backlog.push(fn)
    else fn()
  }

  // ---- acts ----

  /** The synthetic load's share of one ONLINE instance, with noise. */
  private metric (inst: SimInstance): number | undefined {
    const l = this.opts.load
    if (!l || l.service !== inst.service || inst.state !== 'ONLINE') return undefined
    let online = 0
    for (const n of this.nodes.values()) if (n.running) for (const i of n.instances.values()) if (i.service === l.service && i.state === 'ONLINE') online++
    const noise = l.noise ?? 0
    return (l.at(this.now) / Math.max(1, online)) * (1 + noise * (2 * this.metricRng.next() - 1))
  }

  private proposed (from: SimNode, version: number, term: number, mayAct: boolean): void {
    if (this.opts.mutation === 'forget-desired') this.mutateForget(from)
    for (const [service, n] of Object.entries(from.core.consensus.acceptedDoc?.desired ?? {})) {
      const was = this.lastDesired.get(service)
      if (was !== undefined && was !== n) this.desiredTrace.push({ at: this.now, service, from: was, to: n })
      this.lastDesired.set(service, n)
    }
    // mayAct: the node's own canAct() right before it proposed (a voter change in the proposal
    // itself may suspend the lease until the new voters acknowledge).
    // The voters it acted under: the committed set (one proposal is in flight at a time).
    this.act({ node: from.id, kind: 'propose', term, canAct: mayAct, at: this.now, what: `document v${version}`, voters: from.core.consensus.committed?.voters ?? from.core.consensus.voters() })
  }

  private cloudCalled (call: CloudCall): void {
    const n = this.nodes.get(call.caller)
    if (!n || call.op === 'describe') return // reads change nothing
    const c = n.core.consensus
    this.act({ node: n.id, kind: 'cloud', term: c.currentTerm, canAct: c.canAct(this.clock(n)), at: this.now, what: `${call.op} ${call.target}`, voters: c.voters() })
  }

  private act (a: Act): void {
    const w = this.world()
    for (const ch of this.checkers) {
      const v = ch.act?.(a, w)
      if (v && !this.violation) this.violation = { checker: ch.name, message: v, at: this.now }
    }
  }

  private statefulStarted (node: SimNode, inst: SimInstance): void {
    const vol = this.spec.services[inst.service]?.volume?.name
    if (vol && this.cloud.volumes.get(vol) !== node.id && !this.violation) {
      this.violation = { checker: 'stateful instance on one node at a time', message: `${inst.id} started on ${node.id} without its volume ${vol} attached there`, at: this.now }
    }
    if (this.opts.mutation === 'stateful-twice') this.mutateStatefulTwice(node, inst)
  }

  // ---- checks ----

  private world (): World {
    return {
      now: this.now,
      nodes: [...this.nodes.values()],
      cloud: this.cloud,
      lastMajorityAt: (id, voters) => this.lastMajorityAt(id, voters),
      // The lease is measured on the leader's own clock (drift); contacts are exact (see received).
      leaseSlackMs: TIMING.consensus.leaseMs * (1 + 2 * this.plan.maxDrift),
      acks: this.acks,
      ...(this.plan.crashLoop ? { crashLoop: this.plan.crashLoop } : {})
    }
  }

  private checkStep (): void {
    const w = this.world()
    for (const ch of this.checkers) {
      const v = ch.step?.(w)
      if (v && !this.violation) this.violation = { checker: ch.name, message: v, at: this.now }
    }
    // Large calm runs check less often (the checks are O(N) and there are no faults to race).
    this.at(this.now + (this.nodes.size > 30 ? 10 * CHECK_MS : CHECK_MS), () => this.checkStep())
  }

  /**
   * The latest time by which a majority of the node's voters had each completed a round trip with
   * it (a message of the node, sent then, that the voter followed it after, answered by a later
   * message of the voter the node processed): the evidence a lease rests on (acknowledgements
   * from a majority, each within the lease, not all at once). The node itself counts as now.
   */
  private lastMajorityAt (id: string, voters: readonly string[]): number {
    if (voters.length === 0) return -Infinity
    const n = this.nodes.get(id)
    const times = voters.map(v => v === id ? this.now : n?.contactAt.get(v) ?? -Infinity).sort((a, b) => b - a)
    return times[majority(voters.length) - 1]!
  }

  private watchLiveness (): void {
    if (this.violation) return
    const why = notConverged(this.world())
    if (why === undefined) { this.convergedAt = this.now; return }
    this.at(this.now + 500, () => this.watchLiveness())
  }

  // ---- workload ----

  private leader (): SimNode | undefined {
    return [...this.nodes.values()].find(n => n.running && !n.frozen && n.core.consensus.currentRole === 'leader')
  }

  private workload (w: Workload, attempt: number): void {
    const doc = this.leader()?.core.consensus.committed
    let cmd: Command | undefined
    if (w.type === 'propagate') cmd = { type: 'propagate', service: w.service }
    else if (w.type === 'scale') cmd = { type: 'scale', service: w.service, count: w.count }
    else {
      const insts = Object.values(doc?.instances ?? {}).filter(i => i.service === w.service && i.phase === 'run' && i.node && !i.migratingTo && !i.replaces)
      if (insts.length === 0) { if (attempt < 20) this.at(this.now + 500, () => this.workload(w, attempt + 1)); return }
      cmd = { type: 'migrate', instance: this.faultRng.pick(insts).id }
    }
    this.submitWhenLed(cmd, w.service, attempt)
  }

  /** Submit to the current leader (as the API's forwarding would); retry while there is none. */
  private submitWhenLed (cmd: Command, service: string, attempt: number): void {
    const leader = this.leader()
    if (!leader || !leader.core.consensus.canAct(this.clock(leader))) {
      if (attempt < 60) this.at(this.now + 500, () => this.submitWhenLed(cmd, service, attempt + 1))
      return
    }
    const countsService = cmd.type === 'propagate' || cmd.type === 'scale' || cmd.type === 'launch'
    if (countsService) {
      // From here until it is acknowledged, the command may be in any document: expect nothing.
      const from = (leader.core.consensus.acceptedDoc?.version ?? 0) + 1
      for (const s of cmd.type === 'launch' ? Object.keys(this.spec.services) : [service]) this.acks.push({ service: s, version: from, desired: 'uncertain' })
    }
    void leader.core.submit(cmd).then(r => {
      if (!countsService) return
      const doc = leader.core.consensus.committed
      if (r.ok && doc && doc.version === r.version) {
        // An autoscaled service's count is the policy's to change: nothing to keep.
        const kept = (s: string, n: number): number | 'uncertain' => this.spec.services[s]?.scale?.policy === 'target' ? 'uncertain' : n
        if (cmd.type === 'launch') for (const [s, n] of Object.entries(doc.desired)) this.acks.push({ service: s, version: r.version, desired: kept(s, n) })
        else this.acks.push({ service, version: r.version, desired: kept(service, doc.desired[service]!) })
      } else if (!r.ok && (r.code === 'TIMEOUT' || r.code === 'NOT_LEADER')) {
        // It may or may not apply later: stop expecting a value until the next acknowledged one.
        const services = cmd.type === 'launch' ? Object.keys(this.spec.services) : [service]
        for (const s of services) this.acks.push({ service: s, version: 0, desired: 'uncertain' })
      } else if (r.ok) {
        for (const s of cmd.type === 'launch' ? Object.keys(this.spec.services) : [service]) this.acks.push({ service: s, version: r.version, desired: 'uncertain' })
      }
    })
    this.flushNeeded = true
  }

  // ---- faults ----

  private pickTarget (t: Target): SimNode | undefined {
    const running = [...this.nodes.values()].filter(n => n.running)
    const leader = running.find(n => n.core.consensus.currentRole === 'leader')
    const pool = t === 'leader' && leader ? [leader] : t === 'follower' ? running.filter(n => n !== leader) : running
    return pool.length > 0 ? this.faultRng.pick(pool) : undefined
  }

  private fault (f: Fault): void {
    if (this.now >= this.plan.faultEndMs) return
    switch (f.type) {
      case 'partition': {
        const target = this.pickTarget(f.target)
        if (!target) return
        const others = [...this.nodes.values()].filter(n => n !== target && this.faultRng.chance(f.peers === 'all' ? 1 : 0.5))
        const added: string[] = []
        const outgoing = this.faultRng.chance(0.5)
        for (const o of others) {
          if (!f.oneWay || outgoing) added.push(`${target.id}>${o.id}`)
          if (!f.oneWay || !outgoing) added.push(`${o.id}>${target.id}`)
        }
        for (const k of added) this.cuts.set(k, (this.cuts.get(k) ?? 0) + 1)
        if (this.opts.mutation === 'act-without-lease' && f.target === 'leader') this.mutateActWithoutLease(target, f.ms)
        if (this.opts.mutation === 'act-in-anothers-term' && f.target === 'leader') this.mutateActInTerm(target, f.ms)
        if (this.opts.mutation === 'act-in-old-term' && f.target === 'leader') this.mutateActInOldTerm(target, f.ms)
        this.at(Math.min(this.now + f.ms, this.plan.faultEndMs), () => {
          for (const k of added) { const c = (this.cuts.get(k) ?? 1) - 1; if (c <= 0) this.cuts.delete(k); else this.cuts.set(k, c) }
        })
        return
      }
      case 'crash-daemon': {
        const target = this.pickTarget(f.target)
        // A lost disk loses a voter (like a lost VM): within the failure model only when the rest is healthy.
        if (target) this.crashDaemon(target, f.ms, f.corrupt && this.healthy())
        return
      }
      case 'kill-vm': {
        // A VM lost for good is within the failure model only while every other voter is healthy
        // (Raft tolerates a minority of voters lost; two at once can lose the quorum for good).
        if (!this.healthy()) return
        const target = this.pickTarget(f.target)
        if (target) this.cloud.kill(target.id)
        return
      }
      case 'stall': {
        const target = this.pickTarget(f.target)
        if (!target || target.frozen) return
        target.frozenUntil = this.now + f.ms
        this.at(this.now + f.ms, () => {
          const backlog = target.backlog
          target.backlog = []
          for (const fn of backlog) if (target.running) fn()
        })
        return
      }
      case 'full-restart':
        for (const n of this.nodes.values()) if (n.running) this.crashDaemon(n, f.ms, false)
    }
  }

  /** At least three voters, every one running, unstalled, with no link cut: one can be lost for good. */
  private healthy (): boolean {
    const leader = this.leader()
    if (!leader || this.cuts.size > 0) return false
    const voters = leader.core.consensus.voters()
    return voters.length >= 3 && voters.every(v => { const n = this.nodes.get(v); return n?.running === true && !n.frozen && !n.core.consensus.isAmnesic })
  }

  private crashDaemon (n: SimNode, downMs: number, corrupt: boolean): void {
    n.daemonUp = false
    n.backlog = []
    n.inbox = []
    n.inboxSent = []
    // Its peers' connections drop and a redial is refused (the VM is up, the daemon is not).
    for (const o of this.nodes.values()) {
      if (o === n) continue
      this.at(this.now + this.delay(), () => this.deliver(o, () => { o.core.disconnected(n.id, this.clock(o)); o.core.refused(n.id, this.clock(o)) }))
    }
    this.at(this.now + downMs, () => {
      if (!n.vmUp) return
      if (corrupt) n.disk = null
      n.startDaemon(corrupt)
      n.core.sendHeartbeat(this.clock(n))
    })
  }

  private vmGone (vm: SimVm): void {
    const n = this.nodes.get(vm.id)
    if (!n) return
    n.destroy()
    for (const o of this.nodes.values()) if (o !== n) this.at(this.now + this.delay(), () => this.deliver(o, () => o.core.disconnected(n.id, this.clock(o))))
  }

  private heal (): void {
    this.cuts.clear()
    this.cloud.healed = true
    this.healedAt = this.now
    for (const n of this.nodes.values()) if (n.vmUp && !n.daemonUp) { n.startDaemon(false); n.core.sendHeartbeat(this.clock(n)) }
  }

  // ---- mutations: deliberate bugs the checkers must catch ----

  private mutateActWithoutLease (n: SimNode, ms: number): void {
    // A leader cut off from its voters keeps calling the cloud after its lease ran out.
    this.at(this.now + Math.min(ms - 1, TIMING.consensus.leaseMs + 1_000), () => {
      if (n.running) void this.cloud.providerFor(n.id).terminate('vm-unknown').catch(() => {})
      this.flushNeeded = true
    })
  }

  private mutateActInTerm (n: SimNode, ms: number): void {
    // The old leader ignores the new term and acts in it anyway.
    this.at(this.now + ms - 1, () => {
      const newer = this.leader()
      if (!newer || newer === n) return
      this.act({ node: n.id, kind: 'propose', term: newer.core.consensus.currentTerm, canAct: true, at: this.now, what: 'a document made in the new leader\'s term', voters: n.core.consensus.voters() })
    })
  }

  private mutateActInOldTerm (n: SimNode, ms: number): void {
    // A deposed leader, still cut off, calls the cloud once more in its old term, after a newer
    // leader has begun acting (as a leader that ignored its lease would).
    this.at(this.now + ms - 1, () => {
      const newer = this.leader()
      if (!newer || newer === n || !n.running) return
      void this.cloud.providerFor(n.id).terminate('vm-unknown').catch(() => {})
      this.flushNeeded = true
    })
  }

  private mutateForget (from: SimNode): void {
    const last = [...this.acks].reverse().find(a => a.desired !== 'uncertain')
    if (!last) return
    // The leader rolls a count back (as a lost write would).
    const doc = from.core.consensus.acceptedDoc
    if (doc) doc.desired[last.service] = (last.desired as number) + 7
  }

  private mutateStatefulTwice (node: SimNode, inst: SimInstance): void {
    // Another node starts the same stateful service too.
    const other = [...this.nodes.values()].find(n => n !== node && n.vmUp)
    if (other) other.instances.set(`${inst.id}-twin`, { ...inst, id: `${inst.id}-twin` })
  }
}

/** A node's log on stderr, stamped with simulated time. */
function logFor (id: string, now: () => number): Logger {
  return pino({ level: 'debug', base: { node: id }, timestamp: () => `,"sim":${(now() / 1000).toFixed(3)}` }, pino.destination({ fd: 2, sync: true }))
}

/** The example web cluster, with the seed's node counts. */
function simSpec (p: SimPlan): Spec {
  return loadSpecText(`cluster: { min_nodes: ${p.minNodes}, max_nodes: ${p.maxNodes}, max_instances_per_node: 2 }
services:
  db: { command: [db], port: 6380, volume: { name: db-data }, min: 1, max: 1 }
  www: { command: [www], port: 8082, min: 1, max: 3 }
  app: { command: [app], port: 8081, depends_on: [db], on_change: reload, min: 1, max: 4 }
  lb:
    port: 8080
    depends_on: [www, app]
    address: { name: lb-ip }
    balancer: { routes: [{ path: /api, service: app }, { path: /, service: www }] }
`, 'sim.yaml', '/sim')
}
