// What the leader asks of the cloud, derived from the committed document alone. Every action is
// idempotent (a launch carries a token made from its decision), so a new leader that redoes the
// actions of one that died mid-way creates nothing twice.
import type { ClusterDoc, NodeId } from './types.js'

export type CloudAction =
  | { type: 'launch', key: string, id: string, token: string, reason: string, zone?: string, instanceType?: string }
  | { type: 'terminate', key: string, node: NodeId }
  | { type: 'detach-volume', key: string, name: string, node: NodeId }
  | { type: 'attach-volume', key: string, name: string, node: NodeId, service: string }
  | { type: 'associate-address', key: string, name: string, node: NodeId }

/**
 * Idempotency token of a launch decision: cluster, the term the decision was made in and its id
 * (never the current term, or a new leader redoing it would launch a second VM).
 * At most 64 ASCII characters (EC2's ClientToken limit).
 */
export function launchToken (cluster: string, term: number, id: string): string {
  return `wakame-${cluster}-${term}-${id}`.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 64)
}

/** `mountedOn`: a live node still has the volume mounted (then it is not detached: never forced). */
export function planCloud (doc: ClusterDoc, mountedOn: (volume: string, node: NodeId) => boolean = () => false): CloudAction[] {
  const out: CloudAction[] = []
  for (const l of Object.values(doc.launches)) {
    if (l.status === 'pending') {
      const instanceType = doc.spec?.cluster.instance_type
      out.push({ type: 'launch', key: `launch:${l.id}`, id: l.id, token: launchToken(doc.cluster, l.term, l.id), reason: l.reason, ...(l.zone ? { zone: l.zone } : {}), ...(instanceType ? { instanceType } : {}) })
    }
  }
  for (const t of Object.values(doc.terminations)) {
    // A voter is removed from the voter set before its VM goes (the leader last of all).
    if (t.status === 'pending' && !doc.voters.includes(t.node)) out.push({ type: 'terminate', key: `terminate:${t.node}`, node: t.node })
  }
  for (const v of Object.values(doc.volumes)) {
    if (v.wantAt === v.attachedTo) continue
    if (v.attachedTo !== null) {
      // Detach only once no instance on the old node uses it (the scheduler moves wantAt only then).
      const busy = Object.values(doc.instances).some(i => i.volume === v.name && i.node === v.attachedTo) || mountedOn(v.name, v.attachedTo)
      if (!busy) out.push({ type: 'detach-volume', key: `detach:${v.name}@${v.attachedTo}`, name: v.name, node: v.attachedTo })
    } else if (v.wantAt !== null) {
      out.push({ type: 'attach-volume', key: `attach:${v.name}@${v.wantAt}`, name: v.name, node: v.wantAt, service: v.service })
    }
  }
  for (const a of Object.values(doc.addresses ?? {})) {
    if (a.wantAt !== null && a.wantAt !== a.associatedTo) out.push({ type: 'associate-address', key: `associate:${a.name}@${a.wantAt}`, name: a.name, node: a.wantAt })
  }
  return out
}
