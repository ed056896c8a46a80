// Restart delays after failures: start at initialMs, double up to maxMs, and start over once an
// instance has been ONLINE for resetAfterMs (a long-healthy service that fails restarts quickly).
import type { BackoffOptions } from './types.js'

export class Backoff {
  private nextMs: number
  private onlineSince: number | null = null

  constructor (private readonly opts: Required<BackoffOptions>) {
    this.nextMs = opts.initialMs
  }

  online (nowMs: number): void { this.onlineSince = nowMs }

  /** The delay before the next restart after a failure at `nowMs`. */
  next (nowMs: number): number {
    if (this.onlineSince !== null && nowMs - this.onlineSince >= this.opts.resetAfterMs) this.nextMs = this.opts.initialMs
    this.onlineSince = null
    const delay = this.nextMs
    this.nextMs = Math.min(this.nextMs * 2, this.opts.maxMs)
    return delay
  }
}

/**
 * Timers of one run of an instance (health loop, start timeout). clear() cancels them all and
 * bumps the generation, so a check already in flight can tell its result is stale.
 */
export class TimerGroup {
  gen = 0
  private readonly timers = new Set<NodeJS.Timeout>()

  after (ms: number, fn: () => void): void {
    const gen = this.gen
    const t = setTimeout(() => {
      this.timers.delete(t)
      if (gen === this.gen) fn()
    }, ms)
    this.timers.add(t)
  }

  clear (): void {
    this.gen++
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
  }
}
