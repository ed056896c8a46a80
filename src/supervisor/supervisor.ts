// The supervisor: this node's adapter that runs its assigned service instances as child processes,
// health-checks them and reports their states. One InstanceRunner per instance does the work; this
// class owns the set, adopts survivors of a previous daemon, and turns desired sets into starts/stops.
import { EventEmitter } from 'node:events'
import { existsSync } from 'node:fs'
import type { InstanceReport } from '../core/types.js'
import { WakameError } from '../util/errors.js'
import { InstanceRunner, type RunnerContext } from './instance.js'
import { isAlive, listInstanceDirs, pidPath, readPidFile, removePidFile } from './pidfile.js'
import { DEFAULT_BACKOFF, type InstanceDef, type SupervisorOptions } from './types.js'

export type { BackoffOptions, InstanceDef, SupervisorOptions } from './types.js'

export interface SupervisorEvents {
  /** An instance's report changed; `{ state: 'Offline' }` once it is gone and left reports(). */
  change: [id: string, report: InstanceReport]
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  private readonly runners = new Map<string, InstanceRunner>()
  private readonly ctx: RunnerContext
  /** Set by stopAll()/detach(): later reconciles must not start anything. */
  private closed = false

  constructor (private readonly opts: SupervisorOptions) {
    super()
    const log = opts.logger.child({ component: 'supervisor' })
    this.ctx = {
      dataDir: opts.dataDir,
      bindIp: opts.bindIp,
      nodeId: opts.nodeId,
      log,
      backoff: { ...DEFAULT_BACKOFF, ...opts.backoff },
      onChange: id => {
        const r = this.runners.get(id)
        if (r) this.emit('change', id, r.report())
      },
      onGone: id => {
        this.runners.delete(id)
        this.emit('change', id, { state: 'Offline' })
      }
    }
  }

  /** Adopt instance processes left running by a previous daemon on this node. Call once before reconcile. */
  async adopt (): Promise<void> {
    const checks: Array<Promise<void>> = []
    await this.adoptEach(checks)
    // Wait (briefly) for their first health checks, so the first heartbeat says ONLINE.
    await Promise.race([Promise.all(checks), new Promise(resolve => setTimeout(resolve, 2_000).unref())])
  }

  private async adoptEach (checks: Array<Promise<void>>): Promise<void> {
    for (const id of listInstanceDirs(this.opts.dataDir)) {
      if (this.runners.has(id)) continue
      const pf = readPidFile(this.opts.dataDir, id)
      if (pf && isAlive(pf.pid, pf.startTime)) {
        const r = new InstanceRunner(this.ctx, id, null, pf)
        this.runners.set(id, r)
        checks.push(r.firstCheck.catch(() => {}))
        this.emit('change', id, r.report())
      } else if (pf || existsSync(pidPath(this.opts.dataDir, id))) {
        this.ctx.log.info({ instance: id, pid: pf?.pid }, 'removing stale pid.json (process gone or pid reused)')
        removePidFile(this.opts.dataDir, id)
      }
    }
  }

  /** The instances this node must run: start the missing, stop the unlisted. Idempotent. */
  reconcile (desired: Map<string, InstanceDef>): void {
    if (this.closed) return
    for (const [id, def] of desired) {
      const r = this.runners.get(id)
      if (r) {
        r.update(def)
        continue
      }
      const nr = new InstanceRunner(this.ctx, id, def)
      this.runners.set(id, nr) // before start(): its 'change' must find it
      nr.start()
    }
    for (const [id, r] of this.runners) {
      if (!desired.has(id) && r.want === 'run') void r.stop()
    }
  }

  /** Current report per instance, including those still Stopping; Offline ones are absent. */
  reports (): Record<string, InstanceReport> {
    const out: Record<string, InstanceReport> = {}
    for (const [id, r] of this.runners) out[id] = r.report()
    return out
  }

  /** The pid of an instance's process, when one runs (status, tests). */
  pid (id: string): number | undefined {
    return this.runners.get(id)?.pid
  }

  /** Reload a running instance: its reload command, or its reload signal (default SIGHUP). Returns the command's output. */
  async reload (id: string): Promise<string> {
    return await this.get(id).reload()
  }

  /** Stop then start one instance at once (on_change: restart). Resolves when it is Starting again. */
  async restart (id: string): Promise<void> {
    await this.get(id).restart()
  }

  /** Stop every instance gracefully; resolves when all are gone. */
  async stopAll (): Promise<void> {
    this.closed = true
    await Promise.all([...this.runners.values()].map(r => r.stop()))
  }

  /** Stop timers and forget the processes without touching them, for a later adopt(). */
  detach (): void {
    this.closed = true
    for (const r of this.runners.values()) r.detach()
    this.runners.clear()
  }

  private get (id: string): InstanceRunner {
    const r = this.runners.get(id)
    if (!r) throw new WakameError('INSTANCE_UNKNOWN', `instance ${id} does not run on this node: check \`wakame status\` for where it runs`)
    return r
  }
}
