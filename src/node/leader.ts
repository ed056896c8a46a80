// The leader's loop: apply queued operator commands and cloud results, run the scheduler, propose
// the next document, and answer each command once its document is committed. One proposal is in
// flight at a time, so every change (voter changes included) commits before the next is made.
import { applyCommand, type Command, type CommandErrorCode } from '../core/commands.js'
import type { Consensus } from '../core/consensus/consensus.js'
import type { Observed } from '../core/observed.js'
import { planCommand, type PlanResult } from '../core/plan.js'
import { newLeaderMemory, schedule, type LeaderMemory, type SchedulerConfig } from '../core/scheduler.js'
import { compareDocId, type ClusterDoc, type DocId, type NodeId } from '../core/types.js'
import { clip, DOC_EVENTS, describeCommand, leaderEventId, noteSubject, type ClusterEvent, type EventKind } from '../events/event.js'
import { checkDoc } from '../mesh/codec.js'
import type { Logger } from '../util/log.js'

export type SubmitResult =
  | { ok: true, message: string, version: number }
  | { ok: false, code: CommandErrorCode | 'NOT_LEADER' | 'TIMEOUT', message: string }

export type PlanAnswerResult = PlanResult | { ok: false, code: 'NOT_LEADER', message: string }

interface Pending {
  cmd: Command
  /** Who asked (operator commands), for the event log. */
  by?: string
  resolve: (r: SubmitResult) => void
  /** Internal results (from the cloud executor) have no waiter that cares about errors. */
  internal: boolean
}

interface InFlight {
  id: DocId
  waiters: Array<{ resolve: (r: SubmitResult) => void, message: string }>
}

export interface LeaderLoopDeps {
  self: NodeId
  consensus: Consensus
  observe: (now: number) => Observed
  logger: Logger
  /** Called after each proposal so the caller can flush consensus output. */
  flush: () => void
  /** How long a submitted command waits for its document to commit. @default 10000 */
  commitTimeoutMs?: number
  scheduler?: SchedulerConfig
  /** Called for every document this loop proposes (the simulator checks who acts, and when). */
  onPropose?: (id: DocId, mayAct: boolean) => void
  /** Every decision event this loop records (it also rides in the next document it proposes). */
  onEvent?: (e: ClusterEvent) => void
  /** Wall-clock time for event stamps (the loop's `now` may be monotonic). @default now */
  wallClock?: (now: number) => number
}

/** Decision events waiting for the next proposal are capped (a leader that cannot propose keeps only the newest). */
const MAX_PENDING_EVENTS = 100

export class LeaderLoop {
  private queue: Pending[] = []
  private inflight: InFlight | null = null
  private inflightSince = 0
  private mem: LeaderMemory = newLeaderMemory()
  private wasLeader = false
  private lastNotes = new Set<string>()
  /** Decision events not yet carried by a proposed document. */
  private pendingEvents: ClusterEvent[] = []
  private eventCounter = 0

  constructor (private readonly deps: LeaderLoopDeps) {}

  /** Queue an operator command; resolves once applied and committed, or with the reason it was not. */
  async submit (cmd: Command, by?: string): Promise<SubmitResult> {
    if (this.deps.consensus.currentRole !== 'leader') return { ok: false, code: 'NOT_LEADER', message: 'this node is not the leader' }
    return await new Promise(resolve => this.queue.push({ cmd, resolve, internal: false, ...(by ? { by } : {}) }))
  }

  /**
   * What the command would lead to, without proposing anything (plan / --dry-run): from the
   * latest document this leader made, with copies of its observations and memory.
   */
  plan (cmd: Command | undefined, now: number): PlanAnswerResult {
    const c = this.deps.consensus
    if (c.currentRole !== 'leader' || !c.acceptedDoc) return { ok: false, code: 'NOT_LEADER', message: 'this node is not the leader' }
    return planCommand({ doc: c.acceptedDoc, obs: this.deps.observe(now), mem: this.mem, now, term: c.currentTerm, self: this.deps.self, ...(cmd ? { cmd } : {}), ...(this.deps.scheduler ? { cfg: this.deps.scheduler } : {}) })
  }

  /** Queue a cloud result (launch done, node terminated, volume moved). */
  report (cmd: Command): void {
    this.queue.push({ cmd, resolve: () => {}, internal: true })
  }

  noteLaunchFailure (now: number): void {
    this.mem.lastLaunchFailure = now
  }

  tick (now: number): void {
    const c = this.deps.consensus
    if (c.currentRole !== 'leader') {
      if (this.wasLeader) this.abandon('leadership lost')
      this.wasLeader = false
      return
    }
    if (!this.wasLeader) {
      this.mem = newLeaderMemory()
      this.wasLeader = true
      this.eventCounter = 0
      this.pendingEvents = []
      this.record(now, 'leader', this.deps.self, `${this.deps.self} leads term ${c.currentTerm}`, undefined, leaderEventId(c.currentTerm, this.deps.self))
    }
    if (this.inflight) {
      if (compareDocId(c.commit, this.inflight.id) >= 0) {
        for (const w of this.inflight.waiters) w.resolve({ ok: true, message: w.message, version: this.inflight.id.version })
        this.inflight = null
      } else {
        if (now - this.inflightSince > (this.deps.commitTimeoutMs ?? 10_000) && this.inflight.waiters.length > 0) {
          this.deps.logger.error({ doc: this.inflight.id, leaseValid: c.leaseValid(now) }, 'a proposal is not committed after the commit timeout; a majority of voters has not persisted it')
          for (const w of this.inflight.waiters) w.resolve({ ok: false, code: 'TIMEOUT', message: 'the change was not committed in time (no majority of voters?); it may still apply' })
          this.inflight.waiters = []
        }
        return
      }
    }
    // Act only with a lease and on a committed document of our own term.
    if (!c.canAct(now)) return
    let doc: ClusterDoc = c.acceptedDoc!
    const obs = this.deps.observe(now)
    const waiters: InFlight['waiters'] = []
    const queue = this.queue
    this.queue = []
    for (const p of queue) {
      const r = applyCommand(doc, p.cmd, obs)
      const invalid = r.ok ? checkDoc(r.doc) : undefined
      if (r.ok && invalid) {
        // Peers would reject the document and nothing would ever commit: refuse the command instead.
        this.deps.logger.error({ command: p.cmd, invalid }, 'command would produce an invalid document; refused')
        p.resolve({ ok: false, code: 'BAD_REQUEST', message: `refused: the change would produce an invalid cluster document (${invalid})` })
      } else if (r.ok) {
        doc = r.doc
        if (!p.internal) waiters.push({ resolve: p.resolve, message: r.message })
        this.deps.logger.info({ command: p.cmd.type, message: r.message }, 'command applied')
        const d = describeCommand(p.cmd)
        this.record(now, p.internal ? 'cloud' : 'command', d.subject, p.internal ? d.what : `${d.what}: ${r.message}`, p.by)
      } else {
        if (p.internal) this.deps.logger.warn({ command: p.cmd, error: r.message }, 'cloud result not applied')
        p.resolve({ ok: false, code: r.code, message: r.message })
      }
    }
    const s = schedule({ doc, obs, mem: this.mem, now, term: c.currentTerm, self: this.deps.self, ...(this.deps.scheduler ? { cfg: this.deps.scheduler } : {}) })
    const invalid = s.next ? checkDoc(s.next) : undefined
    if (invalid) this.deps.logger.error({ invalid }, 'the scheduler produced an invalid document; not proposed (a bug: please report it)')
    else if (s.next) doc = s.next
    // A note repeated tick after tick ("waiting for db") is logged once. An autoscaling decision
    // is logged with its inputs (metric average, target, instances counted, reason).
    const scaled = new Map(s.scaled.map(({ note, ...dec }) => [note, dec]))
    for (const note of s.notes) {
      const dec = scaled.get(note)
      if (!dec && this.lastNotes.has(note)) continue
      this.deps.logger.info({ term: c.currentTerm, ...(dec ? { autoscale: dec } : {}) }, note)
      this.record(now, 'decision', noteSubject(note), note)
    }
    this.lastNotes = new Set(s.notes)
    if (waiters.length === 0 && (doc === c.acceptedDoc || JSON.stringify(doc) === JSON.stringify(c.acceptedDoc))) return
    // The decisions since the last proposal ride in this one (bounded), so they survive this leader.
    if (this.pendingEvents.length > 0) {
      doc = { ...doc, events: [...(doc.events ?? []), ...this.pendingEvents].slice(-DOC_EVENTS) }
      this.pendingEvents = []
    }
    const { term: _t, version: _v, ...content } = doc
    // Whether we may act is judged as we act: a voter change takes effect with the proposal itself,
    // and the lease under the new voter set is only established by the next acknowledgements.
    const mayAct = c.canAct(now)
    const id = c.propose(content, now)
    if (!id) { for (const w of waiters) w.resolve({ ok: false, code: 'NOT_LEADER', message: 'lost leadership' }); return }
    this.inflight = { id, waiters }
    this.inflightSince = now
    this.deps.onPropose?.(id, mayAct)
    this.deps.flush()
  }

  private record (now: number, kind: EventKind, subject: string, reason: string, by?: string, id?: string): void {
    const term = this.deps.consensus.currentTerm
    // One leader per term, so term, leader and a counter make an id no other event has.
    const e: ClusterEvent = { id: id ?? `${term}.${this.deps.self}.${++this.eventCounter}`, at: new Date(this.deps.wallClock?.(now) ?? now).toISOString(), term, node: this.deps.self, kind, subject: clip(subject, 128), reason: clip(reason), ...(by ? { by: clip(by, 128) } : {}) }
    this.pendingEvents.push(e)
    if (this.pendingEvents.length > MAX_PENDING_EVENTS) this.pendingEvents.shift()
    this.deps.onEvent?.(e)
  }

  private abandon (why: string): void {
    for (const p of this.queue) p.resolve({ ok: false, code: 'NOT_LEADER', message: why })
    this.queue = []
    if (this.inflight) for (const w of this.inflight.waiters) w.resolve({ ok: false, code: 'NOT_LEADER', message: `${why}; the change may or may not apply` })
    this.inflight = null
  }
}
