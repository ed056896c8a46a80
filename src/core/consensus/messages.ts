// Messages of the election and of document replication. Broadcast on the mesh's control topic;
// messages with `to` are for one node, the others drop them.
import type { ClusterDoc, DocId, NodeId } from '../types.js'

/** Raft's RequestVote, with pre-vote (a dry run that does not change anyone's term). */
export interface VoteRequest { type: 'vote-req', term: number, from: NodeId, preVote: boolean, last: DocId | null }
export interface VoteResponse { type: 'vote-resp', term: number, from: NodeId, to: NodeId, preVote: boolean, granted: boolean }
/** The leader's latest document (the whole state: documents replace each other). */
export interface Append { type: 'append', term: number, from: NodeId, doc: ClusterDoc, commit: DocId | null }
/** A node persisted document `doc` of the leader's term. */
export interface Ack { type: 'ack', term: number, from: NodeId, to: NodeId, doc: DocId }
/** The leader's commit advanced. */
export interface Commit { type: 'commit', term: number, from: NodeId, commit: DocId }
/** A node lacks the committed document: the leader answers with an Append. */
export interface DocRequest { type: 'doc-req', term: number, from: NodeId, have: DocId | null }

export type ConsensusMsg = VoteRequest | VoteResponse | Append | Ack | Commit | DocRequest
