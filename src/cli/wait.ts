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
  /** Give up early when an instance stays FAIL this long (it may keep failing for good). @default 20000 */
  failFastMs?: number
}

export async function waitForSettle (client: Client, opts: WaitOptions): Promise<StatusReport> {
  const deadline = Date.now() + opts.timeoutMs
  const seen = new Map<string, string>()
  const started = Date.now()
  let last: StatusReport | undefined
  let lastError: string | undefined
  let first = true
  let stuck: WakameError | undefined
  /** Since when each instance has been FAIL without a break, by this command's clock. */
  const failingSince = new Map<string, number>()
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
            // What was already serving before the change is not news.
            if (!first || i.state !== 'ONLINE') opts.print(`  ${elapsed(started)} ${i.id} ${i.state}${i.node ? ` on ${i.node}` : ''}`)
          }
          if (i.state === 'FAIL') failingSince.set(i.id, failingSince.get(i.id) ?? Date.now())
          else failingSince.delete(i.id)
        }
      }
      const current = new Set(s.services.flatMap(svc => svc.instances.map(i => i.id)))
      for (const id of [...seen.keys()]) if (!current.has(id)) { seen.delete(id); opts.print(`  ${elapsed(started)} ${id} gone`) }
      first = false
      if ((s.committed?.version ?? 0) >= opts.version && s.settled && (opts.done?.(s) ?? true)) return s
      // An instance given up on (crash loop), or FAIL for a while: waiting longer will not help.
      const failed = s.services.flatMap(svc => svc.instances).filter(i => i.state === 'FAIL' && (i.gaveUp !== undefined || i.crashLoop === true || Date.now() - (failingSince.get(i.id) ?? Infinity) >= (opts.failFastMs ?? 20_000)))
      if ((s.committed?.version ?? 0) >= opts.version && failed.length > 0) {
        stuck = new WakameError('NOT_SETTLED', `not settling: ${failed.map(i => `${i.id}${i.node ? ` on ${i.node}` : ''} is FAIL${i.error ? `: ${i.error}` : ''}`).join('; ')}. The change was made; the cluster keeps trying (see \`wakame status\`, \`wakame events\`).`)
      }
    } catch (err) {
      // A node may be briefly unreachable (e.g. the one we asked is being replaced); keep trying.
      lastError = (err as Error).message
    }
    if (stuck) throw stuck
    await new Promise(r => setTimeout(r, opts.pollMs ?? 300))
  }
  const why = lastError ? ` (last error: ${lastError})` : last ? ` (still changing: ${last.warnings.join('; ') || 'instances not all ONLINE'})` : ''
  throw new WakameError('NOT_SETTLED', `the cluster did not settle within ${Math.round(opts.timeoutMs / 1000)} s${why}; see \`wakame status\``)
}

function elapsed (since: number): string {
  return `[${((Date.now() - since) / 1000).toFixed(1).padStart(5)}s]`
}
