// Everything a benchmark starts is registered here and taken down at the end, on failure, on
// Ctrl-C (SIGINT/SIGTERM/SIGHUP) and, through a small detached reaper process that watches this
// one, even when the benchmark itself is SIGKILLed: the reaper then kills every registered
// process group. Wakame VMs also watch this process themselves (WAKAME_LOCAL_OWNER_PID).
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { alive, signal, sleep } from './proc.js'

type Task = { name: string, run: () => Promise<void> | void }

const tasks: Task[] = []
const groups = new Set<number>()
let workDir: string | undefined
let reaperPid: number | undefined
let installed = false
let exiting = false

/** The run's temporary directory (serf and etcd data, wakame clusters), removed at the end. */
export function runDir (): string {
  workDir ??= mkdtempSync(join(tmpdir(), 'wakame-bench-'))
  return workDir
}

function writeGroups (): void {
  writeFileSync(join(runDir(), 'pgids.json'), JSON.stringify([...groups]))
}

/** A process group to SIGKILL at the end (and by the reaper if this process dies). */
export function trackGroup (pgid: number): void {
  groups.add(pgid)
  writeGroups()
}

export function untrackGroup (pgid: number): void {
  groups.delete(pgid)
  writeGroups()
}

export function killGroup (pgid: number): void {
  signal(-pgid, 'SIGCONT')
  signal(-pgid, 'SIGKILL')
  untrackGroup(pgid)
}

/** A cleanup step, run in reverse order of registration. Returns a function that runs it early (once). */
export function onCleanup (name: string, run: () => Promise<void> | void): () => Promise<void> {
  let done = false
  const task: Task = { name, run: async () => { if (done) return; done = true; await run() } }
  tasks.push(task)
  return async () => {
    const i = tasks.indexOf(task)
    if (i >= 0) tasks.splice(i, 1)
    await task.run()
  }
}

export async function cleanupAll (): Promise<void> {
  while (tasks.length > 0) {
    const t = tasks.pop()!
    try { await Promise.race([t.run(), sleep(20_000)]) } catch (err) { console.error(`cleanup ${t.name}: ${(err as Error).message}`) }
  }
  for (const g of [...groups]) killGroup(g)
  if (reaperPid !== undefined) { signal(reaperPid, 'SIGKILL'); reaperPid = undefined }
  if (workDir) { try { rmSync(workDir, { recursive: true, force: true }) } catch {} }
}

/** Signal handlers and the reaper; call once at start. */
export function installCleanup (selfArgv: string[]): void {
  if (installed) return
  installed = true
  writeGroups()
  const [cmd, ...args] = selfArgv as [string, ...string[]]
  const r = spawn(cmd, [...args, '__reaper', String(process.pid), join(runDir(), 'pgids.json')], { detached: true, stdio: 'ignore' })
  r.unref()
  reaperPid = r.pid
  const onSignal = (sig: NodeJS.Signals): void => {
    if (exiting) { console.error('second signal: exiting now'); process.exit(130) }
    exiting = true
    console.error(`\n${sig}: stopping every process the benchmark started...`)
    void cleanupAll().finally(() => process.exit(130))
  }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal)
}

/** The reaper: waits for the owner to die, then SIGKILLs every group listed in the file. */
export async function runReaper (ownerPid: number, file: string): Promise<void> {
  process.on('SIGHUP', () => {})
  process.on('SIGINT', () => {})
  while (alive(ownerPid)) await sleep(500)
  let pgids: number[] = []
  try { pgids = JSON.parse(readFileSync(file, 'utf8')) as number[] } catch {}
  for (const g of pgids) { signal(-g, 'SIGCONT'); signal(-g, 'SIGKILL') }
  process.exit(0)
}
