// The node's event log on disk: two JSONL segments, the current one appended to and the previous
// one, bounded by count. When the current segment holds half the bound it is renamed over the
// previous one (rename is atomic: a crash leaves the old or the new pair, never a torn segment),
// so the disk holds at most `max` events and reading back never has to rewrite a large file.
// Appends are not fsynced one by one (the kernel keeps them across a daemon crash); sync() is
// called on a timer and at rotation. A line torn by a power loss is cut off at load.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, ftruncateSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { z } from 'zod'
import { clip, type ClusterEvent } from './event.js'
import { EventRing, type EventQuery } from './ring.js'

const CURRENT = 'events.current.jsonl'
const PREVIOUS = 'events.previous.jsonl'

const short = z.string().max(200)
/** What a line must hold to be read back (a hand-edited or foreign line is skipped, not trusted). */
export const EventSchema = z.object({
  id: z.string().min(1).max(200),
  seq: z.number().int().min(1).optional(),
  at: z.string().max(40),
  term: z.number().int().min(0),
  node: short,
  kind: z.enum(['decision', 'command', 'cloud', 'leader', 'member', 'instance']),
  subject: short,
  from: short.optional(),
  to: short.optional(),
  reason: z.string().max(1000),
  by: short.optional()
})

export interface EventLogOptions {
  /** Events kept (memory and disk). @default 2000 */
  max?: number
}

export class EventLog {
  readonly dir: string
  private readonly ring: EventRing
  private readonly segmentMax: number
  private fd: number | undefined
  private inCurrent = 0
  private dirty = false
  private closed = false
  /** Problems found reading the log back (skipped lines), for the daemon to report once. */
  readonly problems: string[] = []

  constructor (dir: string, opts: EventLogOptions = {}) {
    this.dir = dir
    const max = opts.max ?? 2000
    this.ring = new EventRing(max)
    this.segmentMax = Math.max(1, Math.floor(max / 2))
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    this.load()
    this.fd = openSync(join(dir, CURRENT), 'a', 0o600)
  }

  /** Store an event (clipped to the size bounds); false when its id is already held. */
  append (e: ClusterEvent): boolean {
    const stored = this.ring.append(bounded(e))
    if (!stored) return false
    if (!this.closed) {
      // (No file after a failed reopen: try again; the event is in memory either way.)
      this.fd ??= openSync(join(this.dir, CURRENT), 'a', 0o600)
      if (this.inCurrent >= this.segmentMax) this.rotate()
      writeSync(this.fd!, `${JSON.stringify(stored)}\n`)
      this.inCurrent++
      this.dirty = true
    }
    return true
  }

  has (id: string): boolean { return this.ring.has(id) }
  query (q?: EventQuery): ClusterEvent[] { return this.ring.query(q) }
  get lastSeq (): number { return this.ring.lastSeq }

  /** Make what was appended durable. */
  sync (): void {
    if (this.fd === undefined || !this.dirty) return
    fsyncSync(this.fd)
    this.dirty = false
  }

  close (): void {
    this.closed = true
    if (this.fd === undefined) return
    try { this.sync() } finally { closeSync(this.fd); this.fd = undefined }
  }

  private rotate (): void {
    const cur = join(this.dir, CURRENT)
    const fd = this.fd!
    this.fd = undefined
    try { fsyncSync(fd) } finally { closeSync(fd) }
    try {
      renameSync(cur, join(this.dir, PREVIOUS))
      this.inCurrent = 0
      const dfd = openSync(this.dir, 'r')
      try { fsyncSync(dfd) } finally { closeSync(dfd) }
    } finally {
      // Even when the rename failed, appending goes on (to the same segment).
      this.fd = openSync(cur, 'a', 0o600)
      this.dirty = false
    }
  }

  private load (): void {
    const events: ClusterEvent[] = []
    for (const name of [PREVIOUS, CURRENT]) {
      const path = join(this.dir, name)
      if (!existsSync(path)) continue
      let text = readFileSync(path, 'utf8')
      // A last line without its newline was torn (power loss): cut it, or the next append would join it.
      const end = text.lastIndexOf('\n') + 1
      if (end < text.length) {
        this.problems.push(`${path}: a torn last line was cut off`)
        const fd = openSync(path, 'r+')
        try { ftruncateSync(fd, Buffer.byteLength(text.slice(0, end))) } finally { closeSync(fd) }
        text = text.slice(0, end)
      }
      let lines = 0
      let bad = 0
      for (const line of text.split('\n')) {
        if (line === '') continue
        lines++
        let parsed: ClusterEvent | undefined
        try { const r = EventSchema.safeParse(JSON.parse(line)); if (r.success) parsed = r.data as ClusterEvent } catch {}
        if (parsed?.seq !== undefined) events.push(parsed)
        else bad++
      }
      if (bad > 0) this.problems.push(`${path}: ${bad} unreadable line(s) skipped`)
      if (name === CURRENT) this.inCurrent = lines
    }
    this.ring.restore(events.slice(-this.ring.max))
  }
}

/** The size bounds of one event (a stored line stays well under 2 KB). */
export function bounded (e: ClusterEvent): ClusterEvent {
  return {
    ...e,
    subject: clip(e.subject, 128),
    reason: clip(e.reason),
    ...(e.from !== undefined ? { from: clip(e.from, 64) } : {}),
    ...(e.to !== undefined ? { to: clip(e.to, 64) } : {}),
    ...(e.by !== undefined ? { by: clip(e.by, 128) } : {})
  }
}
