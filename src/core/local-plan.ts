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

/**
 * `mounted` says whether a volume is really attached here now (the cloud's word): the document can
 * lag behind an attach or detach still on its way, and a stateful instance must never start
 * without its data.
 */
export function localInstances (doc: ClusterDoc, self: NodeId, mounted: (volume: string) => boolean = () => true): Map<string, LocalInstance> {
  const out = new Map<string, LocalInstance>()
  const spec: Spec | null = doc.spec
  if (!spec) return out
  for (const rec of Object.values(doc.instances)) {
    if (rec.node !== self || rec.phase === 'stop') continue
    const s = spec.services[rec.service]
    if (!s) continue
    if (rec.volume && (doc.volumes[rec.volume]?.attachedTo !== self || !mounted(rec.volume))) continue
    out.set(rec.id, { rec, spec: s, port: portOf(spec, rec), specDir: spec.dir })
  }
  return out
}
