// What a service sees of its dependencies: for each `depends_on` service, its ONLINE instances.
// Rendered by every node for its own instances (the balancer is one consumer of this).
import type { Member } from './membership.js'
import { portOf } from './placement.js'
import type { ClusterDoc, InstanceId, NodeId } from './types.js'

export interface Endpoint {
  id: InstanceId
  node: NodeId
  ip: string
  port: number
  /** ip:port, with an IPv6 address in brackets. */
  address: string
}

/** service name → its serving endpoints, sorted by instance id (the same input gives the same view). */
export type DependencyView = Record<string, Endpoint[]>

/**
 * An instance is in the view when the document has it running (not draining or stopping) and its
 * node, alive or merely suspect, reports it ONLINE. A suspect node keeps its instances: a briefly
 * stalled daemon must not flap out of every balancer. A node dead for less than `deadGraceMs`
 * keeps them too (its daemon may be restarting), unless this node found it `unreachable` (nothing
 * answers on its port); callers without a clock get the strict view.
 */
export function dependencyView (doc: ClusterDoc, members: ReadonlyMap<NodeId, Member>, service: string, now = Infinity, deadGraceMs = 0, unreachable?: ReadonlySet<InstanceId>): DependencyView {
  const view: DependencyView = {}
  const spec = doc.spec
  const deps = spec?.services[service]?.depends_on ?? []
  for (const dep of deps) view[dep] = []
  if (!spec) return view
  for (const inst of Object.values(doc.instances)) {
    if (!deps.includes(inst.service) || inst.phase !== 'run' || inst.node === null) continue
    const m = members.get(inst.node)
    // Dead only just now (a refused redial): maybe its daemon restarts while its services serve.
    if (!m || (m.status === 'dead' && (now - m.since >= deadGraceMs || unreachable?.has(inst.id) === true))) continue
    if (m.hb.instances[inst.id]?.state !== 'ONLINE') continue
    const port = portOf(spec, inst)
    if (port === undefined) continue
    const ip = doc.nodes[inst.node]?.ip ?? m.hb.ip
    view[inst.service]!.push({ id: inst.id, node: inst.node, ip, port, address: ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}` })
  }
  for (const list of Object.values(view)) list.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  return view
}

/** The view as addresses only, per service (what an instance was "given"). */
export function viewAddresses (view: DependencyView): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [svc, list] of Object.entries(view)) out[svc] = list.map(e => e.address)
  return out
}

/**
 * The node knows enough to render: it holds the current leader's document, and every node in that
 * document has either been heard since this daemon started or been silent long enough to be judged.
 * Rendering before that could overwrite a good config with an empty one (case 02).
 */
export function membershipKnown (doc: ClusterDoc, members: ReadonlyMap<NodeId, Member>, startedAt: number, now: number, deadAfterMs: number): boolean {
  if (now - startedAt >= deadAfterMs) return true
  return Object.keys(doc.nodes).every(id => members.has(id))
}

/** Instances on members dead for less than `deadGraceMs`: the ones a node may probe (see dependencyView). */
export function instancesInDeadGrace (doc: ClusterDoc, members: ReadonlyMap<NodeId, Member>, now: number, deadGraceMs: number): Array<{ id: InstanceId, ip: string, port: number, deadSince: number }> {
  const out: Array<{ id: InstanceId, ip: string, port: number, deadSince: number }> = []
  if (!doc.spec) return out
  for (const inst of Object.values(doc.instances)) {
    if (inst.node === null || inst.phase !== 'run') continue
    const m = members.get(inst.node)
    if (!m || m.status !== 'dead' || now - m.since >= deadGraceMs) continue
    const port = portOf(doc.spec, inst)
    const ip = doc.nodes[inst.node]?.ip ?? m.hb.ip
    if (port !== undefined) out.push({ id: inst.id, ip, port, deadSince: m.since })
  }
  return out
}
