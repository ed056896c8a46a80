// The daemon: the node's loop (src/node) wired to its adapters — the libp2p mesh, the state file,
// the supervisor and relations (this node's processes and their files), the provider, the API.
import { mkdirSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Command } from '../core/commands.js'
import { localInstances, type LocalInstance } from '../core/local-plan.js'
import type { StatusReport } from '../core/status.js'
import type { ClusterDoc, InstanceReport } from '../core/types.js'
import { VIEW_DEAD_GRACE_MS } from '../core/scheduler.js'
import { dependencyView, instancesInDeadGrace, membershipKnown } from '../core/views.js'
import type { DaemonConfig } from '../config/daemon-config.js'
import { loadOrCreatePeerKey, loadPsk, loadToken } from '../mesh/keys.js'
import { Mesh, toMultiaddr } from '../mesh/mesh.js'
import type { PlanAnswerResult, SubmitResult } from '../node/leader.js'
import { NodeCore } from '../node/node.js'
import type { Provider } from '../providers/provider.js'
import type { ClusterEvent } from '../events/event.js'
import { EventLog } from '../events/log.js'
import type { EventQuery } from '../events/ring.js'
import { meteredProvider, type Metrics } from '../metrics/metrics.js'
import { Relations } from '../relations/relations.js'
import type { PeerInstance } from '../relations/rolling.js'
import { NodeStore } from '../store/node-store.js'
import { DeadReach, probeTcp } from '../supervisor/reach.js'
import { Supervisor, type InstanceDef } from '../supervisor/supervisor.js'
import type { Logger } from '../util/log.js'

/** Main loop period: membership, election and scheduling advance this often. */
const TICK_MS = 100

export interface DaemonOptions {
  config: DaemonConfig
  provider: Provider
  logger: Logger
  /** argv that runs this program, for the builtin balancer's process. */
  selfArgv: string[]
  /**
   * Finds peers through the platform (EC2: running instances with the cluster tag), as host:port.
   * Asked at start and, with backoff, while this node is isolated; gossip does the rest.
   */
  discover?: () => Promise<string[]>
  /** Prometheus metrics of this node (`GET /metrics`); none when absent. */
  metrics?: Metrics
}

/** Discovery while isolated: first retry after this long, doubling up to the max. */
const DISCOVER_BACKOFF_MIN_MS = 2_000
const DISCOVER_BACKOFF_MAX_MS = 60_000

export class Daemon {
  readonly id: string
  readonly cfg: DaemonConfig
  readonly log: Logger
  /** Admin tokens the API accepts: the primary, then those of admin_token_accept_files (rotation). */
  readonly tokens: readonly string[]
  /** Where this node's admin API answers (https when it has a certificate). */
  get apiUrl (): string {
    const c = this.cfg
    return `${c.api_tls_cert_file ? 'https' : 'http'}://${hostPort(c.api_bind, c.api_port)}`
  }
  private readonly provider: Provider
  private readonly metricsRegistry: Metrics | undefined
  private readonly discover: (() => Promise<string[]>) | undefined
  private readonly store: NodeStore
  /** This node's event history (data_dir/events), kept across restarts. */
  private readonly events: EventLog
  private eventLogFailing = false
  private mesh!: Mesh
  private node!: NodeCore
  private readonly supervisor: Supervisor
  private readonly relations: Relations
  private readonly startedAt = now()
  private timers: NodeJS.Timeout[] = []
  /** Definitions of the instances this node runs, kept stable while they run. */
  private readonly defs = new Map<string, InstanceDef>()
  private renderPending = false
  private renderRunning = false
  private lastBootstrapDial = -Infinity
  /** Peers found by discovery (host:port), dialled like the configured bootstrap peers. */
  private discovered: string[] = []
  private nextDiscovery = -Infinity
  private discoveryBackoff = DISCOVER_BACKOFF_MIN_MS
  private discovering = false
  /** Why this node is leaving (spot interruption, scheduled maintenance), once it is. */
  private drainReason: string | undefined
  private readonly lastDeadDial = new Map<string, number>()
  /** Instances of just-dead members that do not answer from here: out of this node's views at once. */
  private readonly deadReach = new DeadReach(probeTcp, () => this.scheduleRender())
  private stopped = false

  constructor (opts: DaemonOptions) {
    const c = opts.config
    this.cfg = c
    this.id = c.node_id
    this.log = opts.logger
    this.metricsRegistry = opts.metrics
    // Every cloud call counted and timed when metrics are on.
    this.provider = opts.metrics ? meteredProvider(opts.provider, opts.metrics) : opts.provider
    this.discover = opts.discover
    this.tokens = [c.admin_token_file, ...c.admin_token_accept_files].map(loadToken)
    mkdirSync(c.data_dir, { recursive: true, mode: 0o700 })
    this.store = new NodeStore(c.data_dir)
    this.events = new EventLog(join(c.data_dir, 'events'))
    for (const p of this.events.problems) this.log.warn(p)
    this.supervisor = new Supervisor({ dataDir: c.data_dir, bindIp: c.bind, nodeId: this.id, logger: this.log.child({ component: 'supervisor' }) })
    this.relations = new Relations({ dataDir: c.data_dir, supervisor: this.supervisor, logger: this.log.child({ component: 'relations' }), selfArgv: opts.selfArgv, bindIp: c.bind, nodeId: this.id, cluster: c.cluster, ...(opts.metrics ? { observeRender: (s: number) => opts.metrics!.renderSeconds.observe(s) } : {}) })
  }

  private get consensus () { return this.node.consensus }
  private get membership () { return this.node.membership }

  async start (): Promise<void> {
    const c = this.cfg
    const psk = loadPsk(c.psk_file)
    const acceptedPsks = c.psk_accept_files.map(f => loadPsk(f))
    const key = await loadOrCreatePeerKey(join(c.data_dir, 'peer.key'))
    const loaded = this.store.load()
    if (loaded.problem) this.log.error(loaded.problem)
    // Services left running by an earlier daemon process keep running (a balancer keeps serving).
    await this.supervisor.adopt()
    this.supervisor.on('change', () => this.onLocalChange())
    this.mesh = new Mesh({ cluster: c.cluster, node: this.id, ip: c.bind, port: c.mesh_port, psk, acceptedPsks, privateKey: key, logger: this.log.child({ component: 'mesh' }) })
    await this.mesh.start()
    const t = c.timing
    this.node = new NodeCore({
      id: this.id,
      cluster: c.cluster,
      peer: this.mesh.peerId,
      ip: c.bind,
      mesh: this.mesh.address,
      api: this.apiUrl,
      ...(c.zone ? { zone: c.zone } : {}),
      ...(c.launch ? { launch: c.launch } : {}),
      bootstrapExpect: c.bootstrap_expect,
      hasBootstrapPeers: c.bootstrap.length > 0 || this.discover !== undefined,
      incarnation: Date.now()
    }, {
      heartbeatIntervalMs: t.heartbeat_interval_ms,
      membership: { suspectAfterMs: t.suspect_after_ms, deadAfterMs: t.dead_after_ms, forgetAfterMs: 600_000 },
      consensus: { electionTimeoutMinMs: t.election_timeout_min_ms, electionTimeoutMaxMs: t.election_timeout_max_ms, leaseMs: t.lease_ms, fastElectionJitterMs: 150 }
    }, {
      publishHeartbeat: (hb) => { void this.mesh.publishHeartbeat(hb) },
      publishControl: (msg) => { void this.mesh.publishControl(msg) },
      persist: (state) => this.store.save(state),
      provider: this.provider,
      localReports: () => this.localReports(),
      localWorkChanged: () => this.scheduleRender(),
      mounts: () => this.provider.mountedVolumes(this.id),
      draining: () => this.drainReason,
      ...(this.metricsRegistry ? { onPropose: () => this.metricsRegistry!.proposals.inc() } : {}),
      load: () => Math.round(loadavg()[0]! * 100) / 100,
      logger: this.log,
      rng: Math.random,
      now,
      onEvent: (e) => this.logEvent(e),
      wallClock: Date.now
    }, loaded.state, loaded.problem !== undefined, now())
    this.metricsRegistry?.attach({ status: () => this.status(), balancers: () => this.relations.balancerStats() })
    this.mesh.on('heartbeat', (hb) => this.node.onHeartbeat(hb, now()))
    this.mesh.on('control', (msg) => this.node.onControl(msg, now()))
    this.mesh.on('disconnect', (peer) => this.onDisconnect(peer))
    this.log.info({ node: this.id, peer: this.mesh.peerId, mesh: this.mesh.address, term: this.consensus.currentTerm, hasState: !!loaded.state?.accepted }, 'wakame agent started')
    this.node.sendHeartbeat(now())
    if (this.discover) await this.discoverPeers()
    this.dialBootstrap()
    this.timers.push(setInterval(() => this.tick(), TICK_MS))
    this.timers.push(setInterval(() => this.syncEvents(), 1_000))
  }

  /** The event log is a record, not a duty: a full disk must not stop the node's loop. */
  private logEvent (e: ClusterEvent): void {
    try {
      const fresh = this.events.append(e)
      // Counted once, and only where it happened (a decision rides in documents to every node).
      if (fresh && e.node === this.id) this.metricsRegistry?.events.inc({ kind: e.kind })
      this.eventLogFailing = false
    } catch (err) {
      if (!this.eventLogFailing) this.log.error({ err: String(err) }, 'cannot write the event log; events are kept in memory only until it works again')
      this.eventLogFailing = true
    }
  }

  private syncEvents (): void {
    try { this.events.sync() } catch (err) { this.log.warn({ err: String(err) }, 'cannot sync the event log') }
  }

  async stop (opts: { stopServices?: boolean } = {}): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const t of this.timers) clearInterval(t)
    if (opts.stopServices) await this.supervisor.stopAll()
    else this.supervisor.detach()
    await this.mesh?.stop()
    this.events.close()
  }

  // ---- API-facing ----

  status (): StatusReport { return this.node.status(now()) }

  /** The Prometheus exposition of this node, or undefined when metrics are off. */
  async metrics (): Promise<{ text: string, contentType: string } | undefined> { return await this.metricsRegistry?.scrape() }

  isLeader (): boolean { return this.consensus.currentRole === 'leader' }

  /** True while this node leads with a valid lease and may change the cloud (the provider's fence). */
  canAct (): boolean { return this.node !== undefined && this.consensus.canAct(now()) }

  /**
   * This node is going away (a spot interruption or scheduled maintenance notice): heartbeats say
   * so from now on, and the leader moves its work elsewhere and replaces it.
   */
  drain (reason: string): void {
    if (this.drainReason !== undefined) return
    this.drainReason = reason
    this.log.warn({ reason }, 'draining: this node is leaving')
    this.onLocalChange()
  }

  /** The leader's API URL, as its heartbeats announce it. */
  leaderApi (): string | undefined {
    const l = this.consensus.currentLeader
    return l ? this.membership.get(l)?.hb.api : undefined
  }

  async submit (cmd: Command, by?: string): Promise<SubmitResult> {
    return await this.node.submit(cmd, by)
  }

  /** This node's event history (its own observations and every leader's decisions it received). */
  eventLog (q: EventQuery): { events: ClusterEvent[], last: number } {
    const events = this.events.query(q)
    // A page cut short by `limit` ends at its last event: `since=last` gets the next page.
    const cut = q.since !== undefined && q.limit !== undefined && events.length === q.limit
    return { events, last: cut ? events.at(-1)!.seq ?? this.events.lastSeq : this.events.lastSeq }
  }

  plan (cmd: Command | undefined): PlanAnswerResult {
    return this.node.plan(cmd, now())
  }

  get defaultSpecPath (): string | undefined { return this.cfg.spec }

  // ---- loop ----

  private tick (): void {
    if (this.stopped) return
    const before = this.node.lastHeartbeat
    const t = now()
    this.node.tick(t)
    if (this.node.lastHeartbeat !== before) this.keepConnected()
    // Two heartbeats missed: ask the peer directly (a hung one loses its connection: suspect).
    for (const m of this.membership.takeQuiet(t, 2 * this.cfg.timing.heartbeat_interval_ms)) void this.mesh.probe(m.hb.peer)
  }

  /** What heartbeats say about this node's instances: supervisor states plus relations. */
  private localReports (): Record<string, InstanceReport> {
    const instances: Record<string, InstanceReport> = {}
    for (const [id, r] of Object.entries(this.supervisor.reports())) {
      const { failure, ...rel } = this.relations.report(id)
      // A failed render or reload makes a running instance FAIL, with the reason.
      instances[id] = failure && r.state === 'ONLINE' ? { ...r, ...rel, state: 'FAIL', error: failure } : { ...r, ...rel }
    }
    return instances
  }

  /** A lost connection makes the peer suspect; a refused redial makes it dead at once. */
  private onDisconnect (peer: string): void {
    const m = this.membership.all().find(x => x.hb.peer === peer)
    if (!m || m.id === this.id) return
    this.node.disconnected(m.id, now())
    void this.redial(m.id, m.hb.mesh)
  }

  private async redial (id: string, addr: string): Promise<void> {
    if (!addr || this.stopped) return
    const r = await this.mesh.dial(addr)
    if (r === 'refused') this.node.refused(id, now())
  }

  /**
   * Dial members we are not connected to (mesh upkeep), and bootstrap peers while alone. Dead
   * members are dialled too, less often: after a partition both sides think the other dead, and
   * only a dial brings them back together.
   */
  private keepConnected (): void {
    const t = now()
    for (const m of this.membership.all()) {
      if (m.id === this.id || this.mesh.isConnected(m.hb.peer)) continue
      if (m.status === 'dead' && t - (this.lastDeadDial.get(m.id) ?? -Infinity) < 2_000) continue
      if (m.status === 'dead') this.lastDeadDial.set(m.id, t)
      void this.redial(m.id, m.hb.mesh)
    }
    if (this.mesh.connectedPeers().length === 0 || !this.consensus.currentLeader) this.dialBootstrap()
  }

  /** Asks discovery for peers; an empty or failed answer backs the next try off. */
  private async discoverPeers (): Promise<void> {
    if (!this.discover || this.discovering) return
    this.discovering = true
    try {
      const found = await this.discover()
      const fresh = found.filter(a => !this.discovered.includes(a))
      if (fresh.length > 0) this.log.info({ peers: fresh }, 'peers discovered')
      this.discovered = [...new Set([...this.discovered, ...found])]
      this.discoveryBackoff = found.length > 0 ? DISCOVER_BACKOFF_MIN_MS : Math.min(this.discoveryBackoff * 2, DISCOVER_BACKOFF_MAX_MS)
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'peer discovery failed')
      this.discoveryBackoff = Math.min(this.discoveryBackoff * 2, DISCOVER_BACKOFF_MAX_MS)
    } finally {
      this.discovering = false
      this.nextDiscovery = now() + this.discoveryBackoff
    }
  }

  private dialBootstrap (): void {
    const t = now()
    // Isolated (or no leader known): look again, with backoff; only the leader polls otherwise.
    if (this.discover && t >= this.nextDiscovery) void this.discoverPeers()
    const peers = [...new Set([...this.cfg.bootstrap, ...this.discovered])]
    if (t - this.lastBootstrapDial < 1_000 || peers.length === 0) return
    this.lastBootstrapDial = t
    for (const addr of peers) {
      let ma: string
      try { ma = toMultiaddr(addr) } catch (err) { this.log.warn({ addr, err: String(err) }, 'bad bootstrap address'); continue }
      if (ma.includes(`/${this.cfg.bind}/tcp/${this.cfg.mesh_port}`)) continue
      void this.mesh.dial(ma, { diagnose: true }).then(r => { if (r !== 'connected') this.log.debug({ addr, result: r }, 'bootstrap dial failed') })
    }
  }

  private memberMap () { return this.node.memberMap() }

  private onLocalChange (): void {
    // Publish soon (not every change: a burst of transitions goes out in one heartbeat).
    if (now() - this.node.lastHeartbeat > 50) this.node.sendHeartbeat(now())
    else setTimeout(() => { if (!this.stopped && now() - this.node.lastHeartbeat >= 50) this.node.sendHeartbeat(now()) }, 60)
    this.scheduleRender()
  }

  // ---- local work: what this node runs and what its instances see ----

  private scheduleRender (): void {
    if (this.renderPending || this.stopped) return
    this.renderPending = true
    setTimeout(() => { this.renderPending = false; void this.render() }, this.cfg.timing.render_coalesce_ms)
  }

  private async render (): Promise<void> {
    if (this.renderRunning) { this.scheduleRender(); return }
    const doc = this.consensus.committed
    // Act on nothing before holding the current leader's document and knowing the membership:
    // rendering earlier could replace a good config with an empty one.
    if (!doc || !this.consensus.isCurrent) return
    const members = this.memberMap()
    if (!membershipKnown(doc, members, this.startedAt, now(), this.cfg.timing.dead_after_ms)) { setTimeout(() => this.scheduleRender(), 250); return }
    this.renderRunning = true
    try {
      const mounts = await this.mountVolumes(doc)
      const local = localInstances(doc, this.id, (v) => mounts.has(v))
      const running = this.supervisor.reports()
      const desired = new Map<string, InstanceDef>()
      this.deadReach.check(instancesInDeadGrace(doc, members, now(), VIEW_DEAD_GRACE_MS))
      for (const [id, inst] of local) {
        const view = dependencyView(doc, members, inst.rec.service, now(), VIEW_DEAD_GRACE_MS, this.deadReach.unreachable)
        let def = this.defs.get(id)
        // A changed service spec (a relaunch with a new spec) gives a new definition: a restart.
        if (def && JSON.stringify(def.spec) !== JSON.stringify(inst.spec)) def = undefined
        if (def) {
          await this.relations.update(inst, view, doc.version, this.peersOf(doc, inst.rec.service, id))
        } else {
          // Adopted from an earlier daemon: bring its files up to date (reloading it if they change).
          if (running[id]) await this.relations.update(inst, view, doc.version, this.peersOf(doc, inst.rec.service, id))
          // The env given at start stays as it was: later changes reach the instance through its files.
          const prepared = this.relations.prepare(inst, view, doc.version)
          def = this.instanceDef(inst, prepared.env, prepared.argv, inst.rec.volume ? mounts.get(inst.rec.volume) : undefined)
          this.defs.set(id, def)
        }
        desired.set(id, def)
      }
      this.supervisor.reconcile(desired)
      for (const id of [...this.defs.keys()]) {
        if (!local.has(id)) { this.defs.delete(id); this.relations.forget(id) }
      }
      // A rolling restart waiting for its turn is looked at again soon.
      if (this.relations.hasPending()) setTimeout(() => this.scheduleRender(), 500)
      await this.unmountUnused(doc)
    } catch (err) {
      this.log.error({ err: String((err as Error)?.stack ?? err) }, 'render failed')
    } finally {
      this.renderRunning = false
    }
  }

  /** The other instances of a service, as their nodes report them (for rolling restarts). */
  private peersOf (doc: ClusterDoc, service: string, self: string): PeerInstance[] {
    const out: PeerInstance[] = []
    for (const rec of Object.values(doc.instances)) {
      if (rec.service !== service || rec.id === self || rec.phase !== 'run' || rec.node === null) continue
      const m = this.membership.get(rec.node)
      const r = m?.hb.instances[rec.id]
      out.push({ id: rec.id, state: r?.state ?? 'Offline', ...(r?.viewHash ? { viewHash: r.viewHash } : {}), live: m !== undefined && m.status !== 'dead' })
    }
    return out
  }

  /**
   * Mount the volumes the document attaches here for an instance that should run here (the cloud's
   * attachment can lag the document: a volume not attached yet is simply not mounted, and its
   * instance waits). Returns name → mount path.
   */
  private async mountVolumes (doc: ClusterDoc): Promise<Map<string, string>> {
    const out = new Map<string, string>()
    for (const rec of Object.values(doc.instances)) {
      if (!rec.volume || rec.node !== this.id || rec.phase === 'stop' || doc.volumes[rec.volume]?.attachedTo !== this.id) continue
      try {
        const path = await this.provider.mountVolume(rec.volume, this.id)
        if (path) out.set(rec.volume, path)
      } catch (err) {
        this.log.error({ volume: rec.volume, err: String((err as Error).message) }, 'cannot mount the volume; its instance waits')
      }
    }
    return out
  }

  /** Unmount volumes no instance here uses any more, so the leader can detach them (never forced). */
  private async unmountUnused (doc: ClusterDoc): Promise<void> {
    const inUse = new Set(Object.keys(this.supervisor.reports()).map(id => doc.instances[id]?.volume).filter(Boolean))
    for (const v of this.provider.mountedVolumes(this.id)) {
      if (inUse.has(v)) continue
      const mine = Object.values(doc.instances).some(i => i.volume === v && i.node === this.id && i.phase !== 'stop')
      if (mine) continue
      try {
        await this.provider.unmountVolume(v, this.id)
        this.log.info({ volume: v }, 'volume unmounted')
      } catch (err) {
        this.log.error({ volume: v, err: String((err as Error).message) }, 'cannot unmount the volume (busy?); it stays, and the leader cannot move it')
      }
    }
  }

  private instanceDef (inst: LocalInstance, env: Record<string, string>, argv: string[] | undefined, volumeDir: string | undefined): InstanceDef {
    return {
      id: inst.rec.id,
      service: inst.rec.service,
      spec: inst.spec,
      ...(inst.port !== undefined ? { port: inst.port } : {}),
      specDir: inst.specDir,
      env,
      ...(argv ? { argv } : {}),
      ...(volumeDir ? { volumeDir } : {})
    }
  }
}

function now (): number {
  return performance.now()
}

function hostPort (ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
}
