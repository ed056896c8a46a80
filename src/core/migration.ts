// Starting a migration: a new instance of the same service on another node (or on a VM still to be
// launched), linked to the old one. The scheduler carries it on (new ONLINE, dependents re-pointed,
// old drained and stopped). Used by migrate_service and by draining a node that is going away.
import type { Spec } from '../spec/schema.js'
import type { Observed } from './observed.js'
import { pickRoom, zoneFor } from './placement.js'
import type { ClusterDoc, InstanceRec, NodeId } from './types.js'

export function startMigration (d: ClusterDoc, spec: Spec, obs: Observed, inst: InstanceRec, target?: { node: NodeId, slot: number }): InstanceRec {
  const room = target ?? pickRoom(d, spec, obs, inst.service, inst.node ? [inst.node] : [], zoneFor(d, inst))
  d.seq++
  const next: InstanceRec = { id: `${inst.service}-${d.seq}`, service: inst.service, node: room?.node ?? null, slot: room?.slot ?? 0, phase: 'run', replaces: inst.id }
  // Without room now it waits for a new VM, and never lands back where it left.
  if (!room && inst.node) next.notOn = inst.node
  if (inst.volume) next.volume = inst.volume
  inst.migratingTo = next.id
  d.instances[next.id] = next
  return next
}
