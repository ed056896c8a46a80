// The "init" of a local VM (`wakame vm-init -- <daemon argv...>`): what systemd is on an EC2 node.
// The local provider starts it as the leader of the VM's process group; it runs the daemon as a
// plain child (same group, so killing the group still takes down the whole VM), and restarts the
// daemon when it exits on its own (a crash, a SIGKILL of the daemon alone), with a backoff, while
// the VM's services keep running and are adopted by the new daemon. SIGTERM or SIGINT are
// forwarded to the daemon and the init exits once the daemon has; SIGUSR2 is forwarded too (the
// daemon stops leaving its services running) and the daemon is restarted, as `systemctl restart`.
// Each start of the daemon writes its pid to <vmDir>/daemon.pid (next to the `--config` file).
import { spawn, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { constants } from 'node:os'
import { dirname, join } from 'node:path'
import { pino, type Logger } from 'pino'
import { writeFileAtomicSync } from '../../store/atomic.js'
import { WakameError } from '../../util/errors.js'
import { startOwnerWatchdog } from './proc.js'

/** First delay before restarting a daemon that exited on its own. @default 200 */
export const RESTART_BACKOFF_MIN_MS = 200
/** The delay doubles at each quick exit, up to this. @default 5000 */
export const RESTART_BACKOFF_MAX_MS = 5_000
/** A daemon that ran at least this long before exiting is restarted after the minimum delay again. */
export const RESTART_BACKOFF_RESET_MS = 10_000
/** File in the VM directory holding the pid of the daemon currently running. */
export const DAEMON_PID_FILE = 'daemon.pid'

export interface VmInitOptions {
  /** Where to write the daemon's pid at each start. @default <dir of --config>/daemon.pid, or none without --config */
  pidFile?: string | null
  /** Pid of the process owning the local cluster: when it dies, the whole VM is killed. @default env WAKAME_LOCAL_OWNER_PID */
  ownerPid?: number
  logger?: Logger
}

/** `<vmDir>/daemon.pid` for a daemon argv holding `--config <vmDir>/agent.yaml`, or undefined. */
export function daemonPidFileFor (argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if ((a === '--config' || a === '-c') && argv[i + 1] !== undefined) return join(dirname(argv[i + 1]!), DAEMON_PID_FILE)
    if (a.startsWith('--config=')) return join(dirname(a.slice('--config='.length)), DAEMON_PID_FILE)
  }
  return undefined
}

/** Runs the daemon `argv` under this process until SIGTERM/SIGINT; never returns (the process exits). */
export async function runVmInit (argv: string[], opts: VmInitOptions = {}): Promise<void> {
  const [cmd, ...args] = argv
  if (cmd === undefined) throw new WakameError('VM_INIT_USAGE', 'vm-init needs the daemon command: wakame vm-init -- <argv...>')
  const log = opts.logger ?? pino({ name: 'vm-init', base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }))
  const pidFile = opts.pidFile === null ? undefined : (opts.pidFile ?? daemonPidFileFor(argv))
  const owner = opts.ownerPid ?? Number(process.env.WAKAME_LOCAL_OWNER_PID)

  let child: ChildProcess | undefined
  let stopSignal: NodeJS.Signals | undefined
  let restartTimer: NodeJS.Timeout | undefined
  let backoffMs = RESTART_BACKOFF_MIN_MS
  let starts = 0

  const exitNow = (code: number): void => {
    if (pidFile !== undefined) rmSync(pidFile, { force: true })
    process.exit(code)
  }

  const start = (): void => {
    restartTimer = undefined
    const startedAt = Date.now()
    const c = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] })
    child = c
    starts++
    c.once('spawn', () => {
      if (pidFile !== undefined && c.pid !== undefined) {
        try { writeFileAtomicSync(pidFile, `${c.pid}\n`) } catch (err) { log.warn({ err: (err as Error).message, pidFile }, 'cannot write the daemon pid file') }
      }
      log.info({ daemon: c.pid, start: starts }, starts === 1 ? 'daemon started' : 'daemon restarted')
    })
    c.once('error', err => {
      // Spawn failed (ENOENT, EACCES): no 'exit' follows, so schedule the retry here.
      if (c.pid === undefined) onExit(null, null, `cannot start ${cmd}: ${err.message}`, startedAt)
    })
    c.once('exit', (code, signal) => { onExit(code, signal, undefined, startedAt) })
  }

  const onExit = (code: number | null, signal: NodeJS.Signals | null, error: string | undefined, startedAt: number): void => {
    child = undefined
    if (stopSignal !== undefined && stopSignal !== 'SIGUSR2') {
      log.info({ code, signal, after: stopSignal }, 'daemon stopped; VM init exiting')
      exitNow(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1))
      return
    }
    const intended = stopSignal === 'SIGUSR2'
    stopSignal = undefined
    if (Date.now() - startedAt >= RESTART_BACKOFF_RESET_MS || intended) backoffMs = RESTART_BACKOFF_MIN_MS
    const delay = backoffMs
    backoffMs = Math.min(backoffMs * 2, RESTART_BACKOFF_MAX_MS)
    const fields = { code, signal, restartInMs: delay, ...(error ? { error } : {}) }
    if (intended) log.info(fields, 'daemon stopped for a restart')
    else log.warn(fields, 'daemon exited unexpectedly; restarting it')
    restartTimer = setTimeout(start, delay)
  }

  const onSignal = (sig: NodeJS.Signals): void => {
    if (sig === 'SIGUSR2') {
      if (child !== undefined && stopSignal === undefined) { stopSignal = sig; child.kill(sig) }
      return
    }
    stopSignal = sig
    if (child === undefined) {
      // Between two starts: nothing to stop.
      if (restartTimer !== undefined) clearTimeout(restartTimer)
      log.info({ signal: sig }, 'VM init exiting (no daemon running)')
      exitNow(0)
      return
    }
    // The daemon may have had the signal already (SIGTERM to the whole group): it stops once.
    child.kill(sig)
  }
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGUSR2'] as const) process.on(sig, onSignal)
  // No terminal: a stray SIGHUP must not take down the VM's init.
  process.on('SIGHUP', () => {})

  if (Number.isInteger(owner) && owner > 0) {
    // The demo or test run that owns this local cluster is gone: take the whole VM down.
    startOwnerWatchdog(owner, () => {
      log.warn({ owner }, 'the owner of this local cluster is gone; stopping this VM')
      try { process.kill(-process.pid, 'SIGKILL') } catch {}
      // Not the group leader (started by hand): at least stop the daemon and ourselves.
      child?.kill('SIGKILL')
      exitNow(1)
    })
  }
  start()
}
