// Forming a new cluster: a fresh first node (bootstrap_expect 1) forms one; the same node restarted
// with its state lost (amnesic) never does: it belonged to a cluster, and a new one would later pull
// that cluster's nodes into an empty document (found by the simulator, seed 384422450 on the heal branch).
import { describe, expect, it } from 'vitest'
import type { PersistentState } from '../../src/core/consensus/consensus.js'
import { NodeCore } from '../../src/node/node.js'
import type { Provider } from '../../src/providers/provider.js'
import { TIMING } from '../../src/sim/simulation.js'
import { silentLogger } from '../../src/util/log.js'

function node (amnesic: boolean, persisted: PersistentState | null = null, disk: PersistentState[] = []): NodeCore {
  const provider = new Proxy({}, { get: () => async () => { throw new Error('no cloud in this test') } }) as unknown as Provider
  return new NodeCore(
    { id: 'vm-1', cluster: 't', peer: 'p1', ip: '10.0.0.1', mesh: '/ip4/10.0.0.1/tcp/7610', api: 'http://10.0.0.1:7600', bootstrapExpect: 1, hasBootstrapPeers: false, incarnation: 1 },
    TIMING,
    { publishHeartbeat: () => {}, publishControl: () => {}, persist: (st) => { disk.push(st) }, provider, localReports: () => ({}), localWorkChanged: () => {}, load: () => 0, logger: silentLogger(), rng: () => 0.5, now: () => 0 },
    persisted, amnesic, 0)
}

describe('bootstrap', () => {
  it('a fresh node with bootstrap_expect 1 forms a cluster and leads it', () => {
    const n = node(false)
    for (let t = 100; t <= 2_000; t += 100) n.tick(t)
    expect(n.consensus.acceptedDoc?.voters).toEqual(['vm-1'])
    expect(n.consensus.currentRole).toBe('leader')
  })

  it('the same node restarted with its state lost forms nothing: it waits to be given the document', () => {
    const n = node(true)
    for (let t = 100; t <= 20_000; t += 100) n.tick(t)
    expect(n.consensus.acceptedDoc).toBeNull()
    expect(n.consensus.currentRole).not.toBe('leader')
  })

  it('restarted again before it is re-added, it is still amnesic (the marker is persisted), so it still forms nothing', () => {
    const disk: PersistentState[] = []
    const first = node(true, null, disk)
    first.tick(100)
    expect(disk.at(-1)).toMatchObject({ accepted: null, amnesic: true })
    // The second start finds a readable state file (no problem reported): only the marker says it.
    const again = node(false, disk.at(-1)!)
    for (let t = 100; t <= 20_000; t += 100) again.tick(t)
    expect(again.consensus.isAmnesic).toBe(true)
    expect(again.consensus.acceptedDoc).toBeNull()
  })
})
