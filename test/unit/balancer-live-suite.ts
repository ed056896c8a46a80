// One suite run against every external balancer kind (HAProxy, nginx, Apache), on real processes:
// validate → install → reload under a steady request loop, bursts, identical configs, empty
// backends, refused configs, membership change → first request by the new member, keep-alive
// clients through reloads. Figures are printed with a `[kind]` prefix.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { findProgram, probeConfigId } from '../../src/balancers/exec.js'
import { KIND_PROGRAMS } from '../../src/balancers/kinds.js'
import { BalancerDegradedError, type BalancerKind } from '../../src/balancers/runtime.js'
import { cleanupAll, get, HOST, median, requestLoop, served, startBackend, startLive, waitUntil, type Backend, type Live } from './balancer-live-helpers.js'

export interface SuiteOptions {
  /** Bursts to run (the last change must be live in every one). */
  trials: number
  /** Keep-alive client errors allowed through 10 reloads (undefined: measured and printed only). */
  keepAliveErrors?: number
  /** Extra runtime options (HAProxy: runtimeApi false, so that changes really reload). */
  runtimeApi?: boolean
}

const configIdOf = (text: string) => /# config (\w+)/.exec(text)![1]

/** Replace the member set: one change; measures from apply() to the first request the newcomer served. */
export async function measureJoins (lb: Live, backends: Backend[], loop: ReturnType<typeof requestLoop>): Promise<{ seen: number[], live: number[] }> {
  const seen: number[] = []
  const live: number[] = []
  for (let i = 1; i < backends.length; i++) {
    const b = backends[i]!
    const t0 = performance.now()
    await lb.rt.apply(lb.rt.render(lb.input({ www: [b.endpoint], app: [] })))
    live.push(lb.rt.stats.lastLiveMs ?? NaN)
    await waitUntil(`${b.id} served`, () => loop.stats.firstSeen.has(b.id), 3_000)
    seen.push(loop.stats.firstSeen.get(b.id)! - t0)
  }
  return { seen, live }
}

export function liveSuite (kind: Exclude<BalancerKind, 'builtin'>, opts: SuiteOptions): void {
  const installed = findProgram(KIND_PROGRAMS[kind]) !== undefined
  if (!installed) console.warn(`${KIND_PROGRAMS[kind][0]} is not installed: skipping the live ${kind} tests (apt-get install ${KIND_PROGRAMS[kind][0]})`)
  const extra = opts.runtimeApi === undefined ? {} : { runtimeApi: opts.runtimeApi }

  describe.skipIf(!installed)(`${kind} live`, () => {
    afterEach(cleanupAll)

    it('validates, installs and reloads under a steady request loop: 10 back-to-back reloads, each confirmed, 0 failed requests', async () => {
      const [a, b, c] = await Promise.all(['www-a', 'www-b', 'www-c'].map(startBackend))
      const lb = await startLive(kind, { www: [a!.endpoint], app: [] }, extra)
      const loop = requestLoop(lb.url('/'), { clients: 2 })
      const ms: number[] = []
      for (const set of [[a, b], [b], [b, c], [c], [a, c], [a], [a, b, c], [b], [a, b], [a, b, c]]) {
        expect(await lb.rt.apply(lb.rt.render(lb.input({ www: set.map(x => x!.endpoint), app: [] })))).toMatch(/^reloaded/)
        ms.push(lb.rt.stats.lastLiveMs!)
      }
      const res = await loop.stop()
      console.log(`[${kind}] reload: validate + install + reload until confirmed: median ${median(ms).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms; ${res.failed} failed of ${res.ok + res.failed} requests`)
      expect(res.failed, res.errors.slice(0, 5).join(', ')).toBe(0)
      expect(res.ok).toBeGreaterThan(30)
      expect(lb.rt.stats).toMatchObject({ reloads: 10, invalid: 0 })
      expect(await served(lb.url('/'))).toEqual(new Set(['www-a', 'www-b', 'www-c']))
    })

    it(`a burst of 10 changes within 100 ms: at most 2 reloads and the last change live, ${opts.trials} of ${opts.trials} trials`, async () => {
      const backends = await Promise.all(['www-a', 'www-b', 'www-c', 'www-d'].map(startBackend))
      const lb = await startLive(kind, { www: [backends[0]!.endpoint], app: [] }, { ...extra, coalesceMs: 50 })
      const loop = requestLoop(lb.url('/'), { clients: 2 })
      const counts: number[] = []
      for (let trial = 0; trial < opts.trials; trial++) {
        const before = lb.rt.stats.reloads + lb.rt.stats.runtimeChanges
        // A different non-empty subset each step; the final one differs from trial to trial.
        const texts = Array.from({ length: 10 }, (_, i) => {
          const set = backends.filter((_, k) => ((trial * 10 + i + 1) >> k) & 1)
          return lb.rt.render(lb.input({ www: (set.length ? set : [backends[trial % 4]!]).map(x => x.endpoint), app: [] }))
        })
        const last = texts[9]!
        // Scheduled up front, 10 ms apart: timers keep their order even if the event loop is late.
        await Promise.all(texts.map((t, i) => new Promise<string>((resolve, reject) => setTimeout(() => { lb.rt.apply(t).then(resolve, reject) }, i * 10))))
        counts.push(lb.rt.stats.reloads + lb.rt.stats.runtimeChanges - before)
        if (lb.rt.stats.runtimeChanges === 0) expect(await probeConfigId({ host: HOST, port: lb.port }), `trial ${trial}`).toBe(configIdOf(last))
        expect(readFileSync(join(lb.dir, lb.rt.configFile), 'utf8')).toBe(last)
      }
      const res = await loop.stop()
      console.log(`[${kind}] changes applied per burst of 10 changes in 100 ms (${opts.trials} trials): ${counts.join(' ')}; the last change live ${opts.trials}/${opts.trials}`)
      expect(Math.max(...counts)).toBeLessThanOrEqual(2)
      expect(res.failed, res.errors.slice(0, 5).join(', ')).toBe(0)
    })

    it('a config identical to the live one causes no reload', async () => {
      const a = await startBackend('www-a')
      const lb = await startLive(kind, { www: [a.endpoint], app: [] }, extra)
      expect(await lb.rt.apply(lb.rt.render(lb.input({ www: [a.endpoint], app: [] })))).toBe('unchanged')
      expect(lb.rt.stats.reloads + lb.rt.stats.runtimeChanges).toBe(0)
    })

    it('a route whose service has no member answers 503 and passes validation; the other route keeps serving', async () => {
      const [w, p] = await Promise.all([startBackend('www-a'), startBackend('app-a')])
      const lb = await startLive(kind, { www: [w.endpoint], app: [p.endpoint] }, extra)
      const loop = requestLoop(lb.url('/api/x'), { clients: 1 })
      await lb.rt.apply(lb.rt.render(lb.input({ www: [], app: [p.endpoint] })))
      expect((await get(lb.url('/'))).status).toBe(503)
      expect((await get(lb.url('/index.html'))).status).toBe(503)
      expect((await get(lb.url('/api/x'))).instance).toBe('app-a')
      expect((await get(lb.url('/_wakame/health'))).status).toBeLessThan(300)
      expect(lb.rt.stats.invalid).toBe(0)
      await lb.rt.apply(lb.rt.render(lb.input({ www: [w.endpoint], app: [] })))
      expect((await get(lb.url('/api'))).status).toBe(503)
      expect((await get(lb.url('/'))).instance).toBe('www-a')
      await lb.rt.apply(lb.rt.render(lb.input({ www: [w.endpoint], app: [p.endpoint] })))
      const res = await loop.stop()
      // Only the moment app truly had no member may fail, and then with a 503.
      expect([...res.byStatus.keys()].every(s => s === 200 || s === 503), JSON.stringify([...res.byStatus])).toBe(true)
      expect(res.errors.filter(e => !e.startsWith('HTTP 503'))).toEqual([])
    })

    it('a refused config is never installed: the last good one stays live and the balancer is degraded', async () => {
      const a = await startBackend('www-a')
      const lb = await startLive(kind, { www: [a.endpoint], app: [] }, extra)
      const id = await probeConfigId({ host: HOST, port: lb.port })
      const good = readFileSync(join(lb.dir, lb.rt.configFile), 'utf8')
      const err = await lb.rt.apply(`${good}no-such-directive on;\n`).then(() => undefined, (e: unknown) => e as Error)
      expect(err).toBeInstanceOf(BalancerDegradedError)
      expect(err?.message).toMatch(/refused by its check.*no-such-directive/s)
      expect(readFileSync(join(lb.dir, lb.rt.configFile), 'utf8')).toBe(good)
      expect(await probeConfigId({ host: HOST, port: lb.port })).toBe(id)
      expect((await get(lb.url('/'))).instance).toBe('www-a')
      // The next good change goes through as usual.
      const b = await startBackend('www-b')
      await lb.rt.apply(lb.rt.render(lb.input({ www: [b.endpoint], app: [] })))
      expect(await served(lb.url('/'))).toEqual(new Set(['www-b']))
    })

    it('membership change → first request served by the new member (measured, printed)', async () => {
      const backends = await Promise.all(Array.from({ length: 12 }, (_, i) => startBackend(`www-${i + 1}`)))
      const lb = await startLive(kind, { www: [backends[0]!.endpoint], app: [] }, extra)
      const loop = requestLoop(lb.url('/'), { clients: 2 })
      const { seen, live } = await measureJoins(lb, backends, loop)
      const res = await loop.stop()
      console.log(`[${kind}] membership change by reload: live (confirmed) ${median(live).toFixed(0)} ms median; first request served by the new member ${median(seen).toFixed(0)} ms median, ${Math.max(...seen).toFixed(0)} ms max (${seen.length} changes; add the daemon's 50 ms render window)`)
      expect(res.failed, res.errors.slice(0, 5).join(', ')).toBe(0)
      // measureJoins fails when a new member is not served within 3 s; how fast is a figure, printed
      // above and kept in BENCHMARKS.md, not asserted: CI runs other test files alongside.
    })

    it(`keep-alive clients through 10 reloads: ${opts.keepAliveErrors === undefined ? 'errors measured' : `${opts.keepAliveErrors} errors`}`, async () => {
      const [a, b] = await Promise.all([startBackend('www-a'), startBackend('www-b')])
      const lb = await startLive(kind, { www: [a.endpoint], app: [] }, extra)
      const loop = requestLoop(lb.url('/'), { clients: 8, keepAlive: true })
      for (let i = 0; i < 10; i++) {
        await lb.rt.apply(lb.rt.render(lb.input({ www: (i % 2 ? [a] : [a, b]).map(x => x.endpoint), app: [] })))
        await waitUntil('requests after the reload', () => loop.stats.ok + loop.stats.failed > (i + 1) * 40)
      }
      const res = await loop.stop()
      const kinds = [...new Set(res.errors)].join(', ')
      console.log(`[${kind}] keep-alive clients (8) through 10 reloads: ${res.failed} errors in ${res.ok + res.failed} requests${kinds ? ` (${kinds})` : ''}`)
      if (opts.keepAliveErrors !== undefined) expect(res.failed, kinds).toBeLessThanOrEqual(opts.keepAliveErrors)
      // Whatever fails, fails as a closed connection, never as a wrong answer.
      expect(res.errors.filter(e => e.startsWith('HTTP'))).toEqual([])
    })
  })
}
