// Apache httpd (mod_proxy_balancer) under the supervisor: `-DFOREGROUND` with its own ServerRoot
// (the instance directory: pid file, runtime files), errors to stderr (output.log). A reload is a
// graceful restart (SIGUSR1 to the parent): it re-reads the config and replaces its children, the
// old ones finishing their requests first. Confirmed once a new child exists and a new connection
// gets the new config id.
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { childPids, findProgram, socketInodes } from '../exec.js'
import type { BalancerModel } from '../model.js'
import { ExternalBalancer, type BalancerContext } from '../runtime.js'
import { renderApache, type ApacheOptions } from './render.js'

/** Debian/Ubuntu, then RHEL/Fedora, then a source build's layout. */
const MODULE_DIRS = ['/usr/lib/apache2/modules', '/usr/lib64/httpd/modules', '/usr/lib/httpd/modules', '/usr/local/apache2/modules']

export function apacheOptions (): ApacheOptions {
  const modulesDir = MODULE_DIRS.find(d => existsSync(join(d, 'mod_proxy_balancer.so'))) ?? MODULE_DIRS[0]!
  // Started as root, httpd's children switch users; without one named they would run as uid -1.
  if (process.getuid?.() !== 0) return { modulesDir }
  let groups = ''
  try { groups = readFileSync('/etc/group', 'utf8') } catch {}
  return { modulesDir, runAs: { user: 'nobody', group: /^nogroup:/m.test(groups) ? 'nogroup' : 'nobody' } }
}

export class ApacheBalancer extends ExternalBalancer {
  readonly kind = 'apache' as const
  readonly configFile = 'apache2.conf'
  private readonly program: string
  private readonly options: ApacheOptions
  /**
   * A child of the previous generation forked while the parent was taking in the graceful restart
   * counts as new in advanced(), and serves the old config until its pipe-of-death reaches it (seen
   * once in a full test run under load: a burst's last change probed stale right after it was
   * confirmed). Several new connections in a row must get the new config: a child still accepting
   * would be hit.
   */
  protected override readonly confirmProbes = 4

  constructor (ctx: BalancerContext) {
    super(ctx)
    this.program = findProgram(['apache2', 'httpd']) ?? 'apache2'
    this.options = apacheOptions()
  }

  argv (): string[] { return [this.program, '-DFOREGROUND', '-d', this.ctx.dir, '-f', this.path] }

  protected renderModel (model: BalancerModel): string { return renderApache(model, this.options) }

  protected override templateOptions (): Record<string, unknown> { return { ...this.options } }

  protected checkArgv (candidate: string): string[] { return [this.program, '-t', '-d', this.ctx.dir, '-f', candidate] }

  /** The pid file and the balancers' shared memory live in run/. */
  protected makeDirs (): void {
    mkdirSync(join(this.ctx.dir, 'run'), { recursive: true })
  }

  protected async generation (): Promise<Set<number>> {
    const pid = this.ctx.pid()
    return pid === undefined ? new Set() : childPids(pid)
  }

  /**
   * A new child runs and no old child holds a listening socket any more: an old child told to stop
   * gracefully closes its listeners first, and until it has, a new connection may still get the
   * old config. The listeners are the sockets the parent holds.
   */
  protected async advanced (before: unknown): Promise<boolean> {
    const pid = this.ctx.pid()
    if (pid === undefined) return false
    const old = before as Set<number>
    const now = childPids(pid)
    if (![...now].some(c => !old.has(c))) return false
    const listeners = socketInodes(pid)
    return [...now].every(c => !old.has(c) || ![...socketInodes(c)].some(i => listeners.has(i)))
  }

  protected async sendReload (): Promise<void> {
    const pid = this.ctx.pid()
    if (pid === undefined) throw new Error('apache is not running: nothing to reload')
    process.kill(pid, 'SIGUSR1')
  }
}
