// A bounded, deduplicating event list (pure: no I/O). Each appended event gets the next sequence
// number; the oldest go once the bound is reached.
import type { ClusterEvent } from './event.js'

export interface EventQuery {
  /** Events after this sequence number, or (an ISO time) at or after this time. */
  since?: number | string
  /** At most this many, the newest of those that match. */
  limit?: number
}

export class EventRing {
  private events: ClusterEvent[] = []
  private readonly ids = new Set<string>()
  private nextSeq = 1

  constructor (readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new Error('max must be a positive integer')
  }

  /** Restore events read back from disk (their seq kept), oldest first. */
  restore (events: ClusterEvent[]): void {
    for (const e of events) {
      if (this.ids.has(e.id) || e.seq === undefined || e.seq < this.nextSeq) continue
      this.push(e)
      this.nextSeq = e.seq + 1
    }
  }

  /** The stored event (with its seq), or undefined when an event with this id is already held. */
  append (e: ClusterEvent): ClusterEvent | undefined {
    if (this.ids.has(e.id)) return undefined
    const stored = { ...e, seq: this.nextSeq++ }
    this.push(stored)
    return stored
  }

  has (id: string): boolean { return this.ids.has(id) }

  get size (): number { return this.events.length }

  /** Highest seq assigned so far (0: none). */
  get lastSeq (): number { return this.nextSeq - 1 }

  query (q: EventQuery = {}): ClusterEvent[] {
    let out = this.events
    if (typeof q.since === 'number') {
      const since = q.since
      // Sorted by seq: find the first one after `since` without scanning everything.
      let lo = 0
      let hi = out.length
      while (lo < hi) { const mid = (lo + hi) >> 1; if (out[mid]!.seq! <= since) lo = mid + 1; else hi = mid }
      out = out.slice(lo)
    } else if (typeof q.since === 'string') {
      const t = Date.parse(q.since)
      out = out.filter(e => Date.parse(e.at) >= t)
    }
    if (q.limit === undefined || out.length <= q.limit) return out.slice()
    // After a point: the next `limit` (a follower pages on; nothing is skipped). Otherwise the newest.
    return q.since !== undefined ? out.slice(0, q.limit) : out.slice(out.length - q.limit)
  }

  all (): ClusterEvent[] { return this.events.slice() }

  private push (e: ClusterEvent): void {
    this.events.push(e)
    this.ids.add(e.id)
    while (this.events.length > this.max) this.ids.delete(this.events.shift()!.id)
  }
}
