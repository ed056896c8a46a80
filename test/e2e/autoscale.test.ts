// Autoscaling on real processes: a one-node cluster whose app instances report a synthetic load
// through their health answers ({"metric": load / live instances}, test/fixtures/autoscale). The
// test drives the load high (app goes 1 -> 3) and low again (back to 1), watching the desired
// count in the status and the leader's logged decisions: few actions, and never back and forth.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { StatusAnswer } from '../../src/api/schemas.js'
import { Client } from '../../src/cli/client.js'
import type { StatusReport } from '../../src/core/status.js'
import { ROOT, startCluster, type TestCluster } from '../helpers/cluster.js'

const APP = join(ROOT, 'test/fixtures/autoscale/load-app.mjs')
let c: TestCluster | undefined
let dir: string
const setLoad = (x: number): void => writeFileSync(join(dir, 'load', 'load'), `${x}\n`)

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wakame-autoscale-'))
  mkdirSync(join(dir, 'load'))
  setLoad(0.2)
  // Short windows so the whole cycle takes seconds; the bands are the defaults.
  writeFileSync(join(dir, 'cluster.yaml'), `cluster: { min_nodes: 1, max_nodes: 1, max_instances_per_node: 4 }
services:
  app:
    command: [node, ${JSON.stringify(APP)}]
    port: 9300
    max_per_node: 3
    min: 1
    max: 3
    env: { LOAD_DIR: ${JSON.stringify(join(dir, 'load'))} }
    health: { http: { path: /health }, interval_ms: 250 }
    stop: { timeout_ms: 2000 }
    drain_timeout_ms: 500
    scale: { policy: target, metric: reported, target: 0.6, warmup_ms: 1000, scale_out_cooldown_ms: 3000, scale_in_cooldown_ms: 4000, scale_in_window_ms: 4000 }
`)
  c = await startCluster({ net: '127.0.60', spec: join(dir, 'cluster.yaml') })
}, 60_000)

afterAll(async () => {
  await c?.cleanup()
  rmSync(dir, { recursive: true, force: true })
})

/** Polls the status, recording every change of app's desired count, until `pred` holds. */
async function watch (trace: number[], pred: (s: StatusReport) => boolean, timeoutMs: number): Promise<StatusReport> {
  const client = new Client({ node: c!.first, tokenFile: c!.tokenFile })
  const deadline = Date.now() + timeoutMs
  let last: StatusReport | undefined
  while (Date.now() < deadline) {
    try {
      last = await client.status()
      const app = last.services.find(s => s.name === 'app')
      if (app && app.desired !== trace.at(-1)) trace.push(app.desired)
      if (pred(last)) return last
    } catch {}
    await new Promise(r => setTimeout(r, 100))
  }
  throw new Error(`timed out; desired counts seen: ${trace.join(' ')}; last: ${JSON.stringify(last?.services)}`)
}

const app = (s: StatusReport) => s.services.find(x => x.name === 'app')!
const steady = (n: number) => (s: StatusReport) => app(s).desired === n && app(s).current === n && app(s).instances.length === n && app(s).scale?.reporting === n

/** The leader's logged autoscaling decisions (every VM's agent.log; there is one VM here). */
function decisions (): Array<{ msg: string, autoscale: { action: string, from: number, to: number, average: number, target: number, instances: number } }> {
  const out = []
  for (const vm of readdirSync(join(c!.clusterDir, 'vms'))) {
    let text = ''
    try { text = readFileSync(join(c!.vmDir(vm), 'agent.log'), 'utf8') } catch { continue }
    for (const line of text.split('\n')) if (line.includes('"autoscale"')) out.push(JSON.parse(line))
  }
  return out
}

describe('autoscaling (real processes)', () => {
  it('a synthetic load takes app from 1 to 3 and back to 1, with a bounded number of scale actions', async () => {
    const launched = await c!.cli('launch_cluster', '--timeout', '60')
    expect(launched.code, launched.stderr).toBe(0)
    const trace: number[] = []
    let s = await watch(trace, x => steady(1)(x) && app(x).scale!.value !== undefined, 30_000)
    expect(app(s).scale).toMatchObject({ policy: 'target', metric: 'reported', target: 0.6 })
    expect(app(s).scale!.value).toBeCloseTo(0.2, 5)
    const text = await c!.cli('status')
    expect(text.stdout).toMatch(/autoscale: target reported 0\.6, now 0\.2 avg over 1/)
    expect(text.stdout).toMatch(/app-\d+ .*ONLINE.*metric 0\.2/)

    setLoad(1.5) // 1.5 / 0.6 = 2.5: three instances
    // Every instance's metric settles at the load spread over three.
    s = await watch(trace, x => steady(3)(x) && Math.abs(app(x).scale!.value! - 0.5) < 1e-6, 30_000)
    // GET /v1/status answers as documented (zod drops undocumented fields: nothing may be dropped).
    const json: unknown = await (await fetch(`${c!.first}/v1/status`)).json()
    expect(StatusAnswer.parse(json)).toEqual(json)
    expect((json as StatusReport).services[0]!.instances.map(i => i.metric)).toEqual([0.5, 0.5, 0.5])
    setLoad(0.2)
    await watch(trace, steady(1), 45_000)
    // Hold steady a little: nothing more happens at a low load at min.
    await new Promise(r => setTimeout(r, 2_000))
    await watch(trace, steady(1), 5_000)

    expect(trace).toEqual([1, 3, 2, 1])
    const logged = decisions()
    expect(logged.map(d => `${d.autoscale.action} ${d.autoscale.from}->${d.autoscale.to}`)).toEqual(['out 1->3', 'in 3->2', 'in 2->1'])
    // Each decision is logged with its inputs.
    expect(logged[0]!.autoscale).toMatchObject({ target: 0.6, instances: 1 })
    expect(logged[0]!.autoscale.average).toBeCloseTo(1.5, 5)
    expect(logged[0]!.msg).toContain('autoscale app: 1 -> 3 (scale out')
  }, 120_000)

  it('an operator may still scale an autoscaled service, and is told the policy may change it', async () => {
    const r = await c!.cli('scale', 'app', '2', '--no-wait')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout + r.stderr).toContain('the policy may change this count again')
    const bad = await c!.cli('scale', 'app', '4', '--no-wait')
    expect(bad.code).not.toBe(0)
    expect(bad.stdout + bad.stderr).toContain('between 1 and 3')
  }, 30_000)
})
