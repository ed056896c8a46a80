// Commands that change the cluster wait for it to settle, printing each instance transition.
import type { StatusReport } from '../core/status.js'
import { WakameError } from '../util/errors.js'
import type { Client } from './client.js'

export interface WaitOptions {
  /** Document version the change was committed at: older answers do not count. */
  version: number
  timeoutMs: number
  print: (line: string) => void
  /** Extra condition beyond "settled". */
  done?: (s: StatusReport) => boolean
  pollMs?: number
}

export async function waitForSettle (client: Client, opts: WaitOptions): Promise<StatusReport> {
  const deadline = Date.now() + opts.timeoutMs
  const seen = new Map<string, string>()
  const started = Date.now()
  let last: StatusReport | undefined
  let lastError: string | undefined
  while (Date.now() < deadline) {
    try {
      const s = await client.status()
      last = s
      lastError = undefined
      for (const svc of s.services) {
        for (const i of svc.instances) {
          const key = `${i.state} ${i.node ?? ''}`
          if (seen.get(i.id) !== key) {
            seen.set(i.id, key)
            opts.print(`  ${elapsed(started)} ${i.id} ${i.state}${i.node ? ` on ${i.node}` : ''}`)
          }
        }
      }
      const current = new Set(s.services.flatMap(svc => svc.instances.map(i => i.id)))
      for (const id of [...seen.keys()]) if (!current.has(id)) { seen.delete(id); opts.print(`  ${elapsed(started)} ${id} gone`) }
      if ((s.committed?.version ?? 0) >= opts.version && s.settled && (opts.done?.(s) ?? true)) return s
    } catch (err) {
      // A node may be briefly unreachable (e.g. the one we asked is being replaced); keep trying.
      lastError = (err as Error).message
    }
    await new Promise(r => setTimeout(r, opts.pollMs ?? 300))
  }
  const why = lastError ? ` (last error: ${lastError})` : last ? ` (still changing: ${last.warnings.join('; ') || 'instances not all ONLINE'})` : ''
  throw new WakameError('NOT_SETTLED', `the cluster did not settle within ${Math.round(opts.timeoutMs / 1000)} s${why}; see \`wakame status\``)
}

function elapsed (since: number): string {
  return `[${((Date.now() - since) / 1000).toFixed(1).padStart(5)}s]`
}
