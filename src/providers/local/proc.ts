// Linux process helpers for local VMs: identity through /proc (a pid alone can be recycled),
// process-group liveness and killing, and the owner watchdog. Linux only, like the local provider.
import { readFileSync, readdirSync } from 'node:fs'

export interface ProcStat {
  /** One letter: R, S, D, Z (zombie), T, ... */
  state: string
  ppid: number
  pgrp: number
  /** Clock ticks since boot at which the process started (field 22): with the pid, a unique identity. */
  startTime: number
}

/** Parses /proc/<pid>/stat; undefined when there is no such process. */
export function procStat (pid: number): ProcStat | undefined {
  let text: string
  try { text = readFileSync(`/proc/${pid}/stat`, 'utf8') } catch { return undefined }
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const [state, ppid, pgrp] = rest
  const startTime = rest[19]
  if (state === undefined || ppid === undefined || pgrp === undefined || startTime === undefined) return undefined
  return { state, ppid: Number(ppid), pgrp: Number(pgrp), startTime: Number(startTime) }
}

export function processStartTime (pid: number): number | undefined {
  return procStat(pid)?.startTime
}

/** True while `pid` is the same (non-zombie) process that started at `startTime`. */
export function sameProcessAlive (pid: number, startTime: number | undefined): boolean {
  const st = procStat(pid)
  if (st === undefined || st.state === 'Z') return false
  return startTime === undefined || st.startTime === startTime
}

/**
 * True while the process group led by `pgid` (whose leader started at `leaderStartTime`) has a
 * live member. If the leader's pid now belongs to another process, the group is gone: Linux never
 * hands out a pid that is still some group's id. Zombies do not count: they are dead, merely unreaped.
 */
export function groupAlive (pgid: number, leaderStartTime: number | undefined): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false
  const leader = procStat(pgid)
  if (leader !== undefined && leaderStartTime !== undefined && leader.startTime !== leaderStartTime) return false
  try {
    process.kill(-pgid, 0)
  } catch {
    // ESRCH: no member left. EPERM: the members belong to someone else, so not to our VM any more.
    return false
  }
  if (leader !== undefined && leader.state !== 'Z') return true
  return groupMembers(pgid).length > 0
}

/** Live (non-zombie) pids whose process group is `pgid` (a /proc scan; one read per process, as they may vanish meanwhile). */
export function groupMembers (pgid: number): number[] {
  return listPids().filter(pid => {
    const st = procStat(pid)
    return st !== undefined && st.pgrp === pgid && st.state !== 'Z'
  })
}

function listPids (): number[] {
  return readdirSync('/proc').filter(n => /^\d+$/.test(n)).map(Number)
}

/** Pids with one of `args` as a whole argument on their command line (finds a VM by its config path). */
export function findProcessesByArg (args: Iterable<string>): number[] {
  const wanted = new Set(args)
  if (wanted.size === 0) return []
  const out: number[] = []
  for (const pid of listPids()) {
    let cmd: string
    try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8') } catch { continue }
    if (cmd.split('\0').some(a => wanted.has(a))) out.push(pid)
  }
  return out
}

export async function waitUntil (cond: () => boolean, timeoutMs: number, intervalMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (cond()) return true
    if (Date.now() >= deadline) return false
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}

function signalGroup (pgid: number, sig: NodeJS.Signals): void {
  try { process.kill(-pgid, sig) } catch {}
}

/**
 * Kills a VM's whole process group (the daemon and every service on it, as when a machine goes
 * down): SIGTERM, up to `graceMs` for a clean exit, then SIGKILL. Resolves once no member is left
 * (true) or after SIGKILL did not finish within `killWaitMs` (false: a process stuck in D state).
 */
export async function killGroup (pgid: number, leaderStartTime: number | undefined, graceMs = 3_000, killWaitMs = 5_000): Promise<boolean> {
  if (!groupAlive(pgid, leaderStartTime)) return true
  signalGroup(pgid, 'SIGTERM')
  if (await waitUntil(() => !groupAlive(pgid, leaderStartTime), graceMs)) return true
  signalGroup(pgid, 'SIGKILL')
  return await waitUntil(() => !groupAlive(pgid, leaderStartTime), killWaitMs)
}

/**
 * Calls `onGone` once the owner of a local cluster (the demo, a test run) has exited, so the
 * daemon can kill its own process group and no VM outlives a killed run. Polls because a process
 * cannot be notified of a non-parent's death. Returns a stop function.
 */
export function startOwnerWatchdog (ownerPid: number, onGone: () => void, intervalMs = 1_000): () => void {
  // Remember who the owner is now, so a recycled pid does not keep the VMs alive forever.
  const ownerStart = processStartTime(ownerPid)
  let stopped = false
  const check = (): void => {
    if (stopped) return
    if (ownerStart !== undefined ? sameProcessAlive(ownerPid, ownerStart) : pidExists(ownerPid)) return
    stop()
    onGone()
  }
  const timer = setInterval(check, intervalMs)
  // The watchdog must never be what keeps a process running.
  timer.unref()
  function stop (): void {
    stopped = true
    clearInterval(timer)
  }
  return stop
}

function pidExists (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
