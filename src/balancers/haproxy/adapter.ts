// HAProxy under the supervisor: master-worker in the foreground (`-W -db`) with a master socket
// (`-S`). A reload is the master CLI's `reload`, confirmed by the master's reload counter before
// anything else is sent: HAProxy 2.6 drops a reload that arrives while one is in progress (measured:
// the final config live in 2 of 10 bursts without this, 10 of 10 with it).
// A change of members only goes through the runtime API (`add server`, `set server ... state`,
// `del server` on the current worker): live in milliseconds, no reload; the file is rewritten
// (validated) for the next reload or restart, and the runtime state is read back to check it agrees.
import { join } from 'node:path'
import { findProgram, sleep } from '../exec.js'
import type { BalancerModel } from '../model.js'
import { BalancerDegradedError, ExternalBalancer, type BalancerContext } from '../runtime.js'
import { masterCommand, MasterSocketError, serversState, showProc, type ProcInfo } from './master.js'
import { answerErrors, planMembers } from './plan.js'
import { renderHaproxy } from './render.js'

/** sun_path is 108 bytes on Linux; HAProxy keeps a few for its temporary name while binding. */
const MAX_SOCKET_PATH = 100

export class HaproxyBalancer extends ExternalBalancer {
  readonly kind = 'haproxy' as const
  readonly configFile = 'haproxy.cfg'
  private readonly program: string
  /** Servers set to maintenance whose `del server` was refused (connections still open): retried later. */
  private zombies = new Map<string, Set<string>>()

  constructor (ctx: BalancerContext) {
    super(ctx)
    this.program = findProgram(['haproxy']) ?? 'haproxy'
  }

  get socket (): string { return join(this.ctx.dir, 'master.sock') }

  argv (): string[] {
    return [this.program, '-W', '-db', '-S', this.socket, '-f', this.path]
  }

  protected renderModel (model: BalancerModel): string { return renderHaproxy(model) }

  protected checkArgv (candidate: string): string[] { return [this.program, '-c', '-f', candidate] }

  protected makeDirs (): void {
    if (Buffer.byteLength(this.socket) > MAX_SOCKET_PATH) {
      throw new BalancerDegradedError(`the HAProxy master socket path ${this.socket} is longer than ${MAX_SOCKET_PATH} bytes: use a shorter data_dir`)
    }
  }

  /**
   * The master's `show proc`, waiting up to `waitMs` for its socket: right after a start (and while
   * it re-executes for a reload) the master is not listening yet.
   */
  private async proc (waitMs: number): Promise<ProcInfo | undefined> {
    const deadline = Date.now() + waitMs
    for (;;) {
      try { return await showProc(this.socket) } catch (err) {
        if (Date.now() >= deadline) { this.log.debug({ err: (err as Error).message }, 'HAProxy master socket not answering'); return undefined }
      }
      await sleep(10)
    }
  }

  protected async generation (): Promise<ProcInfo | undefined> {
    return await this.proc(2_000)
  }

  protected async advanced (before: unknown): Promise<boolean> {
    const b = before as ProcInfo | undefined
    let now: ProcInfo
    try { now = await showProc(this.socket) } catch { return false } // re-executing: the socket is back shortly
    if (b && now.failed > b.failed) {
      throw new BalancerDegradedError('HAProxy could not load the new config at reload; the old workers keep serving the last good one (see output.log)')
    }
    return b ? now.reloads > b.reloads : now.workers.length > 0
  }

  protected async sendReload (): Promise<void> {
    this.zombies.clear() // a reload rebuilds every backend from the file
    try {
      await masterCommand(this.socket, 'reload')
    } catch (err) {
      // Not delivered: the confirmation times out and the reload is sent again.
      this.log.warn({ err: (err as Error).message }, 'could not send reload to the HAProxy master')
    }
  }

  protected override async tryWithoutReload (_text: string, model: BalancerModel | undefined): Promise<string | undefined> {
    const live = this.liveModel
    if (this.ctx.runtimeApi === false || this.ctx.template || !model || !live) return undefined
    const plan = planMembers(live, model, this.zombies)
    if (!plan) return undefined
    const t0 = performance.now()
    try {
      // One request for the whole change: each master CLI round trip costs a few ms on a busy host.
      const errors = answerErrors(await this.send(plan.live))
      if (errors.length > 0) throw new MasterSocketError(errors.join('; '))
      const liveMs = performance.now() - t0
      this.stats.lastLiveMs = performance.now() - this.started
      if (!await this.agrees(model)) {
        this.log.warn('runtime state does not match the new config: reloading instead')
        return undefined
      }
      this.zombies = plan.zombies
      if (plan.cleanup.length > 0) await this.cleanup(plan.cleanup)
      this.stats.runtimeChanges++
      this.log.info({ added: plan.added, removed: plan.removed, ms: Math.round(liveMs) }, 'balancer members changed through the runtime API')
      return `runtime API: ${plan.added} added, ${plan.removed} removed`
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'runtime API change failed: reloading instead')
      return undefined
    }
  }

  /** Send commands in one master CLI request, waiting for the socket if the master is (re)starting. */
  private async send (commands: string[]): Promise<string> {
    const line = commands.join('; ')
    try {
      return await masterCommand(this.socket, line)
    } catch {
      if (!await this.proc(2_000)) throw new MasterSocketError('the HAProxy master socket does not answer')
      return await masterCommand(this.socket, line)
    }
  }

  /** Delete servers left in maintenance; one still holding connections is refused and stays for later. */
  private async cleanup (commands: string[]): Promise<void> {
    for (const c of commands) {
      const out = await masterCommand(this.socket, c).catch(() => '')
      if (/Server deleted/.test(out)) {
        const [be, id] = c.slice(c.lastIndexOf(' ') + 1).split('/') as [string, string]
        this.zombies.get(be)?.delete(id)
      }
    }
  }

  /** The current worker serves exactly the model's members (servers in maintenance do not count). */
  async agrees (model: BalancerModel): Promise<boolean> {
    const state = await serversState(this.socket)
    for (const pool of model.pools) {
      const serving = state.filter(s => s.backend === pool.name && s.admin === 0).map(s => `${s.name} ${s.addr} ${s.port}`).sort()
      const want = pool.members.map(m => `${m.id} ${m.host} ${m.port}`).sort()
      if (JSON.stringify(serving) !== JSON.stringify(want)) return false
    }
    return true
  }
}
