// Types shared by the pure core: the replicated cluster document, what nodes report, and ids.
import type { Spec } from '../spec/schema.js'

export type NodeId = string
export type InstanceId = string

/** Service instance states, with the names Wakame users know. */
export type InstanceState = 'Offline' | 'Starting' | 'ONLINE' | 'Migrating' | 'Stopping' | 'FAIL'

/** (term, version) of a cluster document; compared term first, as Raft compares (lastTerm, lastIndex). */
export interface DocId { term: number, version: number }

export function compareDocId (a: DocId | null | undefined, b: DocId | null | undefined): number {
  if (!a && !b) return 0
  if (!a) return -1
  if (!b) return 1
  return a.term !== b.term ? a.term - b.term : a.version - b.version
}

export interface DocNode {
  id: NodeId
  /** The node's address (its private IPv4). */
  ip: string
  /** libp2p peer id that signs this node's messages. */
  peer: string
  /** Launch decision that created it, when the cluster launched it. */
  launch?: string
  /** Availability zone, when known (voters are spread across zones). */
  zone?: string
}

/**
 * Lifecycle of one instance record, set by the leader:
 * run   — its node runs it;
 * drain — still running, but left out of every dependent's view (balancers drop it first);
 * stop  — its node stops it; the record goes once the node reports it gone.
 */
export type InstancePhase = 'run' | 'drain' | 'stop'

export interface InstanceRec {
  id: InstanceId
  service: string
  /** Node it is placed on; null while waiting for room (a VM being launched). */
  node: NodeId | null
  /** Which of its service's per-node slots it uses (port = service port + slot). */
  slot: number
  phase: InstancePhase
  /** Document version at which it entered drain (dependents confirm they render at least this). */
  drainVersion?: number
  /** Set on the old instance of a migration: the instance replacing it. */
  migratingTo?: InstanceId
  /** Set on the new instance of a migration. */
  replaces?: InstanceId
  /** A migrated instance must not land back on the node it left (kept until it is placed). */
  notOn?: NodeId
  /**
   * Nodes where this instance (or the one it replaces) crash-looped until its node gave up on it:
   * it is not placed there again, and after the service's restart.max_nodes it is not moved again.
   */
  failedOn?: NodeId[]
  /** Set once the leader stopped moving it (failed on too many nodes): why, with its last error. */
  gaveUp?: string
  /** A stopped stateful instance must wait for its node to be gone or to report it stopped. */
  volume?: string
}

export type LaunchStatus = 'pending' | 'launched' | 'failed'

/** A decision to launch one VM. Its id and term make the cloud idempotency token. */
export interface LaunchRec {
  id: string
  /** Term in which the decision was made (part of the token: never the current term). */
  term: number
  status: LaunchStatus
  vm?: string
  reason: string
  error?: string
  /** The zone it must be in (for a volume's service), if any. */
  zone?: string
}

export interface TerminationRec {
  node: NodeId
  reason: string
  status: 'pending' | 'done'
}

export interface VolumeRec {
  name: string
  service: string
  /** Node it is attached to now, as confirmed by the provider. */
  attachedTo: NodeId | null
  /** Node it should be attached to (null: detached). */
  wantAt: NodeId | null
  /** The availability zone it lives in (it can only be attached there), once it exists. */
  zone?: string
}

/** An address (Elastic IP) that follows its service's instance. */
export interface AddressRec {
  name: string
  service: string
  /** VM it is associated with, as confirmed by the cloud. */
  associatedTo: NodeId | null
  /** VM it should be associated with. */
  wantAt: NodeId | null
  /** Its public IP, once known. */
  ip?: string
}

export type ClusterPhase = 'idle' | 'up' | 'down'

/** The replicated cluster document. The leader makes each version; it is acted on once committed. */
export interface ClusterDoc {
  term: number
  version: number
  cluster: string
  /** Committed voter set: the election counts majorities over this list, never over live members. */
  voters: NodeId[]
  nodes: Record<NodeId, DocNode>
  spec: Spec | null
  phase: ClusterPhase
  /** Desired instance count per service. */
  desired: Record<string, number>
  instances: Record<InstanceId, InstanceRec>
  launches: Record<string, LaunchRec>
  terminations: Record<NodeId, TerminationRec>
  volumes: Record<string, VolumeRec>
  addresses: Record<string, AddressRec>
  /** Node a shutdown was asked on: the one node kept when the cluster goes down. */
  keepNode?: NodeId
  /** Sequence for instance and decision ids. */
  seq: number
  /**
   * The leader's latest decisions (bounded: DOC_EVENTS), so every node logs them and a new leader's
   * `events` still shows its predecessor's. Informational: nothing acts on them.
   */
  events?: DocEvent[]
}

/** A decision event as the document carries it (src/events/event.ts ClusterEvent, without seq). */
export interface DocEvent {
  id: string
  at: string
  term: number
  node: NodeId
  kind: 'decision' | 'command' | 'cloud' | 'leader' | 'member' | 'instance'
  subject: string
  from?: string
  to?: string
  reason: string
  by?: string
}

export function emptyDoc (cluster: string): ClusterDoc {
  return {
    term: 0,
    version: 0,
    cluster,
    voters: [],
    nodes: {},
    spec: null,
    phase: 'idle',
    desired: {},
    instances: {},
    launches: {},
    terminations: {},
    volumes: {},
    addresses: {},
    seq: 0
  }
}

/** What a node reports about one of its instances in its heartbeat. */
export interface InstanceReport {
  state: InstanceState
  /** Port it serves on (service port + slot). */
  port?: number
  /** Document version whose dependency view this instance has been given (and applied). */
  view?: number
  /** Hash of the dependency view it has applied (equal across a service's instances once they agree). */
  viewHash?: string
  /** The addresses of its dependencies it was last given, per service. */
  deps?: Record<string, string[]>
  /** How many times its files were re-rendered with new content since it started here. */
  rerenders?: number
  /** The last on_change action and how it went. */
  onChange?: { action: 'reload' | 'restart' | 'none', ok: boolean, at: string, output?: string, note?: string }
  /** Last error (FAIL). */
  error?: string
  /** Its autoscaling metric, from its last healthy HTTP health answer `{"metric": n}` (ONLINE only). */
  metric?: number
  /** Failures since it was last stable (ONLINE for the service's restart.stable_ms). */
  failures?: number
  /** The node stopped restarting it (crash loop): the leader may move it elsewhere. */
  gaveUp?: boolean
}

/** A node's heartbeat, as the core sees it (the mesh adds signatures and sizes). */
export interface Heartbeat {
  node: NodeId
  peer: string
  /** Process start time: a restart is a new incarnation. */
  incarnation: number
  seq: number
  /** Content revision: changes whenever anything but seq, load and the leader's lease counter does. */
  rev?: number
  ip: string
  /** libp2p multiaddr others dial. */
  mesh: string
  /** Admin API base URL. */
  api: string
  load1: number
  zone?: string
  term: number
  leader: NodeId | null
  /** Leader only: highest committed document. */
  commit?: DocId
  /** The latest document this node has persisted. */
  accepted: DocId | null
  /** The latest committed document this node acts on. */
  committed: DocId | null
  /** Highest heartbeat seq of the current leader this node has heard (the leader's lease). */
  ackLeaderSeq?: number
  /** True until the node holds a document from the current leader (it acts on nothing before). */
  joining: boolean
  /** The node lost its persisted state: the leader removes it from the voters and re-adds it. */
  amnesic?: boolean
  /** Nodes booting a new cluster together wait to see this many (0: only join an existing one). */
  bootstrapExpect: number
  launch?: string
  /** Volumes mounted on this node now (the leader detaches a volume only once it is unmounted). */
  mounts?: string[]
  /** Why this node is leaving (a spot interruption or scheduled maintenance notice): move its work away. */
  draining?: string
  instances: Record<InstanceId, InstanceReport>
}
