// One simulated VM: the real node loop (NodeCore) with a simulated disk, a simulated supervisor
// (instances start and stop after a delay, and outlive a daemon crash, as processes do) and the
// dependency views a real node would render (kept to compare balancers at the end).
import { renderBuiltinConfig } from '../balancers/builtin/render.js'
import type { PersistentState } from '../core/consensus/consensus.js'
import { localInstances } from '../core/local-plan.js'
import type { InstanceReport, InstanceState } from '../core/types.js'
import { VIEW_DEAD_GRACE_MS } from '../core/scheduler.js'
import { dependencyView, membershipKnown } from '../core/views.js'
import { NodeCore, type NodeTiming } from '../node/node.js'
import { wrapProvider, type Provider } from '../providers/provider.js'
import { silentLogger, type Logger } from '../util/log.js'
import type { Rng } from './rng.js'

export interface SimInstance {
  id: string
  service: string
  state: InstanceState
  /** Document version of the view it applied, and the view's identity. */
  view?: number
  viewKey?: string
  stateful: boolean
  /** It crash-looped and its supervisor gave up (FAIL). */
  gaveUp?: boolean
}

/** How a message was sent: by whom (which incarnation), when, in which term, and what it echoes. */
export interface Sent {
  from: SimNode
  inc: number
  at: number
  term: number
  /** A message only a leader sends (its heartbeat, an append, a commit): one that renews a follower's promise. */
  asLeader: boolean
  /** The sender's followedAt entries when it sent (what the message tells its receiver). */
  followed: ReadonlyMap<string, { inc: number, at: number }> | undefined
}

export interface SimNodeHost {
  now: () => number
  schedule: (delayMs: number, run: () => void) => void
  publishHeartbeat: (from: SimNode, hb: Parameters<NodeCore['onHeartbeat']>[0]) => void
  publishControl: (from: SimNode, msg: Parameters<NodeCore['onControl']>[0]) => void
  proposed: (from: SimNode, version: number, term: number, mayAct: boolean) => void
  provider: Provider
  /** A stateful instance starts (the checker verifies its volume is attached here). */
  statefulStarted: (node: SimNode, inst: SimInstance) => void
  /** Local (daemon) clock of this node: simulated time scaled by its drift. */
  clock: (node: SimNode) => number
  /** The autoscaling metric an instance reports now, if any (a synthetic load). */
  metric?: (inst: SimInstance) => number | undefined
  /** Whether instances of `service` crash-loop on `node` (the seed's crashLoop). */
  crashes?: (node: string, service: string) => boolean
  /** A logger for a node (debugging a seed), or undefined for silence. */
  logger?: (id: string) => Logger | undefined
}

const quiet = silentLogger()

export class SimNode {
  core!: NodeCore
  /** What its "disk" holds (the state file). */
  disk: PersistentState | null = null
  /** The daemon process runs (a VM can be up with its daemon crashed). */
  daemonUp = true
  /** The VM exists (a terminated VM takes its services with it). */
  vmUp = true
  frozenUntil = -Infinity
  backlog: Array<() => void> = []
  /** Heartbeats waiting for the next tick (large clusters only), each with how it was sent. */
  inbox: Array<Parameters<NodeCore['onHeartbeat']>[0]> = []
  inboxSent: Sent[] = []
  /**
   * God view, for the lease checkers (see Simulation.received): per node this daemon followed as
   * its leader, the latest send time of a message of that leader (by its incarnation) after which
   * it did. Cleared when the daemon restarts (the new process followed nobody yet).
   */
  readonly followedAt = new Map<string, { inc: number, at: number }>()
  /**
   * Per voter, the latest time this daemon sent a message that the voter processed and followed it
   * after, as learnt by a later message of the voter that this daemon processed: a completed round
   * trip, the only evidence a lease can rest on. Cleared when the daemon restarts.
   */
  readonly contactAt = new Map<string, number>()
  readonly instances = new Map<string, SimInstance>()
  /** Volumes mounted on this VM (by its daemon; a mount outlives a daemon crash). */
  readonly mounted = new Set<string>()
  /** Rendered balancer configs of local lb instances, by instance id. */
  readonly balancers = new Map<string, string>()
  private renderQueued = false
  incarnation = 0

  constructor (readonly id: string, readonly ip: string, readonly zone: string, readonly launch: string, readonly bootstrapExpect: number,
    readonly hasBootstrapPeers: boolean, private readonly timing: NodeTiming, private readonly host: SimNodeHost, private readonly rng: Rng,
    readonly drift: number) {
    this.startDaemon(false)
  }

  /** (Re)start the daemon from what is on disk; instances keep running (they are processes). */
  startDaemon (amnesic: boolean): void {
    this.incarnation++
    this.daemonUp = true
    this.followedAt.clear()
    this.contactAt.clear()
    this.core = new NodeCore({
      id: this.id,
      cluster: 'sim',
      peer: this.id,
      ip: this.ip,
      mesh: `/ip4/${this.ip}/tcp/7610`,
      api: `http://${this.ip}:7600`,
      ...(this.launch !== 'initial' ? { launch: this.launch } : {}),
      zone: this.zone,
      bootstrapExpect: this.bootstrapExpect,
      hasBootstrapPeers: this.hasBootstrapPeers,
      incarnation: this.incarnation
    }, this.timing, {
      publishHeartbeat: (hb) => this.host.publishHeartbeat(this, hb),
      publishControl: (msg) => this.host.publishControl(this, msg),
      // Documents are never changed once made, so the "disk" can hold the same objects.
      persist: (s) => { this.disk = { ...s } },
      provider: this.providerOf(this.incarnation),
      localReports: () => this.reports(),
      localWorkChanged: () => this.queueRender(),
      mounts: () => [...this.mounted],
      load: () => 0,
      logger: this.host.logger?.(this.id) ?? quiet,
      rng: this.rng.next,
      now: () => this.host.clock(this),
      onPropose: (id, mayAct) => this.host.proposed(this, id.version, id.term, mayAct)
    }, amnesic ? null : this.disk, amnesic, this.host.clock(this))
  }

  /**
   * The cloud as one daemon process sees it. A process that died makes no more calls: its pending
   * continuations (an answer arriving after the crash) would otherwise carry on in the simulator,
   * where the old NodeCore object lives on, and act on state the dead process no longer has.
   */
  private providerOf (incarnation: number): Provider {
    const p = this.host.provider
    const live = (): boolean => this.daemonUp && this.vmUp && this.incarnation === incarnation
    const never = new Promise<never>(() => {})
    const gate = <A extends unknown[], R>(f: (...a: A) => Promise<R>) => (...a: A): Promise<R> => live() ? f(...a) : never
    return wrapProvider(p, (_call, f) => gate(f))
  }

  get frozen (): boolean { return this.host.now() < this.frozenUntil }
  get running (): boolean { return this.vmUp && this.daemonUp }

  reports (): Record<string, InstanceReport> {
    const out: Record<string, InstanceReport> = {}
    for (const i of this.instances.values()) {
      const metric = this.host.metric?.(i)
      out[i.id] = { state: i.state, ...(i.view !== undefined ? { view: i.view } : {}), ...(metric !== undefined ? { metric } : {}), ...(i.gaveUp ? { gaveUp: true, failures: 5, error: 'crash loop: gave up after 5 failures; last: exited with code 3' } : {}) }
    }
    return out
  }

  /** Local work, coalesced like the daemon's renders (50 ms). */
  queueRender (): void {
    if (this.renderQueued) return
    this.renderQueued = true
    this.host.schedule(50, () => this.renderWhenThawed())
  }

  /** A frozen process runs its due timer once it thaws (as the daemon's would), not never. */
  private renderWhenThawed (): void {
    if (this.frozen) { this.host.schedule(this.frozenUntil - this.host.now(), () => this.renderWhenThawed()); return }
    this.renderQueued = false
    if (this.running) this.render()
  }

  private render (): void {
    const c = this.core.consensus
    const doc = c.committed
    const members = this.core.memberMap()
    if (!doc || !c.isCurrent) return
    if (!membershipKnown(doc, members, this.core.uptimeSince, this.host.clock(this), this.timing.membership.deadAfterMs)) { this.host.schedule(250, () => this.queueRender()); return }
    // Mount what the document attaches here for an instance to run here, if the cloud agrees (as
    // the daemon does; the mount survives a daemon crash, like a real one).
    for (const rec of Object.values(doc.instances)) {
      if (rec.volume && rec.node === this.id && rec.phase !== 'stop' && doc.volumes[rec.volume]?.attachedTo === this.id && this.host.provider.mountedVolumes(this.id).includes(rec.volume)) this.mounted.add(rec.volume)
    }
    const want = localInstances(doc, this.id, (v) => this.mounted.has(v))
    for (const [id, inst] of this.instances) {
      if (want.has(id) || inst.state === 'Stopping') continue
      inst.state = 'Stopping'
      this.host.schedule(this.rng.range(50, 400), () => { this.instances.delete(id); this.balancers.delete(id); this.unmountUnused(); this.changed() })
    }
    this.unmountUnused()
    for (const [id, li] of want) {
      let inst = this.instances.get(id)
      if (!inst) {
        inst = { id, service: li.rec.service, state: 'Starting', stateful: !!li.rec.volume }
        this.instances.set(id, inst)
        if (inst.stateful) this.host.statefulStarted(this, inst)
        const started = inst
        // A crash-looping one fails its restarts until its supervisor gives up (as a real one would after restart.max_failures).
        const crashes = this.host.crashes?.(this.id, inst.service) === true
        this.host.schedule(crashes ? this.rng.range(2_000, 8_000) : this.rng.range(100, 1_500), () => {
          if (started.state !== 'Starting' || this.instances.get(id) !== started) return
          started.state = crashes ? 'FAIL' : 'ONLINE'
          if (crashes) started.gaveUp = true
          this.changed()
        })
      }
      const view = dependencyView(doc, members, li.rec.service, this.host.clock(this), VIEW_DEAD_GRACE_MS)
      inst.view = doc.version
      inst.viewKey = JSON.stringify(view)
      if (li.spec.balancer) this.balancers.set(id, renderBuiltinConfig(li.spec.balancer.routes, view))
    }
    this.changed()
  }

  /** Unmount volumes no instance here uses any more (then the leader may detach them). */
  private unmountUnused (): void {
    const doc = this.core.consensus.committed
    for (const v of this.mounted) {
      const used = [...this.instances.values()].some(i => i.stateful && doc?.instances[i.id]?.volume === v) ||
        Object.values(doc?.instances ?? {}).some(i => i.volume === v && i.node === this.id && i.phase !== 'stop')
      if (!used) this.mounted.delete(v)
    }
  }

  /** An instance changed state: heartbeat soon, as the daemon does. */
  private changed (): void {
    if (this.running && !this.frozen) this.core.sendHeartbeat(this.host.clock(this))
  }

  /** The VM goes: daemon and services. */
  destroy (): void {
    this.inbox = []
    this.inboxSent = []
    this.mounted.clear()
    this.vmUp = false
    this.daemonUp = false
    this.instances.clear()
    this.balancers.clear()
  }
}
