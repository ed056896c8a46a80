// The daemon: wires the pure core (membership, consensus, scheduler, views) to its adapters (mesh,
// store, supervisor, provider, API). Every node runs the same loop; only the leader schedules.
import { mkdirSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { bootstrapVoters } from '../core/bootstrap.js'
import type { Command } from '../core/commands.js'
import { Consensus } from '../core/consensus/consensus.js'
import { localInstances, type LocalInstance } from '../core/local-plan.js'
import { Membership, type MemberChange } from '../core/membership.js'
import type { Observed, ObservedNode } from '../core/observed.js'
import { buildStatus, type StatusReport } from '../core/status.js'
import { emptyDoc, type ClusterDoc, type Heartbeat, type InstanceReport } from '../core/types.js'
import { dependencyView, membershipKnown } from '../core/views.js'
import type { DaemonConfig } from '../config/daemon-config.js'
import { loadOrCreatePeerKey, loadPsk, loadToken } from '../mesh/keys.js'
import { Mesh, toMultiaddr } from '../mesh/mesh.js'
import type { Provider } from '../providers/provider.js'
import { NodeStore } from '../store/node-store.js'
import { Supervisor, type InstanceDef } from '../supervisor/supervisor.js'
import type { Logger } from '../util/log.js'
import { CloudExecutor } from './executor.js'
import { LeaderLoop, type SubmitResult } from './leader.js'
import { Relations } from '../relations/relations.js'
import type { PeerInstance } from '../relations/rolling.js'

/** Main loop period: membership, election and scheduling advance this often. */
const TICK_MS = 100

export interface DaemonOptions {
  config: DaemonConfig
  provider: Provider
  logger: Logger
  /** argv that runs this program, for the builtin balancer's process. */
  selfArgv: string[]
  /** Randomness for election timeouts (the simulator injects a seeded one). */
  rng?: () => number
}

export class Daemon {
  readonly id: string
  readonly cfg: DaemonConfig
  readonly log: Logger
  readonly token: string
  private readonly provider: Provider
  private readonly store: NodeStore
  private mesh!: Mesh
  private membership: Membership
  private consensus!: Consensus
  private supervisor: Supervisor
  private relations: Relations
  private leader!: LeaderLoop
  private executor!: CloudExecutor
  private readonly startedAt = now()
  private readonly incarnation = Date.now()
  private hbSeq = 0
  private timers: NodeJS.Timeout[] = []
  private lastHeartbeatAt = 0
  /** Definitions of the instances this node runs, kept stable while they run. */
  private readonly defs = new Map<string, InstanceDef>()
  private renderPending = false
  private renderRunning = false
  private lastBootstrapDial = -Infinity
  private stopped = false

  constructor (private readonly opts: DaemonOptions) {
    const c = opts.config
    this.cfg = c
    this.id = c.node_id
    this.log = opts.logger
    this.provider = opts.provider
    this.token = loadToken(c.admin_token_file)
    mkdirSync(c.data_dir, { recursive: true, mode: 0o700 })
    this.store = new NodeStore(c.data_dir)
    this.membership = new Membership(this.id, {
      suspectAfterMs: c.timing.suspect_after_ms,
      deadAfterMs: c.timing.dead_after_ms,
      forgetAfterMs: 600_000
    })
    this.supervisor = new Supervisor({ dataDir: c.data_dir, bindIp: c.bind, nodeId: this.id, logger: this.log.child({ component: 'supervisor' }) })
    this.relations = new Relations({ dataDir: c.data_dir, supervisor: this.supervisor, logger: this.log.child({ component: 'relations' }), selfArgv: opts.selfArgv, bindIp: c.bind, nodeId: this.id, cluster: c.cluster })
  }

  async start (): Promise<void> {
    const c = this.cfg
    const psk = loadPsk(c.psk_file)
    const key = await loadOrCreatePeerKey(join(c.data_dir, 'peer.key'))
    const loaded = this.store.load()
    if (loaded.problem) this.log.error(loaded.problem)
    this.consensus = new Consensus(this.id, loaded.state, now(), this.opts.rng ?? Math.random, {
      electionTimeoutMinMs: c.timing.election_timeout_min_ms,
      electionTimeoutMaxMs: c.timing.election_timeout_max_ms,
      leaseMs: c.timing.lease_ms,
      fastElectionJitterMs: 150
    }, loaded.problem !== undefined)
    this.leader = new LeaderLoop({ self: this.id, consensus: this.consensus, observe: (t) => this.observe(t), logger: this.log.child({ component: 'leader' }), flush: () => this.flush() })
    this.executor = new CloudExecutor({
      self: this.id,
      provider: this.provider,
      logger: this.log.child({ component: 'executor' }),
      canAct: () => this.consensus.canAct(now()),
      report: (cmd) => this.leader.report(cmd),
      onLaunchFailure: () => this.leader.noteLaunchFailure(now()),
      bootstrapAddrs: () => this.membership.live().map(m => m.hb.mesh).filter(Boolean)
    })
    // Services left running by an earlier daemon process keep running (a balancer keeps serving).
    await this.supervisor.adopt()
    this.supervisor.on('change', () => this.onLocalChange())
    this.mesh = new Mesh({ cluster: c.cluster, ip: c.bind, port: c.mesh_port, psk, privateKey: key, logger: this.log.child({ component: 'mesh' }) })
    this.mesh.on('heartbeat', (hb) => this.onHeartbeat(hb))
    this.mesh.on('control', (msg) => { this.consensus.step(msg, now()); this.flush() })
    this.mesh.on('disconnect', (peer) => this.onDisconnect(peer))
    await this.mesh.start()
    this.log.info({ node: this.id, peer: this.mesh.peerId, mesh: this.mesh.address, term: this.consensus.currentTerm, hasState: !!loaded.state?.accepted }, 'wakame agent started')
    this.sendHeartbeat()
    this.dialBootstrap()
    this.timers.push(setInterval(() => this.tick(), TICK_MS))
  }

  async stop (opts: { stopServices?: boolean } = {}): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const t of this.timers) clearInterval(t)
    if (opts.stopServices) await this.supervisor.stopAll()
    else this.supervisor.detach()
    await this.mesh?.stop()
  }

  // ---- API-facing ----

  status (): StatusReport {
    const c = this.consensus
    return buildStatus({
      doc: c.committed ?? c.acceptedDoc,
      members: this.memberMap(),
      self: this.id,
      leader: c.currentLeader,
      term: c.currentTerm,
      now: now(),
      cluster: this.cfg.cluster
    })
  }

  isLeader (): boolean { return this.consensus.currentRole === 'leader' }

  /** The leader's API URL, as its heartbeats announce it. */
  leaderApi (): string | undefined {
    const l = this.consensus.currentLeader
    return l ? this.membership.get(l)?.hb.api : undefined
  }

  async submit (cmd: Command): Promise<SubmitResult> {
    return await this.leader.submit(cmd)
  }

  get defaultSpecPath (): string | undefined { return this.cfg.spec }

  // ---- loop ----

  private tick (): void {
    if (this.stopped) return
    const t = now()
    for (const ch of this.membership.tick(t)) this.onMemberChange(ch, t)
    this.consensus.tick(t)
    this.maybeBootstrap(t)
    this.flush()
    this.leader.tick(t)
    const committed = this.consensus.committed
    if (this.consensus.currentRole === 'leader' && committed && this.consensus.canAct(t)) this.executor.reconcile(committed, t)
    if (t - this.lastHeartbeatAt >= this.cfg.timing.heartbeat_interval_ms) {
      this.sendHeartbeat()
      this.keepConnected()
    }
  }

  /** Persist first, then send, then act on what was committed (etcd's Ready contract). */
  private flush (): void {
    const rd = this.consensus.ready()
    if (rd.persist) this.store.save(rd.persist)
    for (const m of rd.send) void this.mesh.publishControl(m)
    for (const e of rd.events) this.log.info({ ...e }, `consensus: ${e.type}`)
    if (rd.committed) this.scheduleRender()
  }

  private sendHeartbeat (): void {
    const t = now()
    this.lastHeartbeatAt = t
    const hb = this.buildHeartbeat(t)
    this.membership.heartbeat(hb, t)
    void this.mesh.publishHeartbeat(hb)
  }

  private buildHeartbeat (t: number): Heartbeat {
    const instances: Record<string, InstanceReport> = {}
    for (const [id, r] of Object.entries(this.supervisor.reports())) {
      const { failure, ...rel } = this.relations.report(id)
      // A failed render or reload makes a running instance FAIL, with the reason.
      instances[id] = failure && r.state === 'ONLINE' ? { ...r, ...rel, state: 'FAIL', error: failure } : { ...r, ...rel }
    }
    return {
      node: this.id,
      peer: this.mesh.peerId,
      incarnation: this.incarnation,
      seq: ++this.hbSeq,
      ip: this.cfg.bind,
      mesh: this.mesh.address,
      api: `http://${hostPort(this.cfg.api_bind, this.cfg.api_port)}`,
      load1: Math.round(loadavg()[0]! * 100) / 100,
      ...(this.cfg.zone ? { zone: this.cfg.zone } : {}),
      ...this.consensus.heartbeatFields(t),
      bootstrapExpect: this.cfg.bootstrap_expect,
      ...(this.cfg.launch ? { launch: this.cfg.launch } : {}),
      instances
    }
  }

  private onHeartbeat (hb: Heartbeat): void {
    const t = now()
    const prev = this.membership.get(hb.node)?.hb
    const ch = this.membership.heartbeat(hb, t)
    if (ch) this.onMemberChange(ch, t)
    this.consensus.heartbeat(hb, t)
    this.flush()
    // Instance states changed somewhere: dependency views may change.
    if (!prev || JSON.stringify(prev.instances) !== JSON.stringify(hb.instances)) this.scheduleRender()
  }

  private onMemberChange (ch: MemberChange, t: number): void {
    this.log.info({ member: ch.id, from: ch.from, to: ch.to, reason: ch.reason }, `member ${ch.id} is ${ch.to}`)
    if (ch.to === 'dead') this.consensus.leaderIsDead(ch.id, t)
    this.scheduleRender()
  }

  /** A lost connection makes the peer suspect; a refused redial makes it dead at once. */
  private onDisconnect (peer: string): void {
    const m = this.membership.all().find(x => x.hb.peer === peer)
    if (!m || m.id === this.id) return
    const t = now()
    const ch = this.membership.disconnected(m.id, t)
    if (ch) this.onMemberChange(ch, t)
    void this.redial(m.id, m.hb.mesh)
  }

  private async redial (id: string, addr: string): Promise<void> {
    if (!addr || this.stopped) return
    const r = await this.mesh.dial(addr)
    if (r === 'refused') {
      const t = now()
      const ch = this.membership.refused(id, t)
      if (ch) this.onMemberChange(ch, t)
    }
  }

  /** Dial members we are not connected to (mesh upkeep), and bootstrap peers while alone. */
  private keepConnected (): void {
    for (const m of this.membership.live()) {
      if (m.id === this.id || this.mesh.isConnected(m.hb.peer)) continue
      void this.redial(m.id, m.hb.mesh)
    }
    if (this.mesh.connectedPeers().length === 0 || !this.consensus.currentLeader) this.dialBootstrap()
  }

  private dialBootstrap (): void {
    const t = now()
    if (t - this.lastBootstrapDial < 1_000 || this.cfg.bootstrap.length === 0) return
    this.lastBootstrapDial = t
    for (const addr of this.cfg.bootstrap) {
      let ma: string
      try { ma = toMultiaddr(addr) } catch (err) { this.log.warn({ addr, err: String(err) }, 'bad bootstrap address'); continue }
      if (ma.includes(`/${this.cfg.bind}/tcp/${this.cfg.mesh_port}`)) continue
      void this.mesh.dial(ma, { diagnose: true }).then(r => { if (r !== 'connected') this.log.debug({ addr, result: r }, 'bootstrap dial failed') })
    }
  }

  private maybeBootstrap (t: number): void {
    if (this.consensus.acceptedDoc) return
    const voters = bootstrapVoters({
      self: this.id,
      expect: this.cfg.bootstrap_expect,
      members: this.membership.all(),
      now: t,
      startedAt: this.startedAt,
      joinWaitMs: 2_000,
      hasBootstrapPeers: this.cfg.bootstrap.length > 0
    })
    if (!voters) return
    const doc: ClusterDoc = emptyDoc(this.cfg.cluster)
    doc.voters = voters
    for (const id of voters) {
      const hb = this.membership.get(id)?.hb
      if (hb) doc.nodes[id] = { id, ip: hb.ip, peer: hb.peer, ...(hb.zone ? { zone: hb.zone } : {}), ...(hb.launch ? { launch: hb.launch } : {}) }
    }
    this.log.info({ voters }, 'forming a new cluster')
    this.consensus.bootstrap(doc, t)
  }

  private observe (t: number): Observed {
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
        instances: m.hb.instances
      })
    }
    const doc = this.consensus.acceptedDoc
    for (const [id, n] of Object.entries(doc?.nodes ?? {})) {
      if (nodes.has(id)) continue
      // In the document but never heard since this daemon started: dead once that is meaningful.
      nodes.set(id, { id, status: t - this.startedAt > this.cfg.timing.dead_after_ms ? 'dead' : 'unknown', ip: n.ip, peer: n.peer, current: false, committed: null, instances: {} })
    }
    return { nodes }
  }

  private memberMap (): Map<string, ReturnType<Membership['all']>[number]> {
    return new Map(this.membership.all().map(m => [m.id, m]))
  }

  private onLocalChange (): void {
    // Publish soon (not every change: a burst of transitions goes out in one heartbeat).
    const t = now()
    if (t - this.lastHeartbeatAt > 50) this.sendHeartbeat()
    else setTimeout(() => { if (!this.stopped && now() - this.lastHeartbeatAt >= 50) this.sendHeartbeat() }, 60)
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
      const local = localInstances(doc, this.id)
      const running = this.supervisor.reports()
      const desired = new Map<string, InstanceDef>()
      for (const [id, inst] of local) {
        const view = dependencyView(doc, members, inst.rec.service)
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
          def = this.instanceDef(inst, prepared.env, prepared.argv)
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

  private instanceDef (inst: LocalInstance, env: Record<string, string>, argv: string[] | undefined): InstanceDef {
    const volumeDir = inst.rec.volume ? this.provider.mountPoint(inst.rec.volume, this.id) : undefined
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
