// After the faults heal, the cluster must converge: one leader everyone follows, the same
// document everywhere, every service at its desired count, every balancer rendering the same list.
import { renderBuiltinConfig } from '../../balancers/builtin/render.js'
import { roomOn } from '../../core/placement.js'
import { compareDocId } from '../../core/types.js'
import type { DependencyView } from '../../core/views.js'
import type { World } from './types.js'

/** Undefined when converged, else what is still off. */
export function notConverged (w: World): string | undefined {
  const running = w.nodes.filter(n => n.running)
  const leaders = running.filter(n => n.core.consensus.currentRole === 'leader')
  if (leaders.length !== 1) return `${leaders.length} leaders among running nodes`
  const leader = leaders[0]!
  const doc = leader.core.consensus.committed
  if (!doc || doc.term !== leader.core.consensus.currentTerm) return 'the leader has not committed a document in its term'
  const members = running.filter(n => doc.nodes[n.id])
  for (const n of members) {
    const c = n.core.consensus
    if (c.currentLeader !== leader.id || c.currentTerm !== leader.core.consensus.currentTerm) return `${n.id} follows ${c.currentLeader} in term ${c.currentTerm}`
    if (compareDocId(c.committed ? { term: c.committed.term, version: c.committed.version } : null, { term: doc.term, version: doc.version }) !== 0) return `${n.id} holds v${c.committed?.version}, the leader v${doc.version}`
    const alive = n.core.membership.live().map(m => m.id).filter(id => doc.nodes[id]).sort().join()
    const expected = members.map(m => m.id).sort().join()
    if (alive !== expected) return `${n.id} sees members [${alive}], expected [${expected}]`
  }
  const outsiders = running.filter(n => !doc.nodes[n.id])
  if (outsiders.length > 0) return `running nodes outside the document: ${outsiders.map(n => n.id).join()}`
  if (Object.values(doc.launches).some(l => l.status !== 'failed') || Object.keys(doc.terminations).length > 0) return 'launches or terminations pending'
  if (Object.values(doc.volumes).some(v => v.wantAt !== v.attachedTo)) return 'a volume is moving'
  if (Object.values(doc.addresses ?? {}).some(a => a.wantAt !== a.associatedTo)) return 'an address is moving'
  // Each address points, in the cloud too, at the node running its service.
  for (const a of Object.values(doc.addresses ?? {})) {
    const runner = Object.values(doc.instances).find(i => i.service === a.service)
    if (runner && (a.associatedTo !== runner.node || w.cloud.addresses.get(a.name) !== runner.node)) return `address ${a.name} is on ${w.cloud.addresses.get(a.name) ?? 'nothing'} (document: ${a.associatedTo}), ${a.service} runs on ${runner.node}`
  }
  if (doc.phase !== 'up' || !doc.spec) return `phase ${doc.phase}`
  // Every service at its desired count, every instance ONLINE where the document places it.
  const where = new Map<string, { node: string, state: string }>()
  for (const n of running) for (const i of n.instances.values()) where.set(i.id, { node: n.id, state: i.state })
  for (const [svc, want] of Object.entries(doc.desired)) {
    const recs = Object.values(doc.instances).filter(i => i.service === svc)
    if (recs.length !== want) return `${svc}: ${recs.length} instances in the document, ${want} desired`
    for (const r of recs) {
      if (r.phase !== 'run') return `${r.id} is ${r.phase}`
      const at = where.get(r.id)
      // A crash-looping instance may stay FAIL where it is only while no other node has room for it.
      if (at?.state === 'FAIL' && at.node === r.node && w.crashLoop?.node === r.node && w.crashLoop.service === svc) {
        const room = members.map(m => m.id).find(id => id !== r.node && !r.failedOn?.includes(id) && roomOn(doc, doc.spec!, id, svc) !== undefined)
        if (room === undefined) continue
        return `${r.id} crash-loops on ${r.node}, but ${room} has room for it`
      }
      if (!at || at.node !== r.node || at.state !== 'ONLINE') return `${r.id} is not ONLINE on ${r.node} (${at ? `${at.state} on ${at.node}` : 'not running'})`
    }
  }
  for (const n of running) for (const i of n.instances.values()) if (!doc.instances[i.id]) return `${i.id} runs on ${n.id} but is not in the document`
  // Every balancer renders exactly the ONLINE instances.
  for (const [svc, s] of Object.entries(doc.spec.services)) {
    if (!s.balancer) continue
    const view: DependencyView = {}
    for (const dep of s.depends_on) {
      view[dep] = Object.values(doc.instances).filter(i => i.service === dep && where.get(i.id)?.state === 'ONLINE').map(i => {
        const ip = doc.nodes[i.node!]!.ip
        const port = (doc.spec!.services[dep]!.port ?? 0) + i.slot
        return { id: i.id, node: i.node!, ip, port, address: `${ip}:${port}` }
      }).sort((a, b) => a.id < b.id ? -1 : 1)
    }
    const expected = renderBuiltinConfig(s.balancer.routes, view)
    for (const n of running) {
      for (const [id, cfg] of n.balancers) {
        if (doc.instances[id]?.service === svc && cfg !== expected) return `balancer ${id} on ${n.id} renders another member list`
      }
    }
  }
  return undefined
}
