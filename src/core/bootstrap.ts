// When a brand-new cluster forms: only once `bootstrap_expect` nodes without any state have met,
// so nodes booted together never each elect themselves. Pure.
import type { Member } from './membership.js'
import type { NodeId } from './types.js'

export interface BootstrapInput {
  self: NodeId
  expect: number
  members: Member[]
  now: number
  startedAt: number
  /** With bootstrap peers configured, wait this long for an existing cluster before forming one. */
  joinWaitMs: number
  hasBootstrapPeers: boolean
}

/** The initial voters, or undefined when this node should keep waiting (or join instead). */
export function bootstrapVoters (input: BootstrapInput): NodeId[] | undefined {
  const { self, expect, members, now, startedAt } = input
  if (expect === 0) return undefined
  const live = members.filter(m => m.status === 'alive')
  // A node holding only the bootstrap document (0, 1) is still forming the cluster with us.
  const forming = (m: Member) => m.hb.accepted === null || (m.hb.accepted.term === 0 && m.hb.accepted.version === 1)
  // Someone already belongs to a formed cluster: join it (pull its document) instead of forming another.
  if (live.some(m => m.id !== self && !forming(m))) return undefined
  if (input.hasBootstrapPeers && now - startedAt < input.joinWaitMs) return undefined
  const eligible = live.filter(m => forming(m) && m.hb.bootstrapExpect > 0).map(m => m.id)
  if (!eligible.includes(self)) eligible.push(self)
  if (eligible.length < expect) return undefined
  const voters = eligible.sort().slice(0, expect)
  return voters.includes(self) ? voters : undefined
}
