// The admin API's requests and answers, as zod schemas: the server parses requests with them and
// the OpenAPI document (/v1/openapi.json, routes.ts) is generated from them, so the two cannot drift
// apart. test/e2e/api.test.ts checks real answers against them; schemathesis fuzzes the API from the
// document (test/api-fuzz).
import { z } from 'zod'

export const NodeId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/)
const docId = z.object({ term: z.number().int(), version: z.number().int() })
const state = z.enum(['Offline', 'Starting', 'ONLINE', 'Migrating', 'Stopping', 'FAIL'])

export const LaunchBody = z.strictObject({
  spec: z.strictObject({
    /** The spec's YAML. */
    text: z.string().max(256_000),
    /** The name errors point at (the file it came from). */
    file: z.string().min(1).max(4096),
    /** Where relative paths in its commands resolve. */
    dir: z.string().min(1).max(4096)
  }).optional()
})

export const ScaleBody = z.strictObject({ count: z.number().int().min(0).max(1000) })

export const MigrateBody = z.strictObject({ to: NodeId.optional() })

export const ChangeAnswer = z.object({
  ok: z.literal(true),
  message: z.string(),
  /** Document version the change was committed at. */
  version: z.number().int(),
  leader: NodeId
})

export const ErrorAnswer = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    problems: z.array(z.object({ file: z.string(), line: z.number().int().optional(), column: z.number().int().optional(), field: z.string().optional(), message: z.string() })).optional()
  })
})

export const HealthAnswer = z.object({ ok: z.literal(true), node: NodeId, leader: NodeId.nullable(), term: z.number().int() })

const InstanceStatus = z.object({
  id: z.string(),
  service: z.string(),
  state,
  node: NodeId.nullable(),
  ip: z.string().optional(),
  port: z.number().int().optional(),
  phase: z.enum(['run', 'drain', 'stop']),
  migratingTo: z.string().optional(),
  replaces: z.string().optional(),
  volume: z.string().optional(),
  error: z.string().optional(),
  view: z.number().int().optional(),
  deps: z.record(z.string(), z.array(z.string())).optional(),
  rerenders: z.number().int().optional(),
  failures: z.number().int().optional(),
  crashLoop: z.boolean().optional(),
  failedOn: z.array(NodeId).optional(),
  gaveUp: z.string().optional(),
  onChange: z.object({ action: z.enum(['reload', 'restart', 'none']), ok: z.boolean(), at: z.string(), output: z.string().optional(), note: z.string().optional() }).optional()
})

export const StatusAnswer = z.object({
  cluster: z.string(),
  answeredBy: NodeId,
  leader: NodeId.nullable(),
  term: z.number().int(),
  committed: docId.nullable(),
  phase: z.enum(['idle', 'up', 'down']),
  settled: z.boolean(),
  minNodes: z.number().int().optional(),
  warnings: z.array(z.string()),
  services: z.array(z.object({
    name: z.string(),
    current: z.number().int(),
    min: z.number().int(),
    max: z.number().int(),
    desired: z.number().int(),
    dependsOn: z.array(z.string()),
    level: z.number().int(),
    settled: z.boolean(),
    instances: z.array(InstanceStatus),
    urls: z.array(z.string()).optional()
  })),
  nodes: z.array(z.object({
    id: NodeId,
    ip: z.string(),
    mesh: z.string().optional(),
    api: z.string().optional(),
    status: z.enum(['alive', 'suspect', 'dead', 'unknown']),
    reason: z.string().optional(),
    voter: z.boolean(),
    leader: z.boolean(),
    load1: z.number().optional(),
    heartbeatAgeS: z.number().optional(),
    instances: z.number().int(),
    launch: z.string().optional(),
    terminating: z.boolean()
  })),
  launches: z.array(z.object({ id: z.string(), term: z.number().int(), status: z.enum(['pending', 'launched', 'failed']), vm: z.string().optional(), reason: z.string(), error: z.string().optional(), zone: z.string().optional() })),
  volumes: z.array(z.object({ name: z.string(), service: z.string(), attachedTo: NodeId.nullable(), wantAt: NodeId.nullable() })),
  addresses: z.array(z.object({ name: z.string(), service: z.string(), associatedTo: NodeId.nullable(), wantAt: NodeId.nullable(), ip: z.string().optional() }))
})
