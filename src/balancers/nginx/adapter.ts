// nginx under the supervisor: `daemon off` in the foreground, its prefix (`-p`) the instance
// directory, so pid file and temp files stay there. A reload is SIGHUP to the master: it starts a
// new worker generation with the new config and lets the old workers finish their requests. It is
// confirmed once a new worker exists and a new connection gets the new config id.
// Known cost (measured, see the live test): the old workers close their idle keep-alive client
// connections, so a client that reuses one at that moment gets a reset (it never reached nginx: a
// client that retries idempotent requests, as browsers do, sees nothing).
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { childPids, findProgram, procTitle } from '../exec.js'
import type { BalancerModel } from '../model.js'
import { ExternalBalancer, type BalancerContext } from '../runtime.js'
import { renderNginx } from './render.js'

const TEMP_DIRS = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']

export class NginxBalancer extends ExternalBalancer {
  readonly kind = 'nginx' as const
  readonly configFile = 'nginx.conf'
  private readonly program: string

  constructor (ctx: BalancerContext) {
    super(ctx)
    this.program = findProgram(['nginx']) ?? 'nginx'
  }

  /** `-e stderr`: errors before the config is read go to output.log, not /var/log/nginx (root only). */
  private common (config: string): string[] {
    return ['-p', `${this.ctx.dir}/`, '-c', config, '-e', 'stderr', '-g', 'daemon off;']
  }

  argv (): string[] { return [this.program, ...this.common(this.path)] }

  protected renderModel (model: BalancerModel): string { return renderNginx(model) }

  protected checkArgv (candidate: string): string[] { return [this.program, '-t', '-q', ...this.common(candidate)] }

  protected makeDirs (): void {
    for (const d of TEMP_DIRS) mkdirSync(join(this.ctx.dir, 'tmp', d), { recursive: true })
  }

  protected async generation (): Promise<Set<number>> {
    const pid = this.ctx.pid()
    return pid === undefined ? new Set() : childPids(pid)
  }

  /**
   * A new worker runs and every old one has stopped taking connections (gone, or retitled "shutting
   * down"): until then a new connection may still land on an old worker and get the old config.
   */
  protected async advanced (before: unknown): Promise<boolean> {
    const pid = this.ctx.pid()
    if (pid === undefined) return false
    const old = before as Set<number>
    const now = childPids(pid)
    if (![...now].some(c => !old.has(c))) return false
    return [...now].every(c => !old.has(c) || /shutting down/.test(procTitle(c) ?? 'shutting down'))
  }

  protected async sendReload (): Promise<void> {
    const pid = this.ctx.pid()
    if (pid === undefined) throw new Error('nginx is not running: nothing to reload')
    process.kill(pid, 'SIGHUP')
  }
}
