// A just-dead node keeps its instances in dependents' views for a grace period (its daemon may be
// restarting while its services serve), unless this node finds nothing answering on their ports.
import { createServer, type Server } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import type { Member } from '../../src/core/membership.js'
import { emptyDoc, type ClusterDoc, type Heartbeat } from '../../src/core/types.js'
import { dependencyView, instancesInDeadGrace } from '../../src/core/views.js'
import { DeadReach, probeTcp } from '../../src/supervisor/reach.js'
import { webSpec } from '../helpers/world.js'

const hb = (node: string, ip: string, instances: Heartbeat['instances']): Heartbeat => ({
  node, peer: node, incarnation: 1, seq: 1, ip, mesh: '', api: '', load1: 0, term: 1, leader: null,
  accepted: null, committed: null, joining: false, bootstrapExpect: 0, instances
})
const member = (id: string, ip: string, status: Member['status'], since: number, instances: Heartbeat['instances']): Member =>
  ({ id, status, incarnation: 1, seq: 1, rev: 1, heardAt: since, since, hb: hb(id, ip, instances) })

function doc (): ClusterDoc {
  return {
    ...emptyDoc('t'),
    term: 1,
    version: 3,
    nodes: { 'vm-1': { id: 'vm-1', ip: '127.0.0.1', peer: 'vm-1' }, 'vm-2': { id: 'vm-2', ip: '127.0.0.1', peer: 'vm-2' } },
    spec: webSpec(),
    phase: 'up',
    instances: {
      'www-1': { id: 'www-1', service: 'www', node: 'vm-1', slot: 0, phase: 'run' },
      'www-2': { id: 'www-2', service: 'www', node: 'vm-2', slot: 1, phase: 'run' }
    }
  }
}

describe('views of a just-dead node', () => {
  const d = doc()
  const members = new Map<string, Member>([
    ['vm-1', member('vm-1', '127.0.0.1', 'alive', 0, { 'www-1': { state: 'ONLINE' } })],
    ['vm-2', member('vm-2', '127.0.0.1', 'dead', 1_000, { 'www-2': { state: 'ONLINE' } })]
  ])

  it('keeps its instances for the grace, drops them after it, and drops them at once when found unreachable', () => {
    const ids = (unreachable?: Set<string>, now = 2_000) => dependencyView(d, members, 'lb', now, 3_000, unreachable).www!.map(e => e.id)
    expect(ids()).toEqual(['www-1', 'www-2'])
    expect(ids(undefined, 4_000)).toEqual(['www-1'])
    expect(ids(new Set(['www-2']))).toEqual(['www-1'])
    // An unreachable mark means nothing for an instance whose node is alive.
    expect(ids(new Set(['www-1']))).toEqual(['www-1', 'www-2'])
    expect(instancesInDeadGrace(d, members, 2_000, 3_000).map(t => t.id)).toEqual(['www-2'])
    expect(instancesInDeadGrace(d, members, 4_000, 3_000)).toEqual([])
  })
})

describe('DeadReach', () => {
  const servers: Server[] = []
  afterAll(() => { for (const s of servers) s.close() })

  it('marks an instance with nothing on its port unreachable (once per death), and one that answers not', async () => {
    const srv = createServer(c => c.destroy())
    servers.push(srv)
    await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
    const open = (srv.address() as { port: number }).port
    const closedSrv = createServer()
    await new Promise<void>(r => closedSrv.listen(0, '127.0.0.1', r))
    const closed = (closedSrv.address() as { port: number }).port
    await new Promise<void>(r => closedSrv.close(() => r()))

    expect(await probeTcp('127.0.0.1', open)).toBe('reachable')
    expect(await probeTcp('127.0.0.1', closed)).toBe('unreachable')

    let probes = 0
    let changes = 0
    const reach = new DeadReach(async (h, p) => { probes++; return await probeTcp(h, p) }, () => { changes++ })
    const targets = [{ id: 'a', ip: '127.0.0.1', port: open, deadSince: 5 }, { id: 'b', ip: '127.0.0.1', port: closed, deadSince: 5 }]
    reach.check(targets)
    reach.check(targets) // the same death is probed once
    await expect.poll(() => reach.unreachable.has('b')).toBe(true)
    expect(reach.unreachable.has('a')).toBe(false)
    expect(probes).toBe(2)
    expect(changes).toBe(1)
    // Its member heard again (no longer a target): forgotten.
    reach.check([targets[0]!])
    expect(reach.unreachable.has('b')).toBe(false)
  })
})
