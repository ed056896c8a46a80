// The pure autoscaler, driven on simulated time by a small model of a service: instances take a
// while to start, take their share of a total load once started, and count only past warm-up.
import fc from 'fast-check'
import { createServer, type Server } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { autoscale, describeDecision, newScaleMemory, type AutoscaleDecision } from '../../src/core/autoscaler.js'
import type { Observed } from '../../src/core/observed.js'
import { newLeaderMemory, schedule } from '../../src/core/scheduler.js'
import { buildStatus } from '../../src/core/status.js'
import { formatStatus } from '../../src/cli/format.js'
import { emptyDoc, type ClusterDoc } from '../../src/core/types.js'
import { checkHttp, parseMetric } from '../../src/supervisor/health.js'
import { loadSpecText } from '../../src/spec/load.js'
import { ScaleSchema, type TargetScaleSpec } from '../../src/spec/schema.js'
import { InputError } from '../../src/util/errors.js'

const STEP_MS = 1_000
/** Runs of the noisy property (AUTOSCALE_RUNS=3000 for a longer search). */
const RUNS = Number(process.env.AUTOSCALE_RUNS ?? 200)
const START_MS = 2_000

function policy (over: Partial<TargetScaleSpec> = {}): TargetScaleSpec {
  return { ...ScaleSchema.parse({ policy: 'target', metric: 'reported', target: 1, scale_out_cooldown_ms: 10_000, scale_in_cooldown_ms: 60_000, scale_in_window_ms: 30_000, warmup_ms: 5_000 }), ...over } as TargetScaleSpec
}

interface RunOptions {
  p: TargetScaleSpec
  min: number
  max: number
  start: number
  /** Total load at time t. */
  load: (t: number) => number
  /** Multiplicative noise of the k-th sample (0 = exact). */
  noise: (k: number) => number
  durationMs: number
}

/** Runs the model; returns every decision that changed the count, and the count over time. */
function run (o: RunOptions): { actions: AutoscaleDecision[], final: number, counts: number[] } {
  const mem = newScaleMemory()
  let desired = o.start
  // Each instance: when it started serving (takes load) — START_MS after it was added.
  let instances: number[] = Array.from({ length: desired }, () => -Infinity)
  const actions: AutoscaleDecision[] = []
  const counts: number[] = []
  let k = 0
  for (let now = 0; now <= o.durationMs; now += STEP_MS) {
    const serving = instances.filter(at => at <= now).length
    const perInstance = serving > 0 ? o.load(now) / serving : 0
    const warm = instances.filter(at => at + o.p.warmup_ms <= now)
    const samples = warm.map(() => Math.max(0, perInstance * (1 + o.noise(k++))))
    const dec = autoscale({ service: 'app', policy: o.p, min: o.min, max: o.max, desired, samples, excluded: instances.length - warm.length, now, mem })
    if (dec.to !== desired) {
      actions.push(dec)
      if (dec.to > desired) instances.push(...Array.from({ length: dec.to - desired }, () => now + START_MS))
      else instances = instances.slice(0, dec.to) // the newest go first
      desired = dec.to
    }
    counts.push(desired)
  }
  return { actions, final: desired, counts }
}

/** Direction changes: out then in, or in then out. */
function reversals (actions: AutoscaleDecision[]): number {
  let r = 0
  for (let i = 1; i < actions.length; i++) if (actions[i]!.action !== actions[i - 1]!.action) r++
  return r
}

describe('autoscaler (target tracking)', () => {
  it('a load burst takes the service from 1 to 3 in one step, and back to 1 one at a time', () => {
    const p = policy()
    const r = run({ p, min: 1, max: 5, start: 1, load: t => t >= 20_000 && t < 120_000 ? 2.5 : 0.3, noise: () => 0, durationMs: 400_000 })
    expect(r.actions.map(a => `${a.action} ${a.from}->${a.to}`)).toEqual(['out 1->3', 'in 3->2', 'in 2->1'])
    const out = r.actions[0]!
    expect(out).toMatchObject({ metric: 'reported', target: 1, instances: 1, average: 2.5 })
    expect(describeDecision(out)).toContain('autoscale app: 1 -> 3 (scale out')
    // Scale-in waits for the window after the load dropped, then for the cooldown between removals.
    const in1 = r.counts.findIndex((c, i) => i * STEP_MS > 120_000 && c === 2) * STEP_MS
    const in2 = r.counts.findIndex((c, i) => i * STEP_MS > 120_000 && c === 1) * STEP_MS
    expect(in1 - 120_000).toBeGreaterThanOrEqual(p.scale_in_window_ms)
    expect(in2 - in1).toBeGreaterThanOrEqual(p.scale_in_cooldown_ms)
  })

  it('never goes beyond max or below min, and clamps a count outside them', () => {
    const r = run({ p: policy(), min: 2, max: 4, start: 2, load: () => 100, noise: () => 0, durationMs: 60_000 })
    expect(r.final).toBe(4)
    expect(r.counts.every(c => c >= 2 && c <= 4)).toBe(true)
    const low = run({ p: policy(), min: 2, max: 4, start: 4, load: () => 0, noise: () => 0, durationMs: 600_000 })
    expect(low.final).toBe(2)
    const mem = newScaleMemory()
    expect(autoscale({ service: 's', policy: policy(), min: 1, max: 3, desired: 7, samples: [0.5], excluded: 0, now: 0, mem })).toMatchObject({ action: 'clamp', to: 3 })
  })

  it('holds without a metric (instances warming up or not reporting)', () => {
    const mem = newScaleMemory()
    const d = autoscale({ service: 's', policy: policy(), min: 1, max: 3, desired: 2, samples: [], excluded: 2, now: 0, mem })
    expect(d).toMatchObject({ action: 'hold', to: 2, average: null })
  })

  it('keeps scale-out in cooldown, and does not add twice for instances still warming up', () => {
    const p = policy({ warmup_ms: 20_000 })
    // Load keeps rising: each scale-out must wait for the cooldown.
    const r = run({ p, min: 1, max: 10, start: 1, load: t => 1.5 + t / 5_000, noise: () => 0, durationMs: 60_000 })
    for (let i = 1; i < r.actions.length; i++) expect(r.actions[i]!.action).toBe('out')
    const outs = r.counts.map((c, i) => ({ c, t: i * STEP_MS })).filter((x, i) => i > 0 && x.c !== r.counts[i - 1])
    for (let i = 1; i < outs.length; i++) expect(outs[i]!.t - outs[i - 1]!.t).toBeGreaterThanOrEqual(p.scale_out_cooldown_ms)
  })

  it('no flapping: with a constant load and bounded adversarial noise the count only ever moves one way', () => {
    const p = policy()
    // Noise within this bound cannot make a scale-out undo a scale-in (see autoscaler.ts).
    const m = p.hysteresis / 2
    const e = (p.tolerance + m) / (2 + p.tolerance - m)
    fc.assert(fc.property(
      fc.double({ min: 0.05, max: 6, noNaN: true }),
      fc.integer({ min: 1, max: 8 }),
      fc.array(fc.double({ min: -e, max: e, noNaN: true }), { minLength: 1, maxLength: 64 }),
      (load, start, noise) => {
        const r = run({ p, min: 1, max: 8, start, load: () => load, noise: k => noise[k % noise.length]!, durationMs: 900_000 })
        expect(reversals(r.actions)).toBe(0)
        expect(r.actions.length).toBeLessThanOrEqual(7)
      }), { numRuns: 200 })
  })

  it('no flapping with a noisy metric around target (±30 % per sample, an hour): few actions, a scale-in never undone', () => {
    const p = policy()
    fc.assert(fc.property(
      fc.double({ min: 0.5, max: 4, noNaN: true }),
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      (load, seed) => {
        let x = seed || 1
        const rand = (): number => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return ((x >>> 0) / 2 ** 32) }
        const r = run({ p, min: 1, max: 8, start: 1, load: () => load, noise: () => (rand() - 0.5) * 0.6, durationMs: 3_600_000 })
        expect(r.actions.length).toBeLessThanOrEqual(4)
        // A first scale-out sized on one noisy sample may overshoot and be corrected by scale-ins;
        // what must never happen is a scale-in undone by a scale-out (the flap).
        const firstIn = r.actions.findIndex(a => a.action === 'in')
        if (firstIn >= 0) expect(r.actions.slice(firstIn).map(a => a.action)).not.toContain('out')
      }), { numRuns: RUNS })
  })

  it('a load that really swings up and down every few minutes: scale-in waits longer each time it is undone', () => {
    const p = policy()
    const r = run({ p, min: 1, max: 6, start: 1, load: t => (Math.floor(t / 240_000) % 2 === 0 ? 0.3 : 2.5), noise: () => 0, durationMs: 3_600_000 })
    const ins = r.actions.filter(a => a.action === 'in')
    // Without damping, each 4-minute low phase would see 2 scale-ins (window 30 s, cooldown 60 s).
    expect(ins.length).toBeLessThan(8)
    expect(r.actions.length).toBeLessThanOrEqual(16)
  })

  it('a load that swings around target every few seconds changes nothing after the first scale-out', () => {
    const p = policy()
    const r = run({ p, min: 1, max: 6, start: 2, load: t => (Math.floor(t / 3_000) % 2 === 0 ? 1.9 : 2.3), noise: () => 0, durationMs: 1_800_000 })
    expect(r.actions.length).toBeLessThanOrEqual(1)
  })
})

describe('the leader\'s scheduler autoscales', () => {
  const spec = loadSpecText(`cluster: { min_nodes: 1, max_nodes: 1, max_instances_per_node: 4 }
services:
  app: { command: [app], port: 9000, max_per_node: 4, min: 1, max: 4, scale: { policy: target, metric: load1, target: 0.6, warmup_ms: 1000 } }
`, 's.yaml', '/')
  const doc = (over: Partial<ClusterDoc> = {}): ClusterDoc => ({
    ...emptyDoc('t'), term: 1, version: 5, voters: ['vm-1'], nodes: { 'vm-1': { id: 'vm-1', ip: '10.0.0.1', peer: 'vm-1' } }, spec, phase: 'up',
    desired: { app: 1 }, instances: { 'app-1': { id: 'app-1', service: 'app', node: 'vm-1', slot: 0, phase: 'run' } }, seq: 1, ...over
  })
  const obs = (load1: number, state: 'ONLINE' | 'Starting' = 'ONLINE'): Observed => ({
    nodes: new Map([['vm-1', { id: 'vm-1', status: 'alive', ip: '10.0.0.1', peer: 'vm-1', current: true, committed: { term: 1, version: 5 }, load1, instances: { 'app-1': { state } } }]])
  })

  it('from the node\'s load average, once the instance is past its warm-up; decisions are notes with their inputs', () => {
    const mem = newLeaderMemory()
    expect(schedule({ doc: doc(), obs: obs(1.8, 'Starting'), mem, now: 0, term: 1, self: 'vm-1' }).next).toBeUndefined()
    expect(schedule({ doc: doc(), obs: obs(1.8), mem, now: 500, term: 1, self: 'vm-1' }).next).toBeUndefined() // ONLINE, warming up
    const s = schedule({ doc: doc(), obs: obs(1.8), mem, now: 1_600, term: 1, self: 'vm-1' })
    expect(s.next?.desired.app).toBe(3)
    expect(Object.values(s.next!.instances).filter(i => i.service === 'app' && i.node === 'vm-1')).toHaveLength(3)
    expect(s.scaled).toEqual([expect.objectContaining({ action: 'out', from: 1, to: 3, metric: 'load1', average: 1.8, target: 0.6, instances: 1, excluded: 0 })])
    expect(s.notes).toContain(s.scaled[0]!.note)
  })

  it('not while the cluster is down, and not for a fixed service', () => {
    const mem = newLeaderMemory()
    schedule({ doc: doc({ phase: 'down' }), obs: obs(5), mem, now: 0, term: 1, self: 'vm-1' })
    const s = schedule({ doc: doc({ phase: 'down' }), obs: obs(5), mem, now: 5_000, term: 1, self: 'vm-1' })
    expect(s.scaled).toEqual([])
    const fixed = structuredClone(spec)
    delete fixed.services.app!.scale
    schedule({ doc: doc({ spec: fixed }), obs: obs(5), mem, now: 6_000, term: 1, self: 'vm-1' })
    expect(schedule({ doc: doc({ spec: fixed }), obs: obs(5), mem, now: 9_000, term: 1, self: 'vm-1' }).next).toBeUndefined()
  })
})

describe('status of an autoscaled service', () => {
  const spec = loadSpecText(`cluster: { min_nodes: 1 }
services:
  app: { command: [app], port: 9000, max_per_node: 2, max: 3, health: { http: { path: /h } }, scale: { policy: target, metric: reported, target: 0.6 } }
`, 's.yaml', '/')
  const doc: ClusterDoc = { ...emptyDoc('t'), term: 1, version: 5, voters: ['vm-1'], nodes: { 'vm-1': { id: 'vm-1', ip: '10.0.0.1', peer: 'vm-1' } }, spec, phase: 'up', desired: { app: 2 },
    instances: { 'app-1': { id: 'app-1', service: 'app', node: 'vm-1', slot: 0, phase: 'run' }, 'app-2': { id: 'app-2', service: 'app', node: 'vm-1', slot: 1, phase: 'run' } }, seq: 2 }
  const status = (metrics: Array<number | undefined>) => {
    const instances = Object.fromEntries(metrics.map((m, i) => [`app-${i + 1}`, { state: 'ONLINE' as const, ...(m !== undefined ? { metric: m } : {}) }]))
    const hb = { node: 'vm-1', peer: 'vm-1', incarnation: 1, seq: 1, ip: '10.0.0.1', mesh: '', api: '', load1: 0, term: 1, leader: 'vm-1', accepted: null, committed: null, joining: false, bootstrapExpect: 1, instances }
    const members = new Map([['vm-1', { id: 'vm-1', status: 'alive' as const, incarnation: 1, seq: 1, rev: 1, heardAt: 0, since: 0, hb }]])
    return buildStatus({ doc, members, self: 'vm-1', leader: 'vm-1', term: 1, now: 0, cluster: 't' })
  }

  it('shows the policy, the metric now and each instance\'s value', () => {
    const s = status([0.5, 0.7])
    expect(s.services[0]!.scale).toEqual({ policy: 'target', metric: 'reported', target: 0.6, value: 0.6, reporting: 2 })
    expect(s.services[0]!.instances.map(i => i.metric)).toEqual([0.5, 0.7])
    expect(s.warnings).toEqual([])
    const text = formatStatus(s)
    expect(text).toContain('autoscale: target reported 0.6, now 0.6 avg over 2')
    expect(text).toMatch(/app-1 .*metric 0\.5/)
  })

  it('warns when no instance reports the metric', () => {
    const s = status([undefined, undefined])
    expect(s.services[0]!.scale).toEqual({ policy: 'target', metric: 'reported', target: 0.6, reporting: 0 })
    expect(s.warnings.join()).toContain('no ONLINE instance reports one')
  })
})

describe('scale spec', () => {
  const problems = (scale: string, extra = ''): string[] => {
    try {
      loadSpecText(`cluster: { min_nodes: 1 }\nservices:\n  app:\n    command: [x]\n    port: 9000\n    min: 1\n    max: 3\n${extra}    scale: ${scale}\n`, 's.yaml', '/')
      return []
    } catch (err) {
      if (err instanceof InputError) return err.problems.map(p => `${p.field ?? ''}: ${p.message}`)
      throw err
    }
  }
  const http = '    health: { http: { path: /health } }\n'

  it('accepts a target policy and fills the defaults', () => {
    const spec = loadSpecText(`services:\n  app:\n    command: [x]\n    port: 9000\n    max: 3\n${http}    scale: { policy: target, metric: reported, target: 0.6 }\n`, 's.yaml', '/')
    expect(spec.services.app!.scale).toMatchObject({ policy: 'target', metric: 'reported', target: 0.6, hysteresis: 0.3, tolerance: 0.1, warmup_ms: 30_000 })
    expect(problems('{ policy: fixed }')).toEqual([])
    expect(problems('{ policy: target, metric: load1, target: 1.5 }')).toEqual([])
  })

  it('rejects bad input with clear messages', () => {
    expect(problems('{ policy: target, metric: load1, target: 0 }').join()).toContain('target must be above 0')
    expect(problems('{ policy: target, metric: load1 }').join()).toContain('policy target needs a target value')
    expect(problems('{ policy: target, target: 1 }').join()).toContain('policy target needs a metric')
    expect(problems('{ policy: fixed, target: 1 }').join()).toContain('policy fixed takes no metric or target')
    expect(problems('{ policy: target, metric: reported, target: 1 }').join()).toContain('give the service a health: { http: ... } check')
    expect(problems('{ policy: target, metric: cpu, target: 1 }').join()).toMatch(/scale\.metric/)
    expect(problems('{ policy: target, metric: load1, target: 1, cooldown: 5 }').join()).toMatch(/cooldown/)
    const minmax = (() => { try { loadSpecText('services:\n  app:\n    command: [x]\n    min: 2\n    max: 2\n    scale: { policy: target, metric: load1, target: 1 }\n', 's.yaml', '/'); return '' } catch (e) { return (e as InputError).problems.map(p => p.message).join() } })()
    expect(minmax).toContain('max (2) must be above min (2)')
  })
})

describe('metric in the health answer', () => {
  let server: Server | undefined
  afterEach(() => { server?.close(); server = undefined })

  it('parses {"metric": n} and nothing else', () => {
    expect(parseMetric('{"metric": 0.75}')).toBe(0.75)
    expect(parseMetric('{"metric": "1"}')).toBeUndefined()
    expect(parseMetric('ok')).toBeUndefined()
    expect(parseMetric('{"metric": 1e300}')).toBeUndefined()
    expect(parseMetric('[1]')).toBeUndefined()
  })

  it('the http check reads it from a healthy answer (a body without one is still healthy)', async () => {
    let body = '{"metric": 2.5}'
    server = createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(body) })
    await new Promise<void>(resolve => server!.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    const seen: Array<number | undefined> = []
    expect(await checkHttp('127.0.0.1', port, '/', 1_000, m => seen.push(m))).toBeNull()
    body = 'fine'
    expect(await checkHttp('127.0.0.1', port, '/', 1_000, m => seen.push(m))).toBeNull()
    body = 'x'.repeat(10_000)
    expect(await checkHttp('127.0.0.1', port, '/', 1_000, m => seen.push(m))).toBeNull()
    expect(seen).toEqual([2.5, undefined, undefined])
  })
})
