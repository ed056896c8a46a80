// One instance's life on this node: start, health-check, fail and restart with backoff, stop.
// Every async continuation re-checks the runner's state, because stop/restart/reconcile can
// arrive at any moment; the TimerGroup's generation invalidates timers and checks of a previous run.
import { join } from 'node:path'
import type { InstanceReport, InstanceState } from '../core/types.js'
import { WakameError } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import { Backoff, TimerGroup } from './backoff.js'
import { checkKind, runCheck } from './health.js'
import { instanceDir, procStat, removePidFile, writePidFile, type PidFile } from './pidfile.js'
import { AdoptedHandle, planLaunch, runReloadCommand, spawnInstance, tailLines, type ExitInfo, type LaunchPlan, type ProcHandle } from './process.js'
import { DEFAULT_RESTART, DEFAULT_STOP, SETTLE_MS, STARTING_CHECK_MS, type BackoffOptions, type InstanceDef } from './types.js'

export interface RunnerContext {
  dataDir: string
  bindIp: string
  nodeId: string
  log: Logger
  backoff: Required<BackoffOptions>
  /** The runner's report changed. */
  onChange (id: string): void
  /** The runner is gone (Offline) and must be forgotten. */
  onGone (id: string): void
}

/** Poll interval for an adopted process before its spec (and health interval) is known. */
const ADOPTED_POLL_MS = 1_000

export class InstanceRunner {
  state: InstanceState
  error: string | undefined
  /** The autoscaling metric its last healthy http check answered (see health.ts), if any. */
  metric: number | undefined
  /** 'gone' once it left the desired set: it is Stopping and then dropped. */
  want: 'run' | 'gone' = 'run'
  private proc: ProcHandle | null = null
  private plan: LaunchPlan | null = null
  private terminating: Promise<void> | null = null
  private readonly run = new TimerGroup()
  private backoffTimer: NodeJS.Timeout | undefined
  private readonly backoff: Backoff
  private lastCheckError: string | undefined
  private consecutiveFailures = 0
  /** Failures since the instance was last stable (ONLINE for restart.stable_ms): the crash-loop count. */
  private failures = 0
  /** The crash loop reached restart.max_failures: no more restarts until the leader moves it. */
  private gaveUp = false
  private dropped = false
  private detached = false
  private readonly gone: Promise<void>
  private resolveGone!: () => void
  private readonly log: Logger

  /** `def` is null for a process adopted from a previous daemon until reconcile names it. */
  constructor (private readonly ctx: RunnerContext, readonly id: string, private def: InstanceDef | null, private readonly adoptedFrom: PidFile | null = null) {
    // A new instance is Offline until start(); an adopted one is Starting until its health is known.
    this.state = adoptedFrom ? 'Starting' : 'Offline'
    this.backoff = new Backoff(ctx.backoff)
    this.log = ctx.log.child({ instance: id })
    this.gone = new Promise(resolve => { this.resolveGone = resolve })
    if (adoptedFrom) {
      const proc = new AdoptedHandle(adoptedFrom.pid, adoptedFrom.startTime, ADOPTED_POLL_MS)
      this.watch(proc)
      this.log.info({ pid: adoptedFrom.pid, state: this.state }, 'adopted running instance')
      this.firstCheck = this.checkAdopted(adoptedFrom)
    }
  }

  /** Resolves once an adopted instance's first health check is known (it is then ONLINE or still Starting). */
  firstCheck: Promise<void> = Promise.resolve()

  /**
   * Check an adopted instance right away, before the daemon tells anyone about it: reported as
   * Starting, a serving balancer or db would drop out of every dependent's view after a daemon
   * restart (case 02).
   */
  private async checkAdopted (pf: PidFile): Promise<void> {
    const h = pf.health
    const kind = checkKind(h)
    if (kind === 'command') return // needs the spec's environment: the regular checks decide
    if (!h || !kind) { this.online(); return }
    if (pf.port === undefined) return
    const err = await runCheck(h, { host: this.ctx.bindIp, port: pf.port, cwd: '/', env: {} })
    if (err === null && this.state === 'Starting') this.online()
  }

  report (): InstanceReport {
    const r: InstanceReport = { state: this.state }
    const port = this.def?.port ?? this.adoptedFrom?.port
    if (port !== undefined) r.port = port
    if (this.error !== undefined) r.error = this.error
    // Only a serving instance's metric means anything (it goes out with the next heartbeat).
    if (this.metric !== undefined && this.state === 'ONLINE') r.metric = this.metric
    if (this.failures > 0) r.failures = this.failures
    if (this.gaveUp) r.gaveUp = true
    return r
  }

  get pid (): number | undefined { return this.proc?.pid }

  start (): void {
    if (this.proc || this.terminating || !this.def || this.dropped || this.detached) return
    this.clearBackoff()
    this.gaveUp = false
    let plan: LaunchPlan
    let proc: ProcHandle
    try {
      plan = planLaunch(this.def, this.ctx)
      proc = spawnInstance(plan, instanceDir(this.ctx.dataDir, this.id))
    } catch (err) {
      return this.fail(`could not start: ${(err as Error).message}`)
    }
    this.plan = plan
    this.lastCheckError = undefined
    this.watch(proc)
    if (proc.pid !== undefined) {
      const pf: PidFile = { pid: proc.pid, startTime: procStartTime(proc.pid), argv: plan.argv, port: this.def.port, stop: this.def.spec.stop, ...(this.def.spec.health ? { health: this.def.spec.health } : {}) }
      try {
        writePidFile(this.ctx.dataDir, this.id, pf)
      } catch (err) {
        this.log.warn({ err }, 'could not write pid.json: a daemon restart will not adopt this instance')
      }
    }
    this.log.info({ pid: proc.pid, argv: plan.argv, cwd: plan.cwd }, 'spawned')
    this.setState('Starting', undefined)
    this.monitor()
  }

  /** Apply a (possibly changed) definition from reconcile. */
  update (def: InstanceDef): void {
    if (this.dropped) return
    if (this.want === 'gone') {
      // Wanted again while stopping: let the stop finish, then settle() starts it afresh.
      this.want = 'run'
      this.def = def
      return this.settle()
    }
    if (!this.def) return this.attach(def)
    let plan: LaunchPlan
    try {
      plan = planLaunch(def, this.ctx)
    } catch {
      this.def = def
      return
    }
    if (this.plan && this.proc && plan.fingerprint !== this.plan.fingerprint) {
      this.log.info('definition changed (argv, cwd, port or env): restarting')
      this.failures = 0
      void this.restart(def)
      return
    }
    if (this.gaveUp && this.plan && plan.fingerprint !== this.plan.fingerprint) {
      // A crash loop given up on, and a new definition (a fixed spec): a fresh start, a fresh count.
      this.log.info('definition changed after a crash loop: starting again')
      this.failures = 0
      this.def = def
      this.start()
      return
    }
    // Other changes: stop and reload settings apply at once; health settings at the next (re)start.
    this.def = def
  }

  /** Gracefully stop, then start again at once (no backoff). Resolves when it is Starting. */
  async restart (def?: InstanceDef): Promise<void> {
    if (def) this.def = def
    if (!this.def) throw new WakameError('INSTANCE_UNKNOWN', `instance ${this.id} has no definition yet: call reconcile first`)
    if (this.want === 'gone' || this.dropped) throw new WakameError('INSTANCE_STOPPING', `instance ${this.id} is being stopped: it is no longer assigned to this node`)
    this.clearBackoff()
    this.stopMonitoring()
    if (this.proc || this.terminating) {
      this.setState('Stopping', undefined)
      await this.terminate()
    }
    // Not settle(): a FAIL instance in backoff must start now, not after another backoff.
    // (The cast undoes TS's narrowing: stop() may have run during the await.)
    if ((this.want as InstanceRunner['want']) === 'gone') return this.settle()
    this.start()
  }

  /** Reload: the spec's reload command (run next to the instance, with its env), else its signal. */
  async reload (): Promise<string> {
    const r = this.def?.spec.reload
    if (!this.proc || this.terminating) {
      throw new WakameError('INSTANCE_NOT_RUNNING', `instance ${this.id} is not running (${this.state}): nothing to reload`)
    }
    if (r?.command && this.plan) {
      const out = await runReloadCommand(r.command, this.plan, r.timeout_ms)
      this.log.info({ command: r.command }, 'reload command succeeded')
      return out
    }
    const signal = r?.signal ?? 'SIGHUP'
    if (!this.proc.kill(signal)) throw new WakameError('INSTANCE_NOT_RUNNING', `instance ${this.id} is not running (${this.state}): nothing to reload`)
    this.log.info({ signal }, 'reload signal sent')
    return ''
  }

  /** Leave the desired set: stop gracefully (or cancel a pending restart). Resolves once dropped. */
  stop (): Promise<void> {
    if (this.dropped) return this.gone
    this.want = 'gone'
    this.clearBackoff()
    this.stopMonitoring()
    if (this.proc || this.terminating) {
      this.setState('Stopping', this.state === 'FAIL' ? this.error : undefined)
      void this.terminate().then(() => this.settle())
    } else {
      this.settle()
    }
    return this.gone
  }

  /** Forget everything without touching the process (daemon exit; a later adopt picks it up). */
  detach (): void {
    this.detached = true
    this.clearBackoff()
    this.stopMonitoring()
    this.proc?.detach()
  }

  private attach (def: InstanceDef): void {
    this.def = def
    const from = this.adoptedFrom
    if (!this.proc || !from) return this.settle() // it died before reconcile: FAIL → backoff
    let plan: LaunchPlan
    try {
      plan = planLaunch(def, this.ctx)
    } catch (err) {
      return this.fail((err as Error).message)
    }
    // Only argv and port are compared: env carries dependency addresses that a freshly restarted
    // daemon may not have settled yet, and restarting a serving balancer for that would drop traffic.
    if (JSON.stringify(plan.argv) !== JSON.stringify(from.argv) || def.port !== from.port) {
      this.log.info({ was: from.argv, now: plan.argv }, 'adopted process runs another command or port: restarting')
      void this.restart(def)
      return
    }
    this.plan = plan
    this.monitor()
  }

  private watch (proc: ProcHandle): void {
    this.proc = proc
    void proc.exited.then(info => this.onExit(proc, info))
  }

  private onExit (proc: ProcHandle, info: ExitInfo): void {
    if (this.detached || this.proc !== proc) return
    this.proc = null
    removePidFile(this.ctx.dataDir, this.id)
    this.stopMonitoring()
    this.log.info({ pid: proc.pid, code: info.code, signal: info.signal }, 'process exited')
    if (this.terminating) return // we asked for it; terminate()'s caller decides what comes next
    const tail = tailLines(join(instanceDir(this.ctx.dataDir, this.id), 'output.log'), 3).join(' | ')
    const what = info.error ?? `exited with code ${info.code} / signal ${info.signal}`
    this.fail(tail ? `${what}: ${tail}` : what)
  }

  /** Signal with the stop signal, SIGKILL after the stop timeout; resolves when the process is gone. */
  private terminate (): Promise<void> {
    if (this.terminating) return this.terminating
    const proc = this.proc
    if (!proc) return Promise.resolve()
    const { signal, timeout_ms: timeoutMs } = this.def?.spec.stop ?? this.adoptedFrom?.stop ?? DEFAULT_STOP
    this.terminating = (async () => {
      proc.kill(signal)
      const killer = setTimeout(() => {
        this.log.warn({ pid: proc.pid, timeoutMs }, `still running ${timeoutMs} ms after ${signal}: SIGKILL`)
        proc.kill('SIGKILL')
      }, timeoutMs)
      await proc.exited
      clearTimeout(killer)
      this.terminating = null
    })()
    return this.terminating
  }

  /** Decide what follows once no process runs: drop, wait for a definition, back off, or start. */
  private settle (): void {
    if (this.dropped || this.detached || this.proc || this.terminating) return
    if (this.want === 'gone') {
      this.dropped = true
      this.log.info('stopped')
      this.ctx.onGone(this.id)
      this.resolveGone()
      return
    }
    if (!this.def) return
    if (this.state !== 'FAIL') return this.start()
    if (this.backoffTimer || this.gaveUp) return
    const max = this.def.spec.restart?.max_failures ?? DEFAULT_RESTART.max_failures
    if (this.failures >= max) {
      // Restarting forever hides the problem and burns the node: stay FAIL with the last error,
      // and let the leader decide whether another node does better.
      this.gaveUp = true
      this.log.warn({ failures: this.failures, error: this.error }, 'crash loop: not restarting')
      this.setState('FAIL', `crash loop: gave up after ${this.failures} failures; last: ${this.error ?? 'unknown error'}`)
      this.ctx.onChange(this.id) // gaveUp changed even if the message did not
      return
    }
    const delay = this.backoff.next(Date.now())
    this.log.info({ delayMs: delay }, 'restarting after backoff')
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined
      this.start()
    }, delay)
  }

  private fail (msg: string): void {
    this.stopMonitoring()
    if (this.want === 'run') this.failures++
    this.setState('FAIL', msg)
    if (this.proc) void this.terminate().then(() => this.settle())
    else this.settle()
  }

  private monitor (): void {
    this.stopMonitoring()
    const def = this.def
    if (!def || !this.proc) return
    const h = def.spec.health
    if (this.proc instanceof AdoptedHandle) this.proc.setPollMs(h?.interval_ms ?? ADOPTED_POLL_MS)
    if (!h || !checkKind(h)) {
      this.run.after(SETTLE_MS, () => this.online())
      return
    }
    this.run.after(h.start_timeout_ms, () => {
      if (this.state === 'Starting') this.fail(`not healthy within ${h.start_timeout_ms} ms: ${this.lastCheckError ?? 'no check finished'}`)
    })
    const target = { host: this.ctx.bindIp, port: def.port, cwd: this.plan?.cwd ?? def.specDir, env: this.plan?.env ?? {} }
    // While Starting, check often: the sooner an instance is seen ONLINE, the sooner it serves
    // (a moved db is back for its apps ~interval sooner). Once ONLINE, the spec's interval.
    const loop = (): void => this.run.after(this.state === 'Starting' ? Math.min(h.interval_ms, STARTING_CHECK_MS) : h.interval_ms, () => {
      const gen = this.run.gen
      void runCheck(h, target, m => { if (gen === this.run.gen) this.metric = m }).then(err => {
        if (gen !== this.run.gen) return // stopped, failed or restarted meanwhile
        this.onCheck(err, h.failures)
        if (gen === this.run.gen) loop()
      })
    })
    loop()
  }

  private onCheck (err: string | null, failures: number): void {
    if (err === null) {
      this.consecutiveFailures = 0
      if (this.state === 'Starting') this.online()
      return
    }
    this.lastCheckError = err
    if (this.state !== 'ONLINE') return
    this.consecutiveFailures++
    if (this.consecutiveFailures >= failures) this.fail(`${this.consecutiveFailures} health checks failed in a row: ${err}`)
  }

  private online (): void {
    if (this.state !== 'Starting') return
    this.backoff.online(Date.now())
    this.consecutiveFailures = 0
    this.setState('ONLINE', undefined)
    // ONLINE for stable_ms: whatever failed before is not a crash loop any more.
    const stableMs = this.def?.spec.restart?.stable_ms ?? DEFAULT_RESTART.stable_ms
    if (this.failures > 0) {
      this.run.after(stableMs, () => {
        if (this.state !== 'ONLINE') return
        this.failures = 0
        this.ctx.onChange(this.id)
      })
    }
  }

  private setState (state: InstanceState, error: string | undefined): void {
    if (state === this.state && error === this.error) return
    if (state !== 'ONLINE') this.metric = undefined
    this.state = state
    this.error = error
    this.log.info({ state, error, pid: this.proc?.pid }, `instance ${state}`)
    this.ctx.onChange(this.id)
  }

  private stopMonitoring (): void {
    this.run.clear()
  }

  private clearBackoff (): void {
    clearTimeout(this.backoffTimer)
    this.backoffTimer = undefined
  }
}

/** 0 when /proc is unavailable: adoption then falls back to kill(pid, 0) alone. */
function procStartTime (pid: number): number {
  return procStat(pid)?.startTime ?? 0
}
