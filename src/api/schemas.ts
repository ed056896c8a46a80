// The admin API's requests and answers, as zod schemas: the server parses requests with them and
// the OpenAPI document (/v1/openapi.json, routes.ts) is generated from them, so the two cannot drift
// apart. test/e2e/api.test.ts checks real answers against them; schemathesis fuzzes the API from the
// document (test/api-fuzz).
import { z } from 'zod'
import { SERVICE_NAME } from '../spec/schema.js'

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

const LaunchSpecBody = LaunchBody.shape.spec
const service = z.string().regex(SERVICE_NAME, 'a service name: lower-case letters, digits and "-"')

/** A command to plan (dry run): the same commands and arguments as their own routes. No body: what the leader would do on its own. */
export const PlanBody = z.discriminatedUnion('command', [
  z.strictObject({ command: z.literal('launch'), spec: LaunchSpecBody }),
  z.strictObject({ command: z.literal('shutdown') }),
  z.strictObject({ command: z.literal('propagate'), service }),
  z.strictObject({ command: z.literal('scale'), service, count: z.number().int().min(0).max(1000) }),
  z.strictObject({ command: z.literal('migrate'), instance: z.string().regex(/^[a-z][a-z0-9-]{0,30}-\d{1,12}$/, 'an instance id looks like app-12'), to: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional() })
])

export const ScaleBody = z.strictObject({ count: z.number().int().min(0).max(1000) })

export const MigrateBody = z.strictObject({ to: NodeId.optional() })

export const ChangeAnswer = z.object({
  ok: z.literal(true),
  message: z.string(),
  /** Document version the change was committed at. */
  version: z.number().int(),
  leader: NodeId
})

export const PlanAnswer = z.object({
  ok: z.literal(true),
  /** What the command would answer (empty without a command). */
  message: z.string(),
  leader: NodeId,
  /** Version of the document the plan starts from (nothing is proposed: it stays the same). */
  version: z.number().int(),
  actions: z.array(z.object({
    step: z.number().int(),
    kind: z.enum(['launch', 'place', 'move', 'drain', 'stop', 'terminate', 'give-up']),
    what: z.string(),
    why: z.string()
  })),
  notes: z.array(z.string()),
  steps: z.number().int(),
  /** False: the simulated cluster was still changing when the plan was cut short. */
  settled: z.boolean()
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
  onChange: z.object({ action: z.enum(['reload', 'restart', 'none']), ok: z.boolean(), at: z.string(), output: z.string().optional(), note: z.string().optional() }).optional(),
  metric: z.number().optional(),
  failures: z.number().int().optional(),
  crashLoop: z.boolean().optional(),
  failedOn: z.array(NodeId).optional(),
  gaveUp: z.string().optional()
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
    urls: z.array(z.string()).optional(),
    scale: z.object({
      policy: z.literal('target'),
      metric: z.enum(['load1', 'reported']),
      target: z.number(),
      value: z.number().optional(),
      reporting: z.number().int()
    }).optional()
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

/** Query of GET /v1/events: `since` a sequence number (events after it) or an ISO time (at or after it). */
export const EventsQuery = z.object({
  since: z.string().max(40).regex(/^(\d{1,15}|\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:\d\d))$/, 'a sequence number (from "last") or an ISO time such as 2026-12-04T11:00:00Z').optional(),
  limit: z.number().int().min(1).max(1000).optional()
})

const Event = z.object({
  id: z.string(),
  seq: z.number().int(),
  at: z.string(),
  term: z.number().int(),
  node: z.string(),
  kind: z.enum(['decision', 'command', 'cloud', 'leader', 'member', 'instance']),
  subject: z.string(),
  from: z.string().optional(),
  to: z.string().optional(),
  reason: z.string(),
  by: z.string().optional()
})

export const EventsAnswer = z.object({
  answeredBy: NodeId,
  /** Pass it as `since` to get only newer events: the highest sequence number assigned, or, when `limit` cut an answer given `since`, the last one returned. */
  last: z.number().int(),
  events: z.array(Event)
})
