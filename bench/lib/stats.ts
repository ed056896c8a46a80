// Small statistics over samples: median, percentiles (nearest rank), min and max.

export interface Summary {
  trials: number
  median: number
  min: number
  max: number
  p50: number
  p99: number
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

export function summarize (samples: number[]): Summary {
  const s = samples.filter(x => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return { trials: 0, median: NaN, min: NaN, max: NaN, p50: NaN, p99: NaN }
  const mid = Math.floor(s.length / 2)
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
  return { trials: s.length, median, min: s[0]!, max: s[s.length - 1]!, p50: percentile(s, 50), p99: percentile(s, 99) }
}

export function mean (xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length
}
