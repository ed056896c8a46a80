// What every balancer kind offers relations, and the shared life of an external server (HAProxy,
// nginx, Apache): render → validate a candidate file → install it atomically → reload → confirm the
// reload took (re-sending a lost one) — one change at a time, the newest one winning. A candidate
// that fails validation is never installed: the last good config stays live and the balancer is
// degraded (BalancerDegradedError), not failed.
import { existsSync, mkdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import type { BALANCER_KINDS } from '../spec/schema.js'
import { writeFileAtomicSync } from '../store/atomic.js'
import { WakameError } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import { probeConfigId, runCheck, runCheckSync, sleep, type CheckResult } from './exec.js'
import { buildModel, type BalancerModel, type RenderInput } from './model.js'
import { renderBalancerTemplate } from './template.js'

export type BalancerKind = typeof BALANCER_KINDS[number]

export interface BalancerContext {
  instance: string
  /** The instance directory (config, pid, sockets, temp files, logs). */
  dir: string
  /** Where the server listens (the node's address and the lb's port). */
  listen: { host: string, port: number }
  logger: Logger
  /** Pid of the server's main process, as the supervisor runs it (nginx and apache are signalled). */
  pid: () => number | undefined
  /** The supervisor's reload (the builtin proxy's SIGHUP). */
  reload: () => Promise<string>
  /** argv that runs wakame itself (the builtin proxy). */
  selfArgv: string[]
  /** The spec's own template for this kind; read at each render (as relations reads its templates). */
  template?: { name: string, read: () => string }
  /** A reload not confirmed within this long is sent again. @default 3_000 */
  confirmTimeoutMs?: number
  /** Reloads sent for one change before giving up. @default 3 */
  reloadAttempts?: number
  /**
   * Changes within this window after the first one are applied together. 0 under the daemon, which
   * already coalesces its renders (`render_coalesce_ms`). @default 0
   */
  coalesceMs?: number
  /** HAProxy: membership changes through the runtime API (no reload). @default true */
  runtimeApi?: boolean
}

export interface BalancerStats {
  /** Config checks run, and how many refused the candidate. */
  validations: number
  invalid: number
  /** Reloads confirmed, and reloads sent again because the first was not confirmed in time. */
  reloads: number
  resends: number
  /** HAProxy: changes applied through the runtime API alone. */
  runtimeChanges: number
  /** The last change: ms from apply() starting it to live (runtime API done, or reload confirmed). */
  lastLiveMs?: number
}

/** The interface relations uses, one object per balancer instance. */
export interface BalancerRuntime {
  readonly kind: BalancerKind
  /** Name of the config file in the instance directory. */
  readonly configFile: string
  /** True when apply() installs the config file itself (validated); false: relations writes it (builtin). */
  readonly managed: boolean
  readonly stats: BalancerStats
  /** argv that runs the server in the foreground under the supervisor. */
  argv (): string[]
  /** Config text for this membership. Pure and stable. */
  render (input: RenderInput): string
  /** Before the server starts: its directories, and the config installed (validated when one is already there). */
  prepare (text: string): void
  /** The server runs: make `text` live. Resolves with a short account; rejects with BalancerDegradedError or another error. */
  apply (text: string): Promise<string>
}

/** The candidate config was refused; the previous one stays installed and live. */
export class BalancerDegradedError extends WakameError {
  constructor (message: string) { super('BALANCER_DEGRADED', message) }
}

/** A reload was sent `attempts` times and never confirmed. */
export class BalancerReloadError extends WakameError {
  constructor (message: string) { super('BALANCER_RELOAD_UNCONFIRMED', message) }
}

const CHECK_TIMEOUT_MS = 10_000
const CONFIRM_POLL_MS = 5

export abstract class ExternalBalancer implements BalancerRuntime {
  abstract readonly kind: BalancerKind
  abstract readonly configFile: string
  readonly managed = true
  readonly stats: BalancerStats = { validations: 0, invalid: 0, reloads: 0, resends: 0, runtimeChanges: 0 }
  /** Text the server is known to serve (undefined: unknown, e.g. a reload that was never confirmed). */
  protected live: string | undefined
  /** Model of `live`, when it was rendered here. */
  protected liveModel: BalancerModel | undefined
  /** Models of recent renders, by text (the HAProxy runtime path diffs them). */
  protected readonly models = new Map<string, BalancerModel>()
  protected readonly log: Logger
  /** Fresh connections in a row that must get the new config id before a reload counts as live. */
  protected readonly confirmProbes: number = 1
  private chain: Promise<unknown> = Promise.resolve()
  private latest: string | undefined
  private batch: Promise<string> | undefined

  constructor (protected readonly ctx: BalancerContext) {
    this.log = ctx.logger.child({ balancer: this.constructor.name, instance: ctx.instance })
  }

  abstract argv (): string[]
  /** The kind's own renderer. */
  protected abstract renderModel (model: BalancerModel): string
  /** Extra template context (apache: modules directory). */
  protected templateOptions (): Record<string, unknown> { return {} }
  /** argv that checks a candidate config file. */
  protected abstract checkArgv (candidate: string): string[]
  /** Directories and static files the server needs before it starts. */
  protected abstract makeDirs (): void
  /** Something that changes once a reload took (a counter, a worker generation). */
  protected abstract generation (): Promise<unknown>
  protected abstract advanced (before: unknown): Promise<boolean>
  protected abstract sendReload (): Promise<void>
  /** A cheaper way to make `text` live than a reload (HAProxy's runtime API); undefined: reload. */
  protected async tryWithoutReload (_text: string, _model: BalancerModel | undefined): Promise<string | undefined> { return undefined }

  get path (): string { return join(this.ctx.dir, this.configFile) }

  render (input: RenderInput): string {
    const model = buildModel(input)
    const t = this.ctx.template
    const text = t ? renderBalancerTemplate(t.name, t.read(), model, this.templateOptions()) : this.renderModel(model)
    if (this.models.size >= 8) this.models.delete(this.models.keys().next().value!)
    this.models.set(text, model)
    return text
  }

  prepare (text: string): void {
    mkdirSync(this.ctx.dir, { recursive: true })
    this.makeDirs()
    const current = readIfExists(this.path)
    if (current !== text) {
      const candidate = this.writeCandidate(text)
      const check = runCheckSync(this.checkArgv(candidate), CHECK_TIMEOUT_MS)
      this.stats.validations++
      if (check.ok || current === undefined) {
        // With no file at all, the server's own start error is the clearest report of a bad one.
        renameSync(candidate, this.path)
      } else {
        this.stats.invalid++
        unlinkQuiet(candidate)
        this.log.error({ output: check.output }, 'new config refused by the check: the server starts from the last good one')
      }
    }
    this.live = readIfExists(this.path)
    this.liveModel = this.live === undefined ? undefined : this.models.get(this.live)
  }

  /** Coalesce (optional window), serialize, and apply the newest text submitted. */
  apply (text: string): Promise<string> {
    this.latest = text
    const window = this.ctx.coalesceMs ?? 0
    if (window <= 0) return this.enqueue()
    this.batch ??= sleep(window).then(() => { this.batch = undefined; return this.enqueue() })
    return this.batch
  }

  private enqueue (): Promise<string> {
    const run = this.chain.then(() => this.applyNow(this.latest!))
    this.chain = run.catch(() => {})
    return run
  }

  /** When the change being applied started (performance.now). */
  protected started = 0

  private async applyNow (text: string): Promise<string> {
    this.started = performance.now()
    const onDisk = readIfExists(this.path)
    // Installed and live (or installed by an earlier daemon, whose reload we cannot doubt): nothing to do.
    const model = this.models.get(text)
    if (onDisk === text && (this.live === text || this.live === undefined)) { this.setLive(text, model); return 'unchanged' }
    const fast = this.live !== undefined && onDisk === this.live ? await this.tryWithoutReload(text, model) : undefined
    const check = await this.validate(text)
    if (!check.ok) {
      throw new BalancerDegradedError(`the new ${this.kind} config was refused by its check; the last good one stays live: ${check.output}`)
    }
    renameSync(join(this.ctx.dir, `${this.configFile}.candidate`), this.path)
    if (fast !== undefined) { this.setLive(text, model); return fast }
    const attempt = await this.reloadConfirmed(model?.configId)
    this.setLive(text, model)
    return `reloaded${attempt > 1 ? ` (sent ${attempt} times)` : ''}`
  }

  private setLive (text: string, model: BalancerModel | undefined): void {
    this.live = text
    this.liveModel = model
  }

  private writeCandidate (text: string): string {
    const candidate = join(this.ctx.dir, `${this.configFile}.candidate`)
    writeFileAtomicSync(candidate, text)
    return candidate
  }

  private async validate (text: string): Promise<CheckResult> {
    const candidate = this.writeCandidate(text)
    const check = await runCheck(this.checkArgv(candidate), CHECK_TIMEOUT_MS)
    this.stats.validations++
    if (!check.ok) {
      this.stats.invalid++
      unlinkQuiet(candidate)
      this.log.error({ output: check.output }, 'new config refused by the check: the last good one stays live (degraded)')
    }
    return check
  }

  /** Send a reload and wait until it took; send it again when it did not within the confirm timeout. */
  private async reloadConfirmed (configId: string | undefined): Promise<number> {
    const attempts = this.ctx.reloadAttempts ?? 3
    const timeoutMs = this.ctx.confirmTimeoutMs ?? 3_000
    // A user template may not serve the config id: then the generation alone confirms.
    const wantId = configId !== undefined && this.liveHasMarker(configId) ? configId : undefined
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const before = await this.generation()
      const t0 = performance.now()
      await this.sendReload()
      const deadline = Date.now() + timeoutMs
      let advanced = false
      while (Date.now() < deadline) {
        advanced ||= await this.advanced(before)
        if (advanced && (wantId === undefined || await this.serves(wantId))) {
          this.stats.reloads++
          this.stats.lastLiveMs = performance.now() - this.started
          this.log.info({ attempt, ms: Math.round(performance.now() - t0) }, 'balancer reloaded')
          return attempt
        }
        await sleep(CONFIRM_POLL_MS)
      }
      this.stats.resends++
      this.log.warn({ attempt, timeoutMs, advanced }, 'reload not confirmed in time: sending it again')
    }
    throw new BalancerReloadError(`${this.kind} did not confirm a reload after ${attempts} attempts of ${timeoutMs} ms; see its output.log`)
  }

  /** `confirmProbes` new connections in a row get the config `id`. */
  private async serves (id: string): Promise<boolean> {
    for (let i = 0; i < this.confirmProbes; i++) {
      if (await probeConfigId(this.ctx.listen) !== id) return false
    }
    return true
  }

  private liveHasMarker (configId: string): boolean {
    return readIfExists(this.path)?.includes(configId) ?? false
  }
}

export function readIfExists (path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined
}

function unlinkQuiet (path: string): void {
  try { unlinkSync(path) } catch {}
}
