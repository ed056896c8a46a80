// Where a new instance goes: a live node with room, the least loaded first.
import type { Spec } from '../spec/schema.js'
import type { Observed } from './observed.js'
import type { ClusterDoc, InstanceRec, NodeId } from './types.js'

export interface Room { node: NodeId, slot: number }

/** Instances that occupy a node: every record placed there (stopping ones still hold their port). */
export function instancesOn (doc: Pick<ClusterDoc, 'instances'>, node: NodeId): InstanceRec[] {
  return Object.values(doc.instances).filter(i => i.node === node)
}

/** A free slot of `service` on `node`, or undefined when the node has no room for it. */
export function roomOn (doc: Pick<ClusterDoc, 'instances'>, spec: Spec, node: NodeId, service: string): number | undefined {
  const here = instancesOn(doc, node)
  if (here.length >= spec.cluster.max_instances_per_node) return undefined
  const used = new Set(here.filter(i => i.service === service).map(i => i.slot))
  const perNode = spec.services[service]?.max_per_node ?? 1
  for (let slot = 0; slot < perNode; slot++) if (!used.has(slot)) return slot
  return undefined
}

/** Nodes that can take new work: in the document, alive, holding the current document, not being terminated. */
export function usableNodes (doc: Pick<ClusterDoc, 'nodes' | 'terminations'>, obs: Observed): NodeId[] {
  return Object.keys(doc.nodes).filter(id => {
    const o = obs.nodes.get(id)
    return o?.status === 'alive' && o.current && !o.draining && !doc.terminations[id]
  }).sort()
}

/**
 * The least loaded usable node with room for `service`, not in `exclude`, and in `zone` when given
 * (a volume lives in one availability zone: its service can only run there).
 */
export function pickRoom (doc: Pick<ClusterDoc, 'nodes' | 'terminations' | 'instances'>, spec: Spec, obs: Observed, service: string, exclude: NodeId[] = [], zone?: string): Room | undefined {
  let best: Room | undefined
  let bestLoad = Infinity
  for (const node of usableNodes(doc, obs)) {
    if (exclude.includes(node)) continue
    if (zone !== undefined && doc.nodes[node]?.zone !== zone) continue
    const slot = roomOn(doc, spec, node, service)
    if (slot === undefined) continue
    const load = instancesOn(doc, node).length
    if (load < bestLoad) { best = { node, slot }; bestLoad = load }
  }
  return best
}

/** The zone an instance must run in: its volume's, once the volume exists. */
export function zoneFor (doc: Pick<ClusterDoc, 'volumes'>, inst: Pick<InstanceRec, 'volume'>): string | undefined {
  return inst.volume ? doc.volumes[inst.volume]?.zone : undefined
}

export function portOf (spec: Spec, inst: Pick<InstanceRec, 'service' | 'slot'>): number | undefined {
  const base = spec.services[inst.service]?.port
  return base === undefined ? undefined : base + inst.slot
}
