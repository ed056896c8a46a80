// The event history: the bounded in-memory list, the on-disk log (bounded, kept across restarts,
// torn lines cut, deduplicated), and the leader's decisions riding in the documents it proposes.
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Consensus } from '../../src/core/consensus/consensus.js'
import type { Observed } from '../../src/core/observed.js'
import { emptyDoc, type ClusterDoc, type DocId } from '../../src/core/types.js'
import { DOC_EVENTS, formatEvent, noteSubject, type ClusterEvent } from '../../src/events/event.js'
import { EventLog } from '../../src/events/log.js'
import { EventRing } from '../../src/events/ring.js'
import { checkDoc } from '../../src/mesh/codec.js'
import { renderStatusPage } from '../../src/api/page.js'
import { openApiDocument } from '../../src/api/routes.js'
import type { StatusReport } from '../../src/core/status.js'
import { LeaderLoop } from '../../src/node/leader.js'
import { loadSpecFile } from '../../src/spec/load.js'
import { silentLogger } from '../../src/util/log.js'
import { sinceParam } from '../../src/cli/index.js'
import { EXAMPLE_SPEC } from '../helpers/cluster.js'

const ev = (id: string, over: Partial<ClusterEvent> = {}): ClusterEvent =>
  ({ id, at: '2026-12-04T10:00:00.000Z', term: 1, node: 'vm-1', kind: 'decision', subject: 'app-1', reason: `r ${id}`, ...over })

const dirs: string[] = []
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'wakame-events-')); dirs.push(d); return d }
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }) })

describe('EventRing', () => {
  it('is bounded: the oldest go, sequence numbers keep counting', () => {
    const r = new EventRing(5)
    for (let i = 1; i <= 12; i++) r.append(ev(`e${i}`))
    expect(r.size).toBe(5)
    expect(r.all().map(e => e.id)).toEqual(['e8', 'e9', 'e10', 'e11', 'e12'])
    expect(r.all().map(e => e.seq)).toEqual([8, 9, 10, 11, 12])
    expect(r.lastSeq).toBe(12)
  })

  it('deduplicates by id (an event seen locally and again in the document)', () => {
    const r = new EventRing(10)
    expect(r.append(ev('a'))?.seq).toBe(1)
    expect(r.append(ev('a', { reason: 'again' }))).toBeUndefined()
    expect(r.size).toBe(1)
    expect(r.all()[0]!.reason).toBe('r a')
  })

  it('answers since a sequence number, since a time, and the newest `limit`', () => {
    const r = new EventRing(100)
    for (let i = 1; i <= 10; i++) r.append(ev(`e${i}`, { at: new Date(Date.UTC(2026, 11, 4, 10, i)).toISOString() }))
    expect(r.query({ since: 7 }).map(e => e.seq)).toEqual([8, 9, 10])
    expect(r.query({ since: 10 })).toEqual([])
    expect(r.query({ since: '2026-12-04T10:09:00Z' }).map(e => e.id)).toEqual(['e9', 'e10'])
    expect(r.query({ limit: 2 }).map(e => e.id)).toEqual(['e9', 'e10'])
    // After a point, the next `limit` in order (a follower pages on without skipping any).
    expect(r.query({ since: 2, limit: 3 }).map(e => e.id)).toEqual(['e3', 'e4', 'e5'])
  })
})

describe('EventLog (on disk)', () => {
  it('keeps events, their order and sequence numbers across a restart, and still deduplicates', () => {
    const dir = tmp()
    const a = new EventLog(dir, { max: 100 })
    for (let i = 1; i <= 7; i++) a.append(ev(`e${i}`))
    a.close()
    const b = new EventLog(dir, { max: 100 })
    expect(b.query().map(e => [e.id, e.seq])).toEqual([1, 2, 3, 4, 5, 6, 7].map(i => [`e${i}`, i]))
    expect(b.append(ev('e3'))).toBe(false)
    expect(b.append(ev('e8'))).toBe(true)
    expect(b.query({ since: 7 }).map(e => e.seq)).toEqual([8])
    expect(b.problems).toEqual([])
    b.close()
  })

  it('survives a crash without close (appends reach the file at once)', () => {
    const dir = tmp()
    const a = new EventLog(dir, { max: 100 })
    a.append(ev('x1'))
    a.append(ev('x2'))
    // No close(), no sync(): a killed daemon. The kernel has the writes.
    const b = new EventLog(dir, { max: 100 })
    expect(b.query().map(e => e.id)).toEqual(['x1', 'x2'])
    b.close()
    a.close()
  })

  it('is bounded on disk: two segments rotated by rename hold at most `max` events', () => {
    const dir = tmp()
    const log = new EventLog(dir, { max: 10 })
    for (let i = 1; i <= 55; i++) log.append(ev(`e${i}`, { reason: 'x'.repeat(5000) }))
    log.close()
    const files = readdirSync(dir).sort()
    expect(files).toEqual(['events.current.jsonl', 'events.previous.jsonl'])
    const lines = files.flatMap(f => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean))
    expect(lines.length).toBeLessThanOrEqual(10)
    // Each event is clipped, so the bound in count is a bound in bytes.
    for (const l of lines) expect(l.length).toBeLessThan(2048)
    const again = new EventLog(dir, { max: 10 })
    const ids = again.query().map(e => e.id)
    expect(ids.at(-1)).toBe('e55')
    expect(ids.length).toBeLessThanOrEqual(10)
    expect(ids.length).toBeGreaterThanOrEqual(5)
    again.close()
  })

  it('cuts a torn last line and skips garbage, keeping every whole event', () => {
    const dir = tmp()
    const a = new EventLog(dir, { max: 100 })
    a.append(ev('ok1'))
    a.append(ev('ok2'))
    a.close()
    appendFileSync(join(dir, 'events.current.jsonl'), 'not json\n{"id":"torn","seq":3,"at":"2026-')
    const b = new EventLog(dir, { max: 100 })
    expect(b.query().map(e => e.id)).toEqual(['ok1', 'ok2'])
    expect(b.problems.join('\n')).toMatch(/torn last line/)
    expect(b.problems.join('\n')).toMatch(/1 unreadable line/)
    b.append(ev('ok3'))
    b.close()
    const c = new EventLog(dir, { max: 100 })
    expect(c.query().map(e => e.id)).toEqual(['ok1', 'ok2', 'ok3'])
    c.close()
  })
})

describe('the status page', () => {
  it('escapes every value server side, and its script never parses data as HTML', () => {
    const hostile = '<img src=x onerror=alert(1)>'
    const status = { cluster: 'c', answeredBy: 'vm-1', leader: 'vm-1', term: 1, committed: null, phase: 'up', settled: true, warnings: [hostile], services: [], nodes: [], launches: [], volumes: [], addresses: [] } as unknown as StatusReport
    const html = renderStatusPage(status, [ev('e1', { reason: hostile, subject: hostile })])
    expect(html).not.toContain('<img')
    expect(html).toContain('&#60;img src=x onerror=alert(1)&#62;')
    expect(html).not.toMatch(/innerHTML|insertAdjacentHTML|document\.write/)
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']?https?:/)
  })
})

describe('GET /v1/events in the OpenAPI document', () => {
  it('documents since and limit as optional query parameters with their bounds', () => {
    const op = (openApiDocument().paths as Record<string, { get: { parameters: Array<{ name: string, in: string, required: boolean, schema: Record<string, unknown> }>, responses: Record<string, unknown> } }>)['/v1/events']!.get
    expect(op.parameters.map(p => [p.name, p.in, p.required])).toEqual([['since', 'query', false], ['limit', 'query', false]])
    expect(op.parameters[1]!.schema).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000 })
    expect(op.parameters[0]!.schema.pattern).toBeTypeOf('string')
    expect(Object.keys(op.responses).sort()).toEqual(['200', '400'])
  })
})

describe('event helpers', () => {
  it('finds the subject of scheduler notes', () => {
    expect(noteSubject('app-3: place on vm-2')).toBe('app-3')
    expect(noteSubject('node vm-4 is dead: terminate it')).toBe('vm-4')
    expect(noteSubject('launch a VM (l-7): min_nodes is 3')).toBe('l-7')
    expect(noteSubject('voter vm-2 added')).toBe('vm-2')
    expect(noteSubject('3 instance(s) wait for room')).toBe('')
  })

  it('formats one line per event', () => {
    expect(formatEvent(ev('a', { kind: 'instance', from: 'Starting', to: 'ONLINE', reason: 'on vm-2', subject: 'app-2' })))
      .toBe('2026-12-04T10:00:00.000Z t1 vm-1   instance app-2 Starting -> ONLINE: on vm-2')
    expect(formatEvent(ev('b', { kind: 'command', subject: '', reason: 'launch_cluster: launching', by: 'vm-1 from 127.0.0.1' })))
      .toBe('2026-12-04T10:00:00.000Z t1 vm-1   command  launch_cluster: launching (by vm-1 from 127.0.0.1)')
  })

  it('--since takes a duration, an ISO time or a sequence number, and rejects the rest', () => {
    const now = Date.UTC(2026, 11, 4, 12, 0, 0)
    expect(sinceParam('10m', now)).toBe('2026-12-04T11:50:00.000Z')
    expect(sinceParam('2h', now)).toBe('2026-12-04T10:00:00.000Z')
    expect(sinceParam('2026-12-04T11:00:00Z', now)).toBe('2026-12-04T11:00:00.000Z')
    expect(sinceParam('42', now)).toBe('42')
    expect(() => sinceParam('yesterday', now)).toThrow(/not a duration/)
  })
})

/** Just enough of Consensus for the leader's loop: a leader whose proposals commit at once. */
function fakeConsensus (self: string): Consensus & { proposals: ClusterDoc[] } {
  let doc: ClusterDoc = { ...emptyDoc('t'), term: 3, version: 1, voters: [self], nodes: { [self]: { id: self, ip: '10.0.0.1', peer: self } } }
  const proposals: ClusterDoc[] = []
  const c = {
    proposals,
    currentRole: 'leader',
    currentTerm: 3,
    get acceptedDoc () { return doc },
    get committed () { return doc },
    get commit (): DocId { return { term: doc.term, version: doc.version } },
    canAct: () => true,
    leaseValid: () => true,
    propose: (content: Omit<ClusterDoc, 'term' | 'version'>): DocId => {
      doc = { ...content, term: 3, version: doc.version + 1 } as ClusterDoc
      proposals.push(doc)
      return { term: 3, version: doc.version }
    }
  }
  return c as unknown as Consensus & { proposals: ClusterDoc[] }
}

describe('the leader\'s decisions in the document', () => {
  it('every decision is logged at once and carried (bounded) by the next document; quiet ticks propose nothing', async () => {
    const c = fakeConsensus('vm-1')
    const seen: ClusterEvent[] = []
    const obs = (): Observed => ({ nodes: new Map([['vm-1', { id: 'vm-1', status: 'alive', ip: '10.0.0.1', peer: 'vm-1', current: true, committed: c.commit, instances: {} }]]) })
    const loop = new LeaderLoop({ self: 'vm-1', consensus: c, observe: obs, logger: silentLogger(), flush: () => {}, onEvent: e => seen.push(e), wallClock: () => Date.UTC(2026, 11, 4) })
    loop.tick(1)
    const launched = loop.submit({ type: 'launch', spec: loadSpecFile(EXAMPLE_SPEC) }, 'vm-1 from 127.0.0.1')
    for (let t = 2; t < 40; t++) loop.tick(t * 100)
    expect((await launched).ok).toBe(true)
    // Enough commands that the document's window must drop older decisions.
    for (let i = 0; i < DOC_EVENTS; i++) {
      const r = loop.submit({ type: 'scale', service: 'app', count: 1 + (i % 2) })
      loop.tick(5_000 + i * 200)
      loop.tick(5_100 + i * 200)
      expect((await r).ok).toBe(true)
    }
    expect(seen.length).toBeGreaterThan(DOC_EVENTS)
    const command = seen.find(e => e.kind === 'command')!
    expect(command).toMatchObject({ subject: '', term: 3, node: 'vm-1', by: 'vm-1 from 127.0.0.1', at: '2026-12-04T00:00:00.000Z' })
    expect(command.reason).toMatch(/^launch_cluster/)
    expect(seen.find(e => e.kind === 'leader')?.reason).toBe('vm-1 leads term 3')
    expect(seen.some(e => e.kind === 'decision' && /^db-\d+$/.test(e.subject) && /place/.test(e.reason))).toBe(true)
    // Ids are unique, and each proposed document carries the newest decisions, at most DOC_EVENTS.
    expect(new Set(seen.map(e => e.id)).size).toBe(seen.length)
    const last = c.proposals.at(-1)!
    expect(last.events!.length).toBe(DOC_EVENTS)
    expect(last.events!.map(e => e.id)).toEqual(seen.slice(-last.events!.length).map(e => e.id))
    expect(checkDoc(last)).toBeUndefined()
    // What the window adds to every gossiped document (reasons are cut at 300 characters).
    const bytes = JSON.stringify(last.events).length
    console.log(`${DOC_EVENTS} decision events add ${bytes} bytes to the document (${JSON.stringify(last).length} in all)`)
    expect(bytes).toBeLessThan(DOC_EVENTS * 500)
    // Nothing new to do: no proposal just for events.
    const n = c.proposals.length
    for (let t = 200; t < 205; t++) loop.tick(t * 100)
    expect(c.proposals.length).toBe(n)
  })
})
