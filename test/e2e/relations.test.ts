// Relations on real processes: dependents follow their dependencies without anyone touching them,
// and a change re-renders exactly the services that depend on what changed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusReport } from '../../src/core/status.js'
import { balancerUrl, settled, startCluster, type TestCluster } from '../helpers/cluster.js'

let c: TestCluster

beforeAll(async () => {
  c = await startCluster({ net: '127.0.25' })
  const r = await c.cli('launch_cluster')
  if (r.code !== 0) throw new Error(r.stderr)
  await c.waitFor('all ONLINE', settled)
})
afterAll(async () => { await c?.cleanup() })

/** instance id → how many times its files were re-rendered with new content. */
function rerenders (s: StatusReport): Map<string, number> {
  return new Map(s.services.flatMap(v => v.instances.map(i => [i.id, i.rerenders ?? 0] as [string, number])))
}

function changed (before: StatusReport, after: StatusReport): string[] {
  const a = rerenders(before)
  const b = rerenders(after)
  return [...a.keys()].filter(id => b.has(id) && b.get(id)! > a.get(id)!).map(id => id.replace(/-\d+$/, '')).sort()
}

/** Longest stretch of failed requests, in ms, of a loop that records (time, ok). */
function longestOutage (samples: Array<[number, boolean]>): number {
  let worst = 0
  let since: number | undefined
  for (const [t, ok] of samples) {
    if (!ok && since === undefined) since = t
    if (ok && since !== undefined) { worst = Math.max(worst, t - since); since = undefined }
  }
  if (since !== undefined) worst = Math.max(worst, samples.at(-1)![0] - since)
  return worst
}

function sampler (url: string): { stop: () => Promise<Array<[number, boolean]>> } {
  const samples: Array<[number, boolean]> = []
  let on = true
  const done = (async () => {
    while (on) {
      const t = Date.now()
      let ok = false
      try { ok = (await fetch(url, { signal: AbortSignal.timeout(3_000) })).ok } catch {}
      samples.push([t, ok])
      await new Promise(r => setTimeout(r, 20))
    }
  })()
  return { stop: async () => { on = false; await done; return samples } }
}

describe('relations', () => {
  it('propagate_service www re-renders the balancer and nothing else', async () => {
    const before = await c.status()
    expect((await c.cli('propagate_service', 'www')).code).toBe(0)
    const after = await c.waitFor('two www', s => settled(s) && s.services.find(v => v.name === 'www')!.current === 2)
    expect(changed(before, after)).toEqual(['lb'])
    // The balancer was given both www instances.
    const lb = after.services.find(v => v.name === 'lb')!.instances[0]!
    expect(lb.deps!.www).toHaveLength(2)
    expect(lb.onChange).toMatchObject({ action: 'reload', ok: true })
  })

  it('scaling app re-renders the balancer only', async () => {
    const before = await c.status()
    expect((await c.cli('scale', 'app', '2')).code).toBe(0)
    const after = await c.waitFor('two apps', s => settled(s) && s.services.find(v => v.name === 'app')!.current === 2)
    expect(changed(before, after)).toEqual(['lb'])
  })

  it('migrating the db: apps follow it without a restart, /api is out for at most 5 s, / never; only app re-renders', async () => {
    const s0 = await c.waitFor('settled', settled)
    const lb = balancerUrl(s0)
    expect((await fetch(new URL('/api/kv/answer', lb), { method: 'PUT', body: '42' })).status).toBeLessThan(300)
    const apps0 = s0.services.find(v => v.name === 'app')!.instances.map(i => i.id).sort()
    const db0 = s0.services.find(v => v.name === 'db')!.instances[0]!
    const api = sampler(new URL('/api', lb).toString())
    const www = sampler(lb)
    const r = await c.cli('migrate_service', db0.id)
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const s1 = await c.waitFor('settled after the move', settled)
    await new Promise(res => setTimeout(res, 500))
    const apiSamples = await api.stop()
    const wwwSamples = await www.stop()
    const db1 = s1.services.find(v => v.name === 'db')!.instances[0]!
    expect(db1.node).not.toBe(db0.node)
    // Same app instances (nobody restarted them by hand, nor did wakame) now point at the new db.
    const apps1 = s1.services.find(v => v.name === 'app')!.instances
    expect(apps1.map(i => i.id).sort()).toEqual(apps0)
    for (const a of apps1) {
      expect(a.deps!.db).toEqual([`${db1.ip}:${db1.port}`])
      expect(a.onChange).toMatchObject({ action: 'reload', ok: true })
    }
    expect(await (await fetch(new URL('/api/kv/answer', lb))).text()).toBe('42')
    const outage = longestOutage(apiSamples)
    console.log(`db move: /api longest outage ${outage} ms over ${apiSamples.length} requests (${apiSamples.filter(x => !x[1]).length} failed); / failed ${wwwSamples.filter(x => !x[1]).length} of ${wwwSamples.length}`)
    expect(outage).toBeLessThanOrEqual(5_000)
    expect(wwwSamples.filter(x => !x[1])).toEqual([])
    expect(changed(s0, s1)).toEqual(['app', 'app'])
  })
})
