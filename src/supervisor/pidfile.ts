// pid.json: which process runs an instance, so a restarted daemon can adopt it instead of
// starting a second copy. The /proc start time guards against a recycled pid.
import { readFileSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomicSync } from '../store/atomic.js'
import type { HealthSpec } from '../spec/schema.js'

export interface PidFile {
  pid: number
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot): a pid reused by another process differs. */
  startTime: number
  /** The argv actually run (after `node` → process.execPath). */
  argv: string[]
  port?: number
  /** How to stop it when it is adopted but no longer wanted (the new daemon may not know its spec). */
  stop?: { signal: NodeJS.Signals, timeout_ms: number }
  /** Its health check, so a restarted daemon can tell at once whether an adopted instance serves. */
  health?: HealthSpec
}

export function instanceDir (dataDir: string, id: string): string {
  return join(dataDir, 'instances', id)
}

export function pidPath (dataDir: string, id: string): string {
  return join(instanceDir(dataDir, id), 'pid.json')
}

export function writePidFile (dataDir: string, id: string, pf: PidFile): void {
  writeFileAtomicSync(pidPath(dataDir, id), JSON.stringify(pf) + '\n')
}

export function removePidFile (dataDir: string, id: string): void {
  rmSync(pidPath(dataDir, id), { force: true })
}

/** Instance ids that have a directory under `<dataDir>/instances`. */
export function listInstanceDirs (dataDir: string): string[] {
  try {
    return readdirSync(join(dataDir, 'instances'), { withFileTypes: true }).filter(d => d.isDirectory()).map(d => d.name)
  } catch {
    return []
  }
}

/** The pid file of an instance, or null when absent or unreadable (a torn file cannot happen: writes are atomic). */
export function readPidFile (dataDir: string, id: string): PidFile | null {
  try {
    const v = JSON.parse(readFileSync(pidPath(dataDir, id), 'utf8')) as Partial<PidFile>
    if (typeof v.pid !== 'number' || typeof v.startTime !== 'number' || !Array.isArray(v.argv)) return null
    return v as PidFile
  } catch {
    return null
  }
}

export interface ProcStat { state: string, startTime: number }

/** State letter and start time of a process from /proc, or null when it does not exist. */
export function procStat (pid: number): ProcStat | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // Field 2 (comm) is in parentheses and may itself hold spaces or ")": split after the last ")".
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const startTime = Number(rest[19]) // field 22 = index 19 after fields 1-2
  return { state: rest[0] ?? '?', startTime }
}

/** True while the process with this pid exists, is not a zombie, and (when known, non-zero) started at `startTime`. */
export function isAlive (pid: number, startTime?: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    // ESRCH: gone. EPERM: it exists but belongs to someone else; that cannot be our instance.
    return false
  }
  const st = procStat(pid)
  if (!st) return !startTime // no /proc (not Linux): trust kill(0) unless we had a start time
  if (st.state === 'Z' || st.state === 'X') return false
  return !startTime || st.startTime === startTime
}
