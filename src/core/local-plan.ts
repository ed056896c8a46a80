// What one node runs, derived from the committed document: its instances in phase run or drain,
// and a stateful instance only once its volume is attached here.
import type { Spec, ServiceSpec } from '../spec/schema.js'
import { portOf } from './placement.js'
import type { ClusterDoc, InstanceRec, NodeId } from './types.js'

export interface LocalInstance {
  rec: InstanceRec
  spec: ServiceSpec
  port: number | undefined
  /** Where relative paths in the service's command resolve. */
  specDir: string
}

export function localInstances (doc: ClusterDoc, self: NodeId): Map<string, LocalInstance> {
  const out = new Map<string, LocalInstance>()
  const spec: Spec | null = doc.spec
  if (!spec) return out
  for (const rec of Object.values(doc.instances)) {
    if (rec.node !== self || rec.phase === 'stop') continue
    const s = spec.services[rec.service]
    if (!s) continue
    if (rec.volume && doc.volumes[rec.volume]?.attachedTo !== self) continue
    out.set(rec.id, { rec, spec: s, port: portOf(spec, rec), specDir: spec.dir })
  }
  return out
}
