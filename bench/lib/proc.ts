// /proc readers (RSS, CPU time, load), process groups, and small timing helpers.
import { readFileSync, readdirSync } from 'node:fs'
import { loadavg } from 'node:os'

export const CLK_TCK = 100

export const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** utime+stime of a process in seconds, or undefined when it is gone. */
export function cpuSeconds (pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
    // Fields after the name: state(3) ... utime(14) stime(15): index 11 and 12 here.
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK
  } catch { return undefined }
}

/** Resident set size in MiB (VmRSS), or undefined when the process is gone. */
export function rssMiB (pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : undefined
  } catch { return undefined }
}

/** Bytes read and written through syscalls (sockets, files, pipes): /proc/<pid>/io rchar, wchar. */
export function ioChars (pid: number): { rchar: number, wchar: number, syscr: number, syscw: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8')
    const get = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN)
    return { rchar: get('rchar'), wchar: get('wchar'), syscr: get('syscr'), syscw: get('syscw') }
  } catch { return undefined }
}

export function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

export function signal (pid: number, sig: NodeJS.Signals): boolean {
  try { process.kill(pid, sig); return true } catch { return false }
}

/** Pids whose process group is `pgid`. */
export function groupMembers (pgid: number): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const text = readFileSync(`/proc/${name}/stat`, 'utf8')
      const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
      if (Number(rest[2]) === pgid) out.push(Number(name))
    } catch {}
  }
  return out
}

export function load (): [number, number, number] {
  const [a, b, c] = loadavg()
  return [round2(a!), round2(b!), round2(c!)]
}

export function round2 (x: number): number { return Math.round(x * 100) / 100 }

/** Polls until `probe` returns something other than undefined/false, or throws after `timeoutMs`. */
export async function waitUntil<T> (what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastErr = ''
  for (;;) {
    try {
      const v = await probe()
      if (v !== undefined && v !== false) return v
    } catch (err) { lastErr = (err as Error).message }
    if (Date.now() >= deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${lastErr ? ` (last error: ${lastErr})` : ''}`)
    await sleep(intervalMs)
  }
}
