// Relations: each local instance learns where its dependencies are, and is told when that changes.
// The node renders every local instance's dependency view into files — deps.json, the builtin
// balancer's config, the spec's templates — and when the rendered output differs from what the
// instance was last given, runs its on_change action: reload (signal or command), restart (rolling:
// one instance of the service at a time), or none. The balancer is one consumer of this mechanism:
// its on_change is always a reload, done by its kind's runtime (src/balancers/kinds.ts), which also
// gives its argv and, for HAProxy, nginx and Apache, validates and installs its config file itself.
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createBalancer, type BalancerRuntime } from '../balancers/kinds.js'
import type { LocalInstance } from '../core/local-plan.js'
import type { InstanceReport } from '../core/types.js'
import { viewAddresses, type DependencyView } from '../core/views.js'
import { writeFileAtomicSync } from '../store/atomic.js'
import type { Supervisor } from '../supervisor/supervisor.js'
import type { Logger } from '../util/log.js'
import { mayRestart, type PeerInstance } from './rolling.js'
import { renderTemplate, type TemplateContext } from './template.js'

export interface RelationsDeps {
  dataDir: string
  supervisor: Supervisor
  logger: Logger
  /** argv that runs this program (`wakame`), for the builtin balancer's process. */
  selfArgv: string[]
  bindIp: string
  nodeId: string
  cluster: string
  /** A restart waiting for the instances before it gives up waiting after this long. @default 60000 */
  rollingMaxWaitMs?: number
  now?: () => number
  /** Told how long each render took, in seconds (metrics). */
  observeRender?: (seconds: number) => void
}

/** What one instance was given, and what came of it. */
interface Relation {
  /** Hash of the files last written. */
  written?: string
  /** Hash of the files the instance has applied (its on_change ran, or it started with them). */
  applied?: string
  appliedVersion?: number
  /** Hash of the dependency view it has applied: equal across a service's instances once they agree. */
  viewHash?: string
  deps: Record<string, string[]>
  rerenders: number
  lastChange?: NonNullable<InstanceReport['onChange']>
  /** A rolling restart waiting for its turn since this time. */
  pendingSince?: number
  /** A render or reload failure: the instance is reported FAIL with it. */
  failure?: string
}

export class Relations {
  private readonly rels = new Map<string, Relation>()
  /** The balancer runtime of each local balancer instance. */
  private readonly lbs = new Map<string, BalancerRuntime>()

  constructor (private readonly deps: RelationsDeps) {}

  instanceDir (id: string): string {
    return join(this.deps.dataDir, 'instances', id)
  }

  /**
   * Env and argv for an instance about to start; writes its files first, so it reads them at
   * start. The env stays as it was given at start; later changes reach the instance through its files.
   */
  prepare (inst: LocalInstance, view: DependencyView, version: number): { env: Record<string, string>, argv?: string[] } {
    const id = inst.rec.id
    const dir = this.instanceDir(id)
    const rel = this.relation(id)
    // A fresh runtime: the process (re)starts from the file, or was adopted and serves what is on disk.
    const lb = inst.spec.balancer ? this.balancer(inst, true) : undefined
    try {
      const files = this.render(inst, view)
      this.write(dir, files, lb)
      if (lb?.managed) lb.prepare(files.get(lb.configFile)!)
      rel.written = rel.applied = hashFiles(files)
      rel.failure = undefined
    } catch (err) {
      rel.failure = (err as Error).message
    }
    rel.appliedVersion = version
    rel.viewHash = hashView(view)
    rel.deps = viewAddresses(view)
    const env: Record<string, string> = { WAKAME_DEPS_FILE: join(dir, 'deps.json'), WAKAME_INSTANCE_DIR: dir }
    for (const [service, endpoints] of Object.entries(view)) {
      env[`WAKAME_DEP_${service.toUpperCase().replace(/-/g, '_')}`] = endpoints.map(e => e.address).join(',')
    }
    const argv = lb?.argv()
    return { env, ...(argv ? { argv } : {}) }
  }

  /**
   * Re-render a running instance's view. When the output differs from what it was last given, the
   * files are replaced atomically and its on_change action runs. `peers` are the other instances
   * of its service (for rolling restarts).
   */
  async update (inst: LocalInstance, view: DependencyView, version: number, peers: PeerInstance[]): Promise<void> {
    const id = inst.rec.id
    const dir = this.instanceDir(id)
    const rel = this.relation(id)
    let files: Map<string, string>
    try {
      files = this.render(inst, view)
    } catch (err) {
      rel.failure = (err as Error).message
      this.deps.logger.error({ instance: id, err: rel.failure }, 'cannot render the instance\'s files; the old ones stay')
      return
    }
    const hash = hashFiles(files)
    const viewHash = hashView(view)
    if (rel.applied === undefined) rel.applied = hashFiles(readFiles(dir, files))
    if (hash === rel.applied) {
      // Nothing new for the instance (a document change elsewhere): it is up to date at this version.
      Object.assign(rel, { appliedVersion: version, viewHash, deps: viewAddresses(view), pendingSince: undefined })
      if (rel.failure && rel.lastChange?.ok !== false) rel.failure = undefined
      return
    }
    const lb = inst.spec.balancer ? this.balancer(inst) : undefined
    if (hash !== rel.written) {
      this.write(dir, files, lb)
      rel.written = hash
      rel.rerenders++
      this.deps.logger.info({ instance: id, view: summarize(view) }, 'dependencies changed: files re-rendered')
    }
    const action = inst.spec.balancer ? 'reload' : inst.spec.on_change
    const now = this.deps.now?.() ?? Date.now()
    if (action === 'restart') {
      rel.pendingSince ??= now
      const d = mayRestart({ self: id, hash: viewHash, peers, waitedMs: now - rel.pendingSince, maxWaitMs: this.deps.rollingMaxWaitMs ?? 60_000 })
      if (!d.go) { this.deps.logger.debug({ instance: id, waitingFor: d.waitingFor }, 'restart waits its turn'); return }
      rel.pendingSince = undefined
    }
    try {
      let output = ''
      if (action === 'reload') output = lb ? await lb.apply(files.get(lb.configFile)!) : await this.deps.supervisor.reload(id)
      else if (action === 'restart') await this.deps.supervisor.restart(id)
      rel.lastChange = { action, ok: true, at: new Date(now).toISOString(), ...(output ? { output } : {}), ...(action === 'restart' && peers.every(p => !p.live || p.state === 'FAIL') ? { note: 'restarted (single instance): a brief gap while it restarts' } : {}) }
      rel.failure = undefined
    } catch (err) {
      const message = (err as Error).message
      // A refused balancer config leaves the last good one serving: degraded, shown with the reload, not FAIL.
      const degraded = (err as { code?: string }).code === 'BALANCER_DEGRADED'
      rel.lastChange = { action, ok: false, at: new Date(now).toISOString(), output: message.slice(0, 1000), ...(degraded ? { note: 'degraded: the last good config stays live' } : {}) }
      rel.failure = degraded ? undefined : `on_change ${action} failed: ${message}`
      this.deps.logger.warn({ instance: id, action, err: message }, 'on_change action failed')
    }
    Object.assign(rel, { applied: hash, appliedVersion: version, viewHash, deps: viewAddresses(view) })
  }

  /** True while a rolling restart waits for its turn (the caller re-renders until it happens). */
  hasPending (): boolean {
    for (const r of this.rels.values()) if (r.pendingSince !== undefined) return true
    return false
  }

  /** What heartbeats say about an instance's relations. */
  report (id: string): Pick<InstanceReport, 'view' | 'viewHash' | 'deps' | 'rerenders' | 'onChange'> & { failure?: string } {
    const r = this.rels.get(id)
    if (!r) return {}
    return {
      ...(r.appliedVersion !== undefined ? { view: r.appliedVersion } : {}),
      ...(r.viewHash ? { viewHash: r.viewHash } : {}),
      deps: r.deps,
      rerenders: r.rerenders,
      ...(r.lastChange ? { onChange: r.lastChange } : {}),
      ...(r.failure ? { failure: r.failure } : {})
    }
  }

  forget (id: string): void {
    this.rels.delete(id)
    this.lbs.delete(id)
  }

  /** The runtime of a balancer instance (created on first use, or afresh). */
  private balancer (inst: LocalInstance, fresh = false): BalancerRuntime {
    const id = inst.rec.id
    let lb = this.lbs.get(id)
    if (!lb || fresh) {
      const b = inst.spec.balancer!
      const t = b.template
      lb = createBalancer(b.kind, {
        instance: id,
        dir: this.instanceDir(id),
        listen: { host: this.deps.bindIp, port: inst.port! },
        logger: this.deps.logger,
        pid: () => this.deps.supervisor.pid(id),
        reload: () => this.deps.supervisor.reload(id),
        selfArgv: this.deps.selfArgv,
        ...(t ? { template: { name: t.source ?? 'balancer.template', read: () => t.text ?? readFileSync(resolve(inst.specDir, t.source!), 'utf8') } } : {})
      })
      this.lbs.set(id, lb)
    }
    return lb
  }

  private relation (id: string): Relation {
    let r = this.rels.get(id)
    if (!r) { r = { deps: {}, rerenders: 0 }; this.rels.set(id, r) }
    return r
  }

  /** Every file an instance gets, by name. Throws TemplateError when a template cannot render. */
  /** Each local balancer's counters, by instance (metrics). */
  balancerStats (): Record<string, { kind: string, reloads: number, resends: number, invalid: number, runtimeChanges: number }> {
    const out: Record<string, { kind: string, reloads: number, resends: number, invalid: number, runtimeChanges: number }> = {}
    for (const [id, lb] of this.lbs) out[id] = { kind: lb.kind, ...lb.stats }
    return out
  }

  private render (inst: LocalInstance, view: DependencyView): Map<string, string> {
    const t0 = performance.now()
    try { return this.renderFiles(inst, view) } finally { this.deps.observeRender?.((performance.now() - t0) / 1000) }
  }

  private renderFiles (inst: LocalInstance, view: DependencyView): Map<string, string> {
    const files = new Map<string, string>()
    files.set('deps.json', `${JSON.stringify({ service: inst.rec.service, instance: inst.rec.id, deps: view }, null, 2)}\n`)
    if (inst.spec.balancer) {
      const lb = this.balancer(inst)
      files.set(lb.configFile, lb.render({ routes: inst.spec.balancer.routes, view, listen: { host: this.deps.bindIp, port: inst.port! }, instance: inst.rec.id, dir: this.instanceDir(inst.rec.id) }))
    }
    const ctx: TemplateContext = {
      cluster: this.deps.cluster,
      instance: { id: inst.rec.id, service: inst.rec.service, node: this.deps.nodeId, ip: this.deps.bindIp, ...(inst.port !== undefined ? { port: inst.port } : {}) },
      deps: view
    }
    for (const t of inst.spec.templates) {
      const text = t.text ?? readFileSync(resolve(inst.specDir, t.source!), 'utf8')
      files.set(t.dest, renderTemplate(t.source ?? `templates[${t.dest}]`, text, t.format, ctx))
    }
    return files
  }

  /** Write the files, except a balancer config its runtime installs itself (validated). */
  private write (dir: string, files: Map<string, string>, lb?: BalancerRuntime): void {
    mkdirSync(dir, { recursive: true })
    for (const [name, content] of files) if (!(lb?.managed && name === lb.configFile)) writeFileAtomicSync(join(dir, name), content)
  }
}

/** What is on disk under the same names (what an adopted instance was given by an earlier daemon). */
function readFiles (dir: string, like: Map<string, string>): Map<string, string> {
  const out = new Map<string, string>()
  for (const name of like.keys()) {
    const p = join(dir, name)
    out.set(name, existsSync(p) ? readFileSync(p, 'utf8') : '')
  }
  return out
}

function hashFiles (files: Map<string, string>): string {
  const h = createHash('sha256')
  for (const [name, content] of [...files].sort(([a], [b]) => a < b ? -1 : 1)) h.update(name).update('\0').update(content).update('\0')
  return h.digest('hex').slice(0, 16)
}

function hashView (view: DependencyView): string {
  return createHash('sha256').update(JSON.stringify(view)).digest('hex').slice(0, 16)
}


function summarize (view: DependencyView): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [s, list] of Object.entries(view)) out[s] = list.map(e => `${e.id}@${e.address}`)
  return out
}
