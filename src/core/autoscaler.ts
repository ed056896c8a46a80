// Target-tracking autoscaling of one service: the metric's average over its warm instances, the
// policy, the current desired count and what this leader remembers in; the next desired count and
// the decision (with its inputs, for the log) out. Pure; the scheduler calls it on the leader only.
//
// As EC2 Auto Scaling's target tracking: scale out fast (to ceil(sum / target), several at once),
// scale in slowly (one at a time, once the metric stayed low for a whole window, and only when one
// fewer instance would still be below target * (1 - hysteresis / 2)). The bands between make noise
// harmless: with a steady load and each sample within ±(tolerance + hysteresis/2) / (2 + tolerance
// - hysteresis/2) of it (±12.8 % with the defaults), a scale-in is never undone by a scale-out.
import type { TargetScaleSpec } from '../spec/schema.js'

/** What the leader remembers per service between ticks (a new leader starts afresh). */
export interface ScaleMemory {
  lastOutAt: number
  lastInAt: number
  /** Since when the metric has been low enough to remove one instance (null: it is not). */
  lowSince: number | null
  /** The scale-in window is this many times the policy's: raised each time a scale-in is undone. */
  damping: number
}

export function newScaleMemory (): ScaleMemory {
  return { lastOutAt: -Infinity, lastInAt: -Infinity, lowSince: null, damping: 1 }
}

/** A scale-out this soon after a scale-in (in windows plus cooldowns) undoes it: a flap. */
const FLAP_SPAN = 4
const MAX_DAMPING = 16

export interface AutoscaleInput {
  service: string
  policy: TargetScaleSpec
  min: number
  max: number
  /** The desired count now (the document's). */
  desired: number
  /** The metric of each instance that is ONLINE past its warm-up and reports one. */
  samples: number[]
  /** Instances of the service left out of the average (warming up, not ONLINE, no metric). */
  excluded: number
  now: number
  /** Updated in place. */
  mem: ScaleMemory
}

export type ScaleAction = 'out' | 'in' | 'hold' | 'clamp'

export interface AutoscaleDecision {
  service: string
  action: ScaleAction
  from: number
  to: number
  metric: TargetScaleSpec['metric']
  /** Average over the samples, or null without any. */
  average: number | null
  target: number
  /** Instances whose metric was averaged. */
  instances: number
  excluded: number
  reason: string
}

export function autoscale (input: AutoscaleInput): AutoscaleDecision {
  const { policy: p, desired, samples, now, mem } = input
  const clamp = (n: number): number => Math.min(input.max, Math.max(input.min, n))
  const n = samples.length
  const sum = samples.reduce((a, b) => a + b, 0)
  const average = n > 0 ? sum / n : null
  const decide = (action: ScaleAction, to: number, reason: string): AutoscaleDecision =>
    ({ service: input.service, action, from: desired, to, metric: p.metric, average, target: p.target, instances: n, excluded: input.excluded, reason })

  // A spec relaunched with other bounds: back within them first.
  if (desired !== clamp(desired)) return decide('clamp', clamp(desired), `outside min..max (${input.min}..${input.max})`)
  if (average === null) {
    mem.lowSince = null
    return decide('hold', desired, 'no metric yet from an ONLINE instance past its warm-up')
  }
  const high = p.target * (1 + p.tolerance)
  const low = p.target * (1 - p.hysteresis)
  if (average > high) {
    mem.lowSince = null
    // The total load, spread so each instance is at target. Warming instances are counted in
    // `desired` already, so they are not added twice.
    const want = clamp(Math.ceil(sum / p.target))
    if (want <= desired) return decide('hold', desired, want === input.max && desired === input.max ? 'above target, at max' : 'above target; the instances already added are warming up')
    if (now - mem.lastOutAt < p.scale_out_cooldown_ms) return decide('hold', desired, 'above target; in scale-out cooldown')
    // A noisy metric can undo a scale-in that was right on average: each time, scale-in waits
    // longer (4x, up to 16x the window), so flaps grow rarer instead of repeating.
    const undone = mem.lastInAt > mem.lastOutAt && now - mem.lastInAt < FLAP_SPAN * (p.scale_in_window_ms * mem.damping + p.scale_in_cooldown_ms)
    mem.damping = undone ? Math.min(MAX_DAMPING, mem.damping * 4) : Math.max(1, mem.damping / 4)
    mem.lastOutAt = now
    return decide('out', want, `average ${fmt(average)} above target ${fmt(p.target)} (+${Math.round(p.tolerance * 100)} %)`)
  }
  // One fewer must stay clearly below target (by half the hysteresis), or noise on fewer
  // instances would undo the scale-in: the scale-out band starts at target * (1 + tolerance).
  const canShrink = desired > input.min && average < low && sum / (desired - 1) <= p.target * (1 - p.hysteresis / 2)
  if (!canShrink) {
    mem.lowSince = null
    return decide('hold', desired, desired <= input.min ? 'at min' : 'within the target band')
  }
  mem.lowSince ??= now
  const window = p.scale_in_window_ms * mem.damping
  if (now - mem.lowSince < window) return decide('hold', desired, `low for ${fmtS(now - mem.lowSince)} of ${fmtS(window)}`)
  if (now - Math.max(mem.lastOutAt, mem.lastInAt) < p.scale_in_cooldown_ms) return decide('hold', desired, 'low; in scale-in cooldown')
  mem.lastInAt = now
  // The next removal needs another whole window of low metric.
  mem.lowSince = now
  return decide('in', desired - 1, `average ${fmt(average)} below ${fmt(low)} for ${fmtS(window)}; ${desired - 1} instance(s) would be at ${fmt(sum / (desired - 1))}`)
}

/** One log line for a decision that changes the count. */
export function describeDecision (d: AutoscaleDecision): string {
  const what = d.action === 'out' ? 'scale out' : d.action === 'in' ? 'scale in' : 'clamp'
  const avg = d.average === null ? 'no metric' : `${d.metric} ${fmt(d.average)} avg over ${d.instances} instance(s)`
  return `autoscale ${d.service}: ${d.from} -> ${d.to} (${what}: ${d.reason}; ${avg}, ${d.excluded} warming or without metric, target ${fmt(d.target)})`
}

function fmt (x: number): string {
  return Number(x.toPrecision(3)).toString()
}

function fmtS (ms: number): string {
  return `${Math.round(ms / 100) / 10} s`
}
