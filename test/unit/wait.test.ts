// The CLI's wait after a change: transitions printed, and an early end when an instance is failing
// for good (it used to wait out its whole timeout, 180 s, for instances FAIL after 0.6 s).
import { describe, expect, it } from 'vitest'
import type { StatusReport } from '../../src/core/status.js'
import type { Client } from '../../src/cli/client.js'
import { waitForSettle } from '../../src/cli/wait.js'

type Inst = StatusReport['services'][number]['instances'][number]
function report (instances: Array<Partial<Inst> & { id: string, state: Inst['state'] }>, settled = false): StatusReport {
  return {
    cluster: 'c', answeredBy: 'vm-1', leader: 'vm-1', term: 1, committed: { term: 1, version: 5 }, phase: 'up', settled, warnings: [], nodes: [], launches: [],
    services: [{ name: 'app', current: instances.length, min: 1, max: 3, desired: instances.length, dependsOn: [], level: 0, settled, instances: instances.map(i => ({ node: 'vm-1', phase: 'run', ...i }) as Inst) }]
  } as unknown as StatusReport
}
const clientOf = (next: () => StatusReport) => ({ status: async () => next() }) as unknown as Client

describe('waitForSettle', () => {
  it('prints only what changes (not what already served), and returns once settled', async () => {
    const lines: string[] = []
    const seq = [report([{ id: 'app-1', state: 'ONLINE' }, { id: 'app-2', state: 'Starting' }]), report([{ id: 'app-1', state: 'ONLINE' }, { id: 'app-2', state: 'ONLINE' }], true)]
    let k = 0
    const s = await waitForSettle(clientOf(() => seq[Math.min(k++, 1)]!), { version: 5, timeoutMs: 5_000, print: l => lines.push(l), pollMs: 5 })
    expect(s.settled).toBe(true)
    expect(lines.map(l => l.replace(/\[.*?\]/, '').trim())).toEqual(['app-2 Starting on vm-1', 'app-2 ONLINE on vm-1'])
  })

  it('ends early, naming the instance and its error, when one is FAIL for failFastMs or given up on', async () => {
    const failing = report([{ id: 'app-1', state: 'FAIL', error: 'ENOENT: no such file' }])
    const t0 = Date.now()
    await expect(waitForSettle(clientOf(() => failing), { version: 5, timeoutMs: 60_000, print: () => {}, pollMs: 5, failFastMs: 100 }))
      .rejects.toThrow(/not settling: app-1 on vm-1 is FAIL: ENOENT: no such file/)
    expect(Date.now() - t0).toBeLessThan(30_000)
    const gaveUp = report([{ id: 'app-1', state: 'FAIL', crashLoop: true, error: 'crash loop' }])
    await expect(waitForSettle(clientOf(() => gaveUp), { version: 5, timeoutMs: 60_000, print: () => {}, pollMs: 5 })).rejects.toThrow(/not settling/)
  })

  it('a FAIL that recovers (a restart) does not end it', async () => {
    let k = 0
    const seq = [report([{ id: 'app-1', state: 'FAIL' }]), report([{ id: 'app-1', state: 'Starting' }]), report([{ id: 'app-1', state: 'ONLINE' }], true)]
    const s = await waitForSettle(clientOf(() => seq[Math.min(k++, 2)]!), { version: 5, timeoutMs: 5_000, print: () => {}, pollMs: 5, failFastMs: 1_000 })
    expect(s.settled).toBe(true)
  })
})
