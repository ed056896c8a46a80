// Time for the fake: real timers by default, or a manual clock that tests advance explicitly.

export interface FakeClock {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

export const realClock: FakeClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, ms))
    t.unref()
    return t
  },
  clearTimeout: (handle) => { clearTimeout(handle as ReturnType<typeof setTimeout>) }
}

interface ManualTimer { id: number, at: number, fn: () => void }

/** A clock that only moves when `advance` is called; due timers run synchronously, in time order. */
export class ManualClock implements FakeClock {
  private t: number
  private seq = 0
  private timers: ManualTimer[] = []

  constructor (startMs = Date.parse('2025-01-01T00:00:00.000Z')) { this.t = startMs }

  now (): number { return this.t }

  setTimeout (fn: () => void, ms: number): unknown {
    const timer = { id: ++this.seq, at: this.t + Math.max(0, ms), fn }
    this.timers.push(timer)
    return timer.id
  }

  clearTimeout (handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle)
  }

  /** Pending timers (for assertions). */
  get pending (): number { return this.timers.length }

  /** Resolves when the clock has been advanced by `ms` (so code under test can sleep on this clock). */
  async sleep (ms: number): Promise<void> {
    await new Promise<void>((resolve) => { this.setTimeout(resolve, ms) })
  }

  /** Jumps to the next timer and runs it (and any due at the same time); false when none is pending. */
  advanceToNext (): boolean {
    const next = this.timers.reduce<number | undefined>((min, t) => min === undefined || t.at < min ? t.at : min, undefined)
    if (next === undefined) return false
    this.advance(Math.max(0, next - this.t))
    return true
  }

  /** Moves time forward by `ms`, running every timer that falls due (including ones they schedule). */
  advance (ms: number): void {
    const end = this.t + ms
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0]
      if (due === undefined) break
      this.timers = this.timers.filter((t) => t !== due)
      this.t = Math.max(this.t, due.at)
      due.fn()
    }
    this.t = end
  }
}
