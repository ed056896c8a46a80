// Small process and network helpers the balancer adapters share: finding a server's binary, running
// its config check, asking the running server which config it serves, listing a master's children.
import { execFile, execFileSync } from 'node:child_process'
import { accessSync, constants, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { request } from 'node:http'
import { delimiter, join } from 'node:path'
import { CONFIG_HEADER, HEALTH_PATH } from './model.js'

/** sbin directories are often missing from a non-root PATH, and that is where Debian puts the servers. */
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin']

/** Absolute path of the first of `names` found on PATH or in the sbin directories. */
export function findProgram (names: readonly string[], path = process.env.PATH ?? ''): string | undefined {
  const dirs = [...path.split(delimiter).filter(Boolean), ...EXTRA_DIRS]
  for (const name of names) {
    for (const dir of dirs) {
      const p = join(dir, name)
      try { accessSync(p, constants.X_OK); return p } catch {}
    }
  }
  return undefined
}

export interface CheckResult { ok: boolean, output: string }

/** Trim a checker's output to what a status line can carry. */
function tidy (text: string): string {
  return text.trim().split(/\r?\n/).filter(l => l.trim() !== '').slice(-8).join('\n').slice(0, 1500)
}

/** Run a config check (`haproxy -c`, `nginx -t`, `apache2 -t`): exit 0 means valid. */
export async function runCheck (argv: readonly string[], timeoutMs: number): Promise<CheckResult> {
  const [cmd, ...args] = argv as [string, ...string[]]
  return await new Promise(resolve => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 512 * 1024 }, (err, stdout, stderr) => {
      const output = tidy(`${stdout}${stderr}`)
      if (!err) return resolve({ ok: true, output })
      const why = (err as { killed?: boolean }).killed ? `timed out after ${timeoutMs} ms` : (err as { code?: unknown }).code === 'ENOENT' ? `${cmd} is not installed` : `exit ${String((err as { code?: unknown }).code)}`
      resolve({ ok: false, output: `${why}${output ? `: ${output}` : ''}` })
    })
  })
}

/** The same, blocking: only for an instance about to start (rare, and nothing can serve before it anyway). */
export function runCheckSync (argv: readonly string[], timeoutMs: number): CheckResult {
  const [cmd, ...args] = argv as [string, ...string[]]
  try {
    const out = execFileSync(cmd, args, { timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 512 * 1024 })
    return { ok: true, output: tidy(out.toString()) }
  } catch (err) {
    const e = err as { stdout?: Buffer, stderr?: Buffer, code?: unknown, status?: unknown }
    return { ok: false, output: tidy(`exit ${String(e.status ?? e.code)}: ${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`) }
  }
}

/**
 * The config id the server answers on HEALTH_PATH, over a new connection (an old process after a
 * reload keeps its open connections; only a new one shows what new clients get). Undefined when
 * it does not answer.
 */
export async function probeConfigId (listen: { host: string, port: number }, timeoutMs = 500): Promise<string | undefined> {
  return await new Promise(resolve => {
    const req = request({ host: listen.host, port: listen.port, path: HEALTH_PATH, agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, res => {
      res.resume()
      const v = res.headers[CONFIG_HEADER]
      resolve(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300 && typeof v === 'string' ? v : undefined)
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
    req.end()
  })
}

/** Pids of a process's children (Linux /proc), for "a new worker generation started". */
export function childPids (pid: number): Set<number> {
  const out = new Set<number>()
  let tasks: string[]
  try { tasks = readdirSync(`/proc/${pid}/task`) } catch { return out }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(/\s+/)) if (c) out.add(Number(c))
    } catch {}
  }
  return out
}

/** Inodes of the sockets a process holds open (`socket:[123]` links in /proc/<pid>/fd). */
export function socketInodes (pid: number): Set<string> {
  const out = new Set<string>()
  let fds: string[]
  try { fds = readdirSync(`/proc/${pid}/fd`) } catch { return out }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) out.add(m[1]!)
    } catch {}
  }
  return out
}

/** A process's command line as it shows it (nginx retitles its workers: "nginx: worker process is shutting down"). */
export function procTitle (pid: number): string | undefined {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim() } catch { return undefined }
}

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
