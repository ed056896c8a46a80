// Wire format of gossip messages: JSON with a protocol version, validated with zod before anything
// acts on it. Strict on meaning (types, ranges, sizes), tolerant of what a newer minor version adds
// (unknown fields are dropped, not rejected), so a rolling upgrade can run mixed versions.
import { z } from 'zod'
import { isSafeKey } from '../core/keys.js'
import type { ConsensusMsg } from '../core/consensus/messages.js'
import type { ClusterDoc, Heartbeat } from '../core/types.js'
import { PROTOCOL_MAJOR } from '../version.js'

/** Largest message accepted on each topic, in bytes. */
export const MAX_HEARTBEAT_BYTES = 64 * 1024
export const MAX_CONTROL_BYTES = 4 * 1024 * 1024

const id = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/).refine(isSafeKey, 'reserved name')
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const docId = z.object({ term: count, version: count })
const state = z.enum(['Offline', 'Starting', 'ONLINE', 'Migrating', 'Stopping', 'FAIL'])

const InstanceReportSchema = z.object({
  state,
  port: z.number().int().min(1).max(65535).optional(),
  view: count.optional(),
  viewHash: z.string().regex(/^[0-9a-f]{1,64}$/).optional(),
  deps: z.record(z.string().max(64), z.array(z.string().max(80)).max(256)).optional(),
  rerenders: count.optional(),
  onChange: z.object({ action: z.enum(['reload', 'restart', 'none']), ok: z.boolean(), at: z.string().max(40), output: z.string().max(2000).optional(), note: z.string().max(200).optional() }).optional(),
  error: z.string().max(2000).optional(),
  metric: z.number().min(-1e12).max(1e12).optional(),
  failures: count.optional(),
  gaveUp: z.boolean().optional()
})

export const HeartbeatSchema = z.object({
  node: id,
  peer: z.string().min(1).max(128),
  incarnation: count,
  seq: count,
  rev: count.optional(),
  ip: z.union([z.ipv4(), z.ipv6()]),
  mesh: z.string().max(256),
  api: z.string().max(256),
  load1: z.number().min(0).max(1e6),
  zone: z.string().max(64).optional(),
  term: count,
  leader: id.nullable(),
  commit: docId.optional(),
  accepted: docId.nullable(),
  committed: docId.nullable(),
  ackLeaderSeq: count.optional(),
  joining: z.boolean(),
  amnesic: z.boolean().optional(),
  bootstrapExpect: z.number().int().min(0).max(1000),
  launch: id.optional(),
  mounts: z.array(z.string().max(128)).max(64).optional(),
  draining: z.string().max(200).optional(),
  instances: z.record(id, InstanceReportSchema)
})

// The document carries the spec, validated when it entered the cluster (launch); here only its shape.
const DocSchema = z.object({
  term: count,
  version: count,
  cluster: z.string(),
  voters: z.array(id).max(1000),
  nodes: z.record(id, z.object({ id, ip: z.string(), peer: z.string(), launch: id.optional(), zone: z.string().optional() })),
  spec: z.object({ cluster: z.record(z.string(), z.unknown()), services: z.record(z.string(), z.record(z.string(), z.unknown())), dir: z.string() }).nullable(),
  phase: z.enum(['idle', 'up', 'down']),
  desired: z.record(z.string(), count),
  instances: z.record(id, z.object({
    id,
    service: z.string(),
    node: id.nullable(),
    slot: count,
    phase: z.enum(['run', 'drain', 'stop']),
    drainVersion: count.optional(),
    migratingTo: id.optional(),
    replaces: id.optional(),
    notOn: id.optional(),
    failedOn: z.array(id).max(100).optional(),
    gaveUp: z.string().max(2000).optional(),
    volume: z.string().optional()
  })),
  launches: z.record(id, z.object({ id, term: count, status: z.enum(['pending', 'launched', 'failed']), vm: id.optional(), reason: z.string(), error: z.string().optional(), zone: z.string().max(64).optional() })),
  terminations: z.record(id, z.object({ node: id, reason: z.string(), status: z.enum(['pending', 'done']) })),
  volumes: z.record(z.string(), z.object({ name: z.string(), service: z.string(), attachedTo: id.nullable(), wantAt: id.nullable(), zone: z.string().max(64).optional() })),
  // Optional: documents of a version without addresses still decode.
  addresses: z.record(z.string(), z.object({ name: z.string(), service: z.string(), associatedTo: id.nullable(), wantAt: id.nullable(), ip: z.string().max(64).optional() })).default({}),
  keepNode: id.optional(),
  seq: count,
  // The leader's recent decisions (informational, bounded: 30 are kept; 64 leaves room for a newer minor version).
  events: z.array(z.object({
    id: z.string().max(200),
    at: z.string().max(40),
    term: count,
    node: id,
    kind: z.enum(['decision', 'command', 'cloud', 'leader', 'member', 'instance']),
    subject: z.string().max(200),
    from: z.string().max(200).optional(),
    to: z.string().max(200).optional(),
    reason: z.string().max(1000),
    by: z.string().max(200).optional()
  })).max(64).optional()
})

/**
 * Why peers would reject this document, or undefined when they accept it. The leader checks its
 * own proposals with this, so a bad one is refused up front instead of never committing.
 */
export function checkDoc (doc: unknown): string | undefined {
  const r = DocSchema.safeParse(doc)
  return r.success ? undefined : r.error.issues.slice(0, 3).map(i => `${i.path.join('.')}: ${i.message}`).join('; ')
}

export const ConsensusMsgSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('vote-req'), term: count, from: id, preVote: z.boolean(), last: docId.nullable() }),
  z.object({ type: z.literal('vote-resp'), term: count, from: id, to: id, preVote: z.boolean(), granted: z.boolean() }),
  z.object({ type: z.literal('append'), term: count, from: id, doc: DocSchema, commit: docId.nullable() }),
  z.object({ type: z.literal('ack'), term: count, from: id, to: id, doc: docId }),
  z.object({ type: z.literal('commit'), term: count, from: id, commit: docId }),
  z.object({ type: z.literal('doc-req'), term: count, from: id, have: docId.nullable() })
])

const Envelope = z.object({ v: z.string().regex(/^\d+\.\d+$/), cluster: z.string(), body: z.unknown() })

export type DecodeResult<T> = { ok: true, value: T } | { ok: false, reason: string }

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export function encode (cluster: string, body: Heartbeat | ConsensusMsg): Uint8Array {
  return encoder.encode(JSON.stringify({ v: `${PROTOCOL_MAJOR}.0`, cluster, body }))
}

function decodeWith<T> (data: Uint8Array, cluster: string, max: number, schema: z.ZodType<T>): DecodeResult<T> {
  if (data.byteLength > max) return { ok: false, reason: `message of ${data.byteLength} bytes exceeds ${max}` }
  let raw: unknown
  try {
    raw = JSON.parse(decoder.decode(data))
  } catch {
    return { ok: false, reason: 'not UTF-8 JSON' }
  }
  const env = Envelope.safeParse(raw)
  if (!env.success) return { ok: false, reason: 'bad envelope' }
  if (Number(env.data.v.split('.')[0]) !== PROTOCOL_MAJOR) return { ok: false, reason: `protocol ${env.data.v}, this node speaks ${PROTOCOL_MAJOR}.x` }
  if (env.data.cluster !== cluster) return { ok: false, reason: `cluster "${env.data.cluster}" is not "${cluster}"` }
  const body = schema.safeParse(env.data.body)
  if (!body.success) return { ok: false, reason: `invalid: ${body.error.issues.slice(0, 3).map(i => `${i.path.join('.')}: ${i.message}`).join('; ')}` }
  return { ok: true, value: body.data }
}

export function decodeHeartbeat (data: Uint8Array, cluster: string): DecodeResult<Heartbeat> {
  return decodeWith(data, cluster, MAX_HEARTBEAT_BYTES, HeartbeatSchema as z.ZodType<Heartbeat>)
}

export function decodeControl (data: Uint8Array, cluster: string): DecodeResult<ConsensusMsg> {
  const r = decodeWith(data, cluster, MAX_CONTROL_BYTES, ConsensusMsgSchema)
  return r as DecodeResult<ConsensusMsg>
}

export type { ClusterDoc }
