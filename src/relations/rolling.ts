// Rolling restarts: when a change needs `on_change: restart`, the instances of a service restart one
// at a time, in instance-id order, each once the ones before it serve the new view again. Decided
// by every node from gossip alone (no leader round trip). Pure.
import type { InstanceState } from '../core/types.js'

export interface PeerInstance {
  id: string
  state: InstanceState
  /** Hash of the view it serves (applied), as it reports. */
  viewHash?: string
  /** Its node is alive or suspect (a dead node's instance does not hold anyone up). */
  live: boolean
}

export interface RollingInput {
  self: string
  /** The view this instance must restart for. */
  hash: string
  /** The other instances of the same service. */
  peers: PeerInstance[]
  /** How long this instance has waited; past `maxWaitMs` it restarts anyway (a peer that never recovers must not block the others forever). */
  waitedMs: number
  maxWaitMs: number
}

export type RollingDecision =
  | { go: true, note?: string }
  | { go: false, waitingFor: string }

export function mayRestart (input: RollingInput): RollingDecision {
  const { self, hash, peers } = input
  // Instances that serve, or are mid-restart (not yet started, failed, or on dead nodes: no one to wait for).
  const live = peers.filter(p => p.live && (p.state === 'ONLINE' || p.state === 'Migrating' || p.state === 'Starting' || p.state === 'Stopping'))
  if (live.length === 0) return { go: true, note: 'restarted (single instance): a brief gap while it restarts' }
  if (input.waitedMs >= input.maxWaitMs) return { go: true, note: `restarted after waiting ${Math.round(input.waitedMs / 1000)} s for the instances before it` }
  // Nobody else may be mid-restart...
  const busy = live.find(p => p.state === 'Starting' || p.state === 'Stopping')
  if (busy) return { go: false, waitingFor: `${busy.id} (${busy.state})` }
  // ...and every instance before this one must already serve the new view.
  const before = live.filter(p => p.id.localeCompare(self, 'en', { numeric: true }) < 0)
  const behind = before.find(p => p.viewHash !== hash)
  if (behind) return { go: false, waitingFor: `${behind.id} to restart first` }
  return { go: true }
}
