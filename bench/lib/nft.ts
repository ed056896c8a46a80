// Packet and byte counters per address on one port (TCP and UDP), in an nftables table of this
// process's own: a rule per (address, direction) with a counter, nothing dropped. Loopback packets
// cross the output hook once (counted as sent by the source) and the input hook once (received by
// the destination). Bytes are IP packet lengths (headers and pure ACKs included).
import { execFileSync } from 'node:child_process'
import { onCleanup } from './cleanup.js'

export interface Counts { packets: number, bytes: number }

function nft (args: string[], input?: string): string {
  return execFileSync('nft', args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}), stdio: ['pipe', 'pipe', 'pipe'] })
}

export function nftAvailable (): boolean {
  try { nft(['list', 'tables']); return true } catch { return false }
}

export class PortCounters {
  readonly table: string
  private readonly done: () => Promise<void>

  constructor (readonly ips: string[], readonly port: number, tag: string) {
    this.table = `wakame_bench_${process.pid}_${tag}`
    const rules = (dir: 'saddr' | 'daddr') => ips.flatMap(ip => [
      `    ip ${dir} ${ip} th sport ${port} counter accept comment "${ip}"`,
      `    ip ${dir} ${ip} th dport ${port} counter accept comment "${ip}"`
    ])
    const script = [
      `table inet ${this.table} {`,
      '  chain out {', '    type filter hook output priority 10; policy accept;', ...rules('saddr'), '  }',
      '  chain in {', '    type filter hook input priority 10; policy accept;', ...rules('daddr'), '  }',
      '}'
    ].join('\n') + '\n'
    nft(['-f', '-'], script)
    this.done = onCleanup(`nft ${this.table}`, () => { try { nft(['delete', 'table', 'inet', this.table]) } catch {} })
  }

  /** Per address: sent and received since the table was made. */
  read (): Map<string, { sent: Counts, received: Counts }> {
    const j = JSON.parse(nft(['-j', 'list', 'table', 'inet', this.table])) as { nftables: Array<{ rule?: { chain: string, comment?: string, expr: Array<{ counter?: { packets: number, bytes: number } }> } }> }
    const out = new Map<string, { sent: Counts, received: Counts }>()
    for (const ip of this.ips) out.set(ip, { sent: { packets: 0, bytes: 0 }, received: { packets: 0, bytes: 0 } })
    for (const item of j.nftables) {
      const r = item.rule
      if (!r?.comment) continue
      const c = r.expr.find(e => e.counter)?.counter
      const slot = out.get(r.comment)
      if (!c || !slot) continue
      const k = r.chain === 'out' ? slot.sent : slot.received
      k.packets += c.packets
      k.bytes += c.bytes
    }
    return out
  }

  async close (): Promise<void> { await this.done() }
}
