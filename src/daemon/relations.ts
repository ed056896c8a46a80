// Relations: each local instance learns where its dependencies are. The node renders every local
// instance's dependency view into files (deps.json; balancer.json for a builtin balancer), and when
// the rendered content changes, runs the service's on_change action. The balancer is one consumer
// of this mechanism, not a special case: its on_change is always a reload.
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { renderBuiltinConfig } from '../balancers/builtin/render.js'
import type { LocalInstance } from '../core/local-plan.js'
import type { DependencyView } from '../core/views.js'
import { writeFileAtomicSync } from '../store/atomic.js'
import type { Supervisor } from '../supervisor/supervisor.js'
import type { Logger } from '../util/log.js'

export interface RelationsDeps {
  dataDir: string
  supervisor: Supervisor
  logger: Logger
  /** argv that runs this program (`wakame`), for the builtin balancer's process. */
  selfArgv: string[]
  bindIp: string
}

interface Rendered {
  deps: string
  balancer?: string
}

export class Relations {
  private readonly rendered = new Map<string, Rendered>()
  private readonly views = new Map<string, number>()

  constructor (private readonly deps: RelationsDeps) {}

  instanceDir (id: string): string {
    return join(this.deps.dataDir, 'instances', id)
  }

  /** Env and argv for an instance about to start; writes its files first, so it reads them at start. */
  prepare (inst: LocalInstance, view: DependencyView, version: number): { env: Record<string, string>, argv?: string[] } {
    const dir = this.instanceDir(inst.rec.id)
    mkdirSync(dir, { recursive: true })
    this.write(inst, view, version, false)
    this.views.set(inst.rec.id, version)
    const env: Record<string, string> = { WAKAME_DEPS_FILE: join(dir, 'deps.json') }
    for (const [service, endpoints] of Object.entries(view)) {
      env[`WAKAME_DEP_${service.toUpperCase().replace(/-/g, '_')}`] = endpoints.map(e => hostPort(e.ip, e.port)).join(',')
    }
    let argv: string[] | undefined
    if (inst.spec.balancer) {
      argv = [...this.deps.selfArgv, 'balancer', '--config', join(dir, 'balancer.json'), '--listen', hostPort(this.deps.bindIp, inst.port!)]
    }
    return { env, argv }
  }

  /**
   * Re-render a running instance's view. When the content differs from what it was given, the
   * files are replaced atomically and its on_change action runs. Returns whether anything changed.
   */
  async update (inst: LocalInstance, view: DependencyView, version: number): Promise<boolean> {
    const changed = this.write(inst, view, version, true)
    if (changed) {
      const action = inst.spec.balancer ? 'reload' : inst.spec.on_change
      this.deps.logger.info({ instance: inst.rec.id, action, view: summarize(view) }, 'dependencies changed')
      try {
        if (action === 'reload') await this.deps.supervisor.reload(inst.rec.id)
        else if (action === 'restart') await this.deps.supervisor.restart(inst.rec.id)
      } catch (err) {
        this.deps.logger.warn({ instance: inst.rec.id, err: String(err) }, 'on_change action failed')
      }
    }
    this.views.set(inst.rec.id, version)
    return changed
  }

  /** Document version of the view an instance was last given (reported in heartbeats). */
  viewVersion (id: string): number | undefined {
    return this.views.get(id)
  }

  forget (id: string): void {
    this.rendered.delete(id)
    this.views.delete(id)
  }

  private write (inst: LocalInstance, view: DependencyView, version: number, onlyIfChanged: boolean): boolean {
    const id = inst.rec.id
    const dir = this.instanceDir(id)
    // The version is informative only: comparing without it keeps a new document version that
    // changes nothing here from causing a reload.
    const depsBody = JSON.stringify(view)
    const balancer = inst.spec.balancer ? renderBuiltinConfig(inst.spec.balancer.routes, view) : undefined
    // After a daemon restart, what the (adopted) instance was given is what is on disk.
    const prev = this.rendered.get(id) ?? readRendered(dir)
    const changed = !prev || prev.deps !== depsBody || prev.balancer !== balancer
    if (onlyIfChanged && !changed) return false
    mkdirSync(dir, { recursive: true })
    writeFileAtomicSync(join(dir, 'deps.json'), `${JSON.stringify({ version, service: inst.rec.service, instance: id, deps: view }, null, 2)}\n`)
    if (balancer !== undefined) writeFileAtomicSync(join(dir, 'balancer.json'), balancer)
    this.rendered.set(id, { deps: depsBody, balancer })
    return changed
  }
}

function readRendered (dir: string): Rendered | undefined {
  try {
    const deps = JSON.stringify(JSON.parse(readFileSync(join(dir, 'deps.json'), 'utf8')).deps)
    const bf = join(dir, 'balancer.json')
    return { deps, balancer: existsSync(bf) ? readFileSync(bf, 'utf8') : undefined }
  } catch {
    return undefined
  }
}

function hostPort (ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
}

function summarize (view: DependencyView): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [s, list] of Object.entries(view)) out[s] = list.map(e => `${e.id}@${hostPort(e.ip, e.port)}`)
  return out
}
