// Self-healing and plan / dry run on real daemons (127.0.64.x): a service that crashes at once ends
// FAIL with its error after a bounded number of restarts and moves; a service unhealthy on one node
// only is restarted there, then moved to a node where it comes ONLINE; `plan` and `--dry-run` print
// what the leader would do and change nothing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusReport } from '../../src/core/status.js'
import { ROOT, startCluster, type TestCluster } from '../helpers/cluster.js'

let c: TestCluster
let dir: string

const svc = (s: StatusReport, name: string) => s.services.find(v => v.name === name)!

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wakame-heal-'))
  const spec = join(dir, 'cluster.yaml')
  writeFileSync(spec, `
cluster: { min_nodes: 2, max_nodes: 2, max_instances_per_node: 4 }
services:
  crasher:
    command: [node, -e, "console.error('fatal: cannot open /etc/crasher.conf'); process.exit(3)"]
    restart: { max_failures: 2, max_nodes: 2 }
  web:
    command: [node, ${JSON.stringify(resolve(ROOT, 'test/fixtures/self-heal/web.mjs'))}]
    env: { MARK: ${JSON.stringify(join(dir, 'bad-node'))} }
    port: 9100
    health: { http: { path: / }, interval_ms: 200, start_timeout_ms: 1500 }
    restart: { max_failures: 2, max_nodes: 2 }
    max: 2
`)
  c = await startCluster({ net: '127.0.64', spec })
  const r = await c.cli('launch_cluster', '--no-wait')
  if (r.code !== 0) throw new Error(r.stderr)
})
afterAll(async () => {
  await c?.cleanup()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('self-healing', () => {
  it('a service unhealthy on one node only is restarted there, then moved to a node where it is ONLINE', async () => {
    const s = await c.waitFor('web ONLINE after a move', s => {
      const w = svc(s, 'web').instances
      return w.length === 1 && w[0]!.state === 'ONLINE' && (w[0]!.failedOn?.length ?? 0) === 1
    }, 90_000)
    const web = svc(s, 'web').instances[0]!
    expect(web.node).not.toBe(web.failedOn![0])
    // (failedOn is only set once the bad node gave up on it: after restart.max_failures there.)
    expect(web.gaveUp).toBeUndefined()
  })

  it('a service that crashes at once ends FAIL with its error, after bounded restarts and moves', async () => {
    const s = await c.waitFor('crasher given up', s => svc(s, 'crasher').instances.some(i => i.gaveUp !== undefined), 90_000)
    const inst = svc(s, 'crasher').instances[0]!
    expect(svc(s, 'crasher').instances).toHaveLength(1)
    expect(inst.state).toBe('FAIL')
    expect(inst.crashLoop).toBe(true)
    expect(inst.failures).toBe(2)
    expect(inst.error).toMatch(/^crash loop: gave up after 2 failures; last: exited with code 3 \/ signal null: .*fatal: cannot open \/etc\/crasher.conf/)
    expect(new Set(inst.failedOn)).toEqual(new Set(s.nodes.map(n => n.id)))
    expect(inst.gaveUp).toMatch(/^failed on 2 nodes \(.*restart.max_nodes 2\): left FAIL; last error: crash loop/)
    expect(s.warnings.some(w => w.startsWith(`${inst.id} on ${inst.node}: FAIL: crash loop`))).toBe(true)
    // It stays that way: no more restarts, no new instance.
    await new Promise(r => setTimeout(r, 4_000))
    const later = svc(await c.status(), 'crasher').instances
    expect(later.map(i => [i.id, i.state, i.failures])).toEqual([[inst.id, 'FAIL', 2]])
    // And the CLI shows it, with the error.
    const out = await c.cli('status')
    expect(out.code).toBe(0)
    expect(out.stdout).toContain(`${inst.id}`)
    expect(out.stdout).toMatch(/FAIL .*fatal: cannot open \/etc\/crasher.conf/)
    expect(out.stdout).toContain('not moved again: failed on 2 nodes')
  })
})

describe('plan and --dry-run', () => {
  /** The committed version, once it has not moved for 1.5 s. */
  async function quietVersion (): Promise<number> {
    let last = -1
    let since = Date.now()
    for (;;) {
      const v = (await c.status()).committed?.version ?? 0
      if (v !== last) { last = v; since = Date.now() } else if (Date.now() - since >= 1_500) return v
      await new Promise(r => setTimeout(r, 200))
    }
  }

  it('prints the actions the leader would take, and nothing changes', async () => {
    const before = await quietVersion()
    const p = await c.cli('plan', 'propagate_service', 'web')
    expect(p.stderr).toBe('')
    expect(p.code).toBe(0)
    expect(p.stdout).toMatch(/^would do: web: 1 -> 2 instances$/m)
    expect(p.stdout).toMatch(/^ +1\. place +web-\d+ \(web\) on vm-\d+/m)
    expect(p.stdout).toContain('nothing was changed (dry run)')

    for (const args of [['propagate_service', 'web'], ['migrate_service', svc(await c.status(), 'web').instances[0]!.id], ['shutdown_cluster'], ['launch_cluster'], ['scale', 'web', '2']]) {
      const r = await c.cli(...args, '--dry-run')
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
      expect(r.stdout).toContain('nothing was changed (dry run)')
    }
    const shut = await c.cli('shutdown_cluster', '--dry-run')
    expect(shut.stdout).toMatch(/stop +stop web-\d+ \(web\)/)
    expect(shut.stdout).toMatch(/terminate +terminate vm-\d+ +— cluster shutdown/)
    if (process.env.HEAL_SHOW) console.log(p.stdout, shut.stdout, (await c.cli('status')).stdout)
    const mig = await c.cli('migrate', svc(await c.status(), 'web').instances[0]!.id, '--dry-run')
    expect(mig.stdout).toMatch(/move +web-\d+ \(web\) from vm-\d+ to vm-\d+ as web-\d+/)

    const s = await c.status()
    expect(s.committed?.version).toBe(before)
    expect(svc(s, 'web').desired).toBe(1)
    expect(s.phase).toBe('up')
  })

  it('bad input is a clear error; the API needs the token', async () => {
    const r = await c.cli('plan', 'propagate_service', 'nope')
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('no service "nope"')
    const u = await c.cli('plan', 'frobnicate')
    expect(u.code).toBe(2)
    expect(u.stderr).toContain('cannot plan "frobnicate"')
    const res = await fetch(`${c.first}/v1/plan`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ command: 'shutdown' }) })
    expect(res.status).toBe(401)
    // From a node that does not lead, the plan is forwarded to the leader.
    const s = await c.status()
    const other = s.nodes.find(n => !n.leader && n.status === 'alive')!
    const token = (await import('node:fs')).readFileSync(c.tokenFile, 'utf8').trim()
    const f = await fetch(`${c.api(other.id)}/v1/plan`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ command: 'propagate', service: 'web' }) })
    expect(f.status).toBe(200)
    const body = await f.json() as { leader: string, actions: Array<{ kind: string }> }
    expect(body.leader).toBe(s.leader)
    expect(body.actions.map(a => a.kind)).toEqual(['place'])
  })
})
