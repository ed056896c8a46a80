// Result rows, the printed table and the JSON file.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { summarize, type Summary } from './stats.js'
import { load } from './proc.js'

export interface Row extends Summary {
  /** P1a, P1b, P2, ... */
  figure: string
  what: string
  system: 'wakame' | 'serf' | 'etcd' | 'sim' | 'builtin-lb' | 'haproxy'
  n: number | string
  unit: string
  /** Peer's median / ours (>1: we are faster or smaller), on rows of ours that have a peer row. */
  ratio?: number
  goal?: string
  met?: boolean
  /** Rows pair with the peer's row of the same figure, n and key (default ''). */
  key?: string
  /** 1-minute load average when the figure was measured (before, after). */
  load: [number, number]
  note?: string
  samples?: number[]
}

export const rows: Row[] = []

export function record (r: Omit<Row, keyof Summary | 'load'> & { samples: number[], loadBefore: number, summary?: Partial<Summary> }): Row {
  const { loadBefore, summary, ...rest } = r
  const row: Row = { ...rest, ...summarize(r.samples), ...summary, load: [loadBefore, load()[0]] }
  rows.push(row)
  console.log(`  ${formatRow(row)}`)
  return row
}

/** Pairs our rows with the peer's (same figure and n) and fills in the ratio. */
export function computeRatios (): void {
  for (const r of rows) {
    if (r.system === 'serf' || r.system === 'etcd' || r.system === 'haproxy') continue
    const peer = rows.find(p => p.figure === r.figure && String(p.n) === String(r.n) && (p.key ?? '') === (r.key ?? '') && (p.system === 'serf' || p.system === 'etcd'))
    if (peer && r.median > 0 && Number.isFinite(peer.median)) r.ratio = peer.median / r.median
  }
}

function fmt (x: number, unit: string): string {
  if (!Number.isFinite(x)) return '-'
  if (unit === 's') return x.toFixed(x < 10 ? 2 : 1)
  if (unit === 'ms') return x < 10 ? x.toFixed(1) : Math.round(x).toString()
  if (Math.abs(x) >= 100) return Math.round(x).toString()
  return x.toFixed(Math.abs(x) < 1 ? 3 : Math.abs(x) < 10 ? 2 : 1)
}

export function formatRow (r: Row): string {
  return `${r.figure} ${r.system} n=${r.n} ${r.what}: median ${fmt(r.median, r.unit)} ${r.unit} [${fmt(r.min, r.unit)}–${fmt(r.max, r.unit)}] p99 ${fmt(r.p99, r.unit)} (${r.trials} trials)${r.note ? ` — ${r.note}` : ''}`
}

export function table (): string {
  const head = ['fig', 'what', 'system', 'N', 'median', 'min–max', 'p50 / p99', 'trials', 'ratio', 'goal', 'met', 'load']
  const lines = [head]
  for (const r of rows) {
    lines.push([
      r.figure, r.what, r.system, String(r.n),
      `${fmt(r.median, r.unit)} ${r.unit}`, `${fmt(r.min, r.unit)}–${fmt(r.max, r.unit)}`, `${fmt(r.p50, r.unit)} / ${fmt(r.p99, r.unit)}`,
      String(r.trials), r.ratio !== undefined ? `${r.ratio.toFixed(r.ratio < 10 ? 2 : 1)}×` : '', r.goal ?? '', r.met === undefined ? '' : r.met ? 'yes' : 'NO',
      `${r.load[0].toFixed(2)}→${r.load[1].toFixed(2)}`
    ])
  }
  lines.splice(1, 0, head.map(() => '---'))
  return lines.map(l => `| ${l.join(' | ')} |`).join('\n')
}

export function writeJson (dir: string, meta: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify({ ...meta, rows }, null, 2) + '\n')
  return file
}
