// Running one instance's process: what to run (argv, cwd, env), spawning it with its output appended
// to a log file, and a common handle over our own children and processes adopted from a previous daemon.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readSync, fstatSync, writeSync } from 'node:fs'
import { isAbsolute, join, resolve } from 'node:path'
import { WakameError } from '../util/errors.js'
import { isAlive } from './pidfile.js'
import type { InstanceDef } from './types.js'

export interface LaunchPlan {
  argv: string[]
  cwd: string
  env: Record<string, string>
  /** Changes exactly when a restart is needed to apply a new definition (process.env left out). */
  fingerprint: string
}

/** `node` means the Node.js running wakame, so services need no node on PATH and get the same version. */
export function resolveProgram (argv: string[]): string[] {
  return argv[0] === 'node' ? [process.execPath, ...argv.slice(1)] : [...argv]
}

export function planLaunch (def: InstanceDef, ctx: { bindIp: string, nodeId: string }): LaunchPlan {
  const raw = def.argv ?? def.spec.command
  if (!raw || raw.length === 0) {
    throw new WakameError('NO_COMMAND', `service "${def.service}" has no command: give services.${def.service}.command`)
  }
  const argv = resolveProgram(raw)
  const cwd = def.spec.workdir ? resolve(def.specDir, def.spec.workdir) : def.specDir
  // A relative program path ("./bin/app") belongs to the spec's directory, not the daemon's cwd;
  // bare names ("python3") are left to PATH. Arguments are the child's business (relative to cwd).
  if (argv[0] && !isAbsolute(argv[0]) && argv[0].includes('/')) argv[0] = resolve(def.specDir, argv[0])
  const own: Record<string, string> = { ...def.spec.env, ...def.env }
  if (def.port !== undefined) own.PORT = String(def.port)
  own.WAKAME_BIND = ctx.bindIp
  own.WAKAME_INSTANCE = def.id
  own.WAKAME_SERVICE = def.service
  own.WAKAME_NODE = ctx.nodeId
  if (def.volumeDir !== undefined) own.WAKAME_VOLUME = def.volumeDir
  const env: Record<string, string> = {}
  // The daemon's own WAKAME_* settings (its config; an admin token meant for the CLI) are not the
  // service's business: it sees only the WAKAME_* variables set for it here.
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('WAKAME_')) env[k] = v
  Object.assign(env, own)
  const sortedOwn = Object.fromEntries(Object.entries(own).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
  const fingerprint = JSON.stringify({ argv, cwd, env: sortedOwn, port: def.port })
  return { argv, cwd, env, fingerprint }
}

export interface ExitInfo {
  code: number | null
  signal: NodeJS.Signals | null
  /** Set when the process could not be started at all (spawn error) or its exit code is unknowable. */
  error?: string
}

/** A running instance process, whether we spawned it or adopted it. */
export interface ProcHandle {
  readonly pid: number | undefined
  readonly adopted: boolean
  /** Resolves once, when the process is gone. */
  readonly exited: Promise<ExitInfo>
  /** Send a signal; false when the process is already gone. */
  kill (signal: NodeJS.Signals): boolean
  /** Forget the process without touching it (daemon exit that leaves services running). */
  detach (): void
}

class ChildHandle implements ProcHandle {
  readonly adopted = false
  readonly exited: Promise<ExitInfo>
  constructor (private readonly child: ChildProcess) {
    this.exited = new Promise(resolve => {
      child.once('exit', (code, signal) => resolve({ code, signal }))
      // 'error' without a pid means spawn failed (ENOENT, EACCES): no 'exit' will follow.
      child.on('error', err => { if (child.pid === undefined) resolve({ code: null, signal: null, error: `could not start: ${err.message}` }) })
    })
  }

  get pid (): number | undefined { return this.child.pid }

  kill (signal: NodeJS.Signals): boolean {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.child.pid === undefined) return false
    return this.child.kill(signal)
  }

  detach (): void {
    // Let the daemon's event loop end while the child keeps running; Node still reaps it if it exits.
    this.child.unref()
  }
}

/** Written to output.log before each start of an instance. */
export const START_MARK = '--- wakame: start'

/** Spawn without a shell and without detaching: the child stays in our process group. */
export function spawnInstance (plan: LaunchPlan, dir: string): ProcHandle {
  mkdirSync(dir, { recursive: true })
  const fd = openSync(join(dir, 'output.log'), 'a')
  try {
    // A marker per start, so a failure reports this run's last lines, never an earlier run's.
    writeSync(fd, `${START_MARK} ${new Date().toISOString()} ${plan.argv.join(' ')}\n`)
    const [cmd, ...args] = plan.argv as [string, ...string[]]
    const child = spawn(cmd, args, { cwd: plan.cwd, env: plan.env, stdio: ['ignore', fd, fd] })
    return new ChildHandle(child)
  } finally {
    closeSync(fd) // the child holds its own copy
  }
}

/**
 * A process started by a previous daemon. It is not our child, so its exit is noticed by polling
 * kill(pid, 0) (plus the /proc start time, in case the pid is recycled) and its exit code is unknown.
 */
export class AdoptedHandle implements ProcHandle {
  readonly adopted = true
  readonly exited: Promise<ExitInfo>
  private timer: NodeJS.Timeout | undefined
  private done!: (info: ExitInfo) => void
  private gone = false

  constructor (readonly pid: number, private readonly startTime: number, private pollMs: number) {
    this.exited = new Promise(resolve => { this.done = resolve })
    this.schedule()
  }

  /** Poll at this interval from now on (the health interval, once the spec is known). */
  setPollMs (ms: number): void {
    this.pollMs = ms
    this.schedule()
  }

  kill (signal: NodeJS.Signals): boolean {
    if (this.gone || !isAlive(this.pid, this.startTime)) return false
    try {
      process.kill(this.pid, signal)
    } catch {
      return false
    }
    // A stop is under way: notice the exit quickly rather than a whole health interval later.
    this.setPollMs(Math.min(this.pollMs, 50))
    return true
  }

  detach (): void {
    clearTimeout(this.timer)
    this.gone = true
  }

  private schedule (): void {
    clearTimeout(this.timer)
    if (this.gone) return
    this.timer = setTimeout(() => {
      if (isAlive(this.pid, this.startTime)) return this.schedule()
      this.gone = true
      this.done({ code: null, signal: null, error: 'exited (adopted process: exit code unknown)' })
    }, this.pollMs)
  }
}

/** The last `n` non-empty lines of a file, reading at most its last 8 KiB. */
export function tailLines (path: string, n: number): string[] {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch {
    return []
  }
  try {
    const size = fstatSync(fd).size
    const len = Math.min(size, 8192)
    const buf = Buffer.alloc(len)
    readSync(fd, buf, 0, len, size - len)
    const lines = buf.toString('utf8').split(/\r?\n/).map(l => l.trim())
    const start = lines.findLastIndex(l => l.startsWith(START_MARK))
    return lines.slice(start + 1).filter(l => l !== '').slice(-n)
  } finally {
    closeSync(fd)
  }
}

/**
 * Run a reload command without a shell, in the instance's directory and environment. Resolves with
 * its output; rejects with an error carrying the output when it fails or times out.
 */
export async function runReloadCommand (argv: string[], plan: Pick<LaunchPlan, 'cwd' | 'env'>, timeoutMs: number): Promise<string> {
  const [cmd, ...args] = resolveProgram(argv) as [string, ...string[]]
  return await new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: plan.cwd, env: plan.env, timeout: timeoutMs, maxBuffer: 256 * 1024 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim().split(/\r?\n/).slice(-10).join('\n')
      if (!err) return resolve(output)
      const why = (err as { killed?: boolean }).killed ? `timed out after ${timeoutMs} ms` : `exited with ${(err as { code?: unknown }).code ?? 'an error'}`
      reject(new WakameError('RELOAD_FAILED', `reload command ${why}${output ? `: ${output}` : ''}`))
    })
  })
}
