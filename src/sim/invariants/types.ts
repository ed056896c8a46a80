// What the invariant checkers see: the simulator's god view, and every act of every node.
import type { SimCloud } from '../cloud.js'
import type { SimNode } from '../sim-node.js'

/** Something a node did that only the leader may do: a placement (a changed document) or a cloud call. */
export interface Act {
  node: string
  kind: 'propose' | 'cloud'
  /** The term the node acted in (the document's term, or the node's current term for a cloud call). */
  term: number
  /** Whether the node was, by its own state, the leader of its current term holding a lease. */
  canAct: boolean
  at: number
  what: string
  /** The voter set the node acted under (before any change the act itself makes). */
  voters: readonly string[]
}

/** An operator command the cluster acknowledged (or may have applied without saying so). */
export interface Ack { service: string, version: number, desired: number | 'uncertain' }

export interface World {
  now: number
  nodes: readonly SimNode[]
  cloud: SimCloud
  /**
   * God view of messages: the latest time by which a majority of the node's voters had each
   * completed a round trip with it (a message the node sent then, after which the voter followed
   * it, answered by a later message of the voter that the node processed): what a lease may rest on.
   */
  lastMajorityAt: (id: string, voters: readonly string[]) => number
  /** How long after losing its majority a correct leader may still act (lease, drift, delays). */
  leaseSlackMs: number
  acks: readonly Ack[]
  /** The seed's crash loop: instances of this service fail on this node, and only there. */
  crashLoop?: { service: string, node: string }
}

export interface Checker {
  readonly name: string
  act?: (a: Act, w: World) => string | undefined
  step?: (w: World) => string | undefined
}
