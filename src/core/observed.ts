// What the leader observes of the cluster, distilled from the membership view for the scheduler.
import type { DocId, InstanceId, InstanceReport, NodeId } from './types.js'

/** `unknown`: in the document but not heard since this leader started (not yet judged). */
export type ObservedStatus = 'alive' | 'suspect' | 'dead' | 'unknown'

export interface ObservedNode {
  id: NodeId
  status: ObservedStatus
  ip: string
  peer: string
  zone?: string
  /** The node holds a document from the current leader. */
  current: boolean
  committed: DocId | null
  launch?: string
  /** Lost its persisted state (it must leave the voters, then come back). */
  amnesic?: boolean
  /** Its 1-minute load average (autoscaling's load1 metric), from its last heartbeat. */
  load1?: number
  /** It is going away (spot interruption, maintenance): why. */
  draining?: string
  instances: Record<InstanceId, InstanceReport>
}

export interface Observed {
  nodes: Map<NodeId, ObservedNode>
}

export function isLive (n: ObservedNode | undefined): boolean {
  return n !== undefined && (n.status === 'alive' || n.status === 'suspect')
}

/** The state a node reports for an instance, if that node is live. */
export function reportedState (obs: Observed, node: NodeId | null, id: InstanceId): InstanceReport | undefined {
  if (!node) return undefined
  const n = obs.nodes.get(node)
  return isLive(n) ? n!.instances[id] : undefined
}
