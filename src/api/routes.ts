// The admin API's routes as data: the server registers exactly these (server.ts), and the OpenAPI
// document served at /v1/openapi.json is built from the same table and schemas, so what is
// documented is what is served.
import { z } from 'zod'
import { SERVICE_NAME } from '../spec/schema.js'
import { VERSION } from '../version.js'
import { ChangeAnswer, ErrorAnswer, EventsAnswer, EventsQuery, HealthAnswer, LaunchBody, MigrateBody, PlanAnswer, PlanBody, ScaleBody, StatusAnswer } from './schemas.js'

export const ServiceParam = z.string().regex(SERVICE_NAME, 'a service name: lower-case letters, digits and "-"')
export const InstanceParam = z.string().regex(/^[a-z][a-z0-9-]{0,30}-\d{1,12}$/, 'an instance id looks like app-12')

interface Answer { description: string, schema?: z.ZodType, html?: true, text?: true }

export interface Route {
  method: 'GET' | 'POST'
  /** OpenAPI style: /v1/services/{service}/scale */
  path: string
  summary: string
  /** Needs the admin token (everything that changes the cluster). */
  protected: boolean
  params?: Record<string, z.ZodString>
  /** Query parameters (all optional). */
  query?: z.ZodObject
  body?: { schema: z.ZodType, required: boolean }
  answers: Record<number, Answer>
}

const err = (description: string): Answer => ({ description, schema: ErrorAnswer })

/** What every state-changing call may answer besides success. */
const changeAnswers: Record<number, Answer> = {
  200: { description: 'committed by the leader', schema: ChangeAnswer },
  400: err('bad input (the body, a parameter, or the spec); nothing changed'),
  401: err('no admin token, or a wrong one; nothing changed'),
  404: err('no such service, instance or node'),
  409: err('not possible now (at max, no spec, a conflicting change)'),
  413: err('request body too large'),
  415: err('body is not application/json'),
  503: err('no leader right now (an election may be running); retry'),
  504: err('the leader did not commit in time; the change may still happen')
}

/** A plan answers like a change (same errors, same forwarding), but commits nothing. */
const planAnswers: Record<number, Answer> = { ...changeAnswers, 200: { description: 'what the leader would do; nothing changed', schema: PlanAnswer } }
delete planAnswers[504]

export const ROUTES = {
  statusPage: { method: 'GET', path: '/', summary: 'The live status page: services, instances, nodes and recent events, updated in place (HTML with inline script; refreshes itself without script)', protected: false, answers: { 200: { description: 'HTML', html: true } } },
  status: { method: 'GET', path: '/v1/status', summary: 'The cluster: services, instances, nodes, launches, volumes, addresses', protected: false, answers: { 200: { description: 'status as this node sees it', schema: StatusAnswer } } },
  events: { method: 'GET', path: '/v1/events', summary: 'Event history as this node logged it: the leaders\' decisions, operator commands, member, leader and instance changes (oldest first)', protected: false, query: EventsQuery, answers: { 200: { description: 'events, and the last sequence number assigned', schema: EventsAnswer }, 400: err('a bad since or limit') } },
  health: { method: 'GET', path: '/v1/health', summary: 'Liveness of this node and who it thinks leads', protected: false, answers: { 200: { description: 'alive', schema: HealthAnswer } } },
  metrics: { method: 'GET', path: '/metrics', summary: 'This node\'s metrics in the Prometheus text format', protected: false, answers: { 200: { description: 'Prometheus exposition format 0.0.4', text: true } } },
  openapi: { method: 'GET', path: '/v1/openapi.json', summary: 'This document', protected: false, answers: { 200: { description: 'OpenAPI 3.1', schema: z.record(z.string(), z.unknown()) } } },
  launch: { method: 'POST', path: '/v1/cluster/launch', summary: 'launch_cluster: bring every service up in dependency order (optionally with a new spec)', protected: true, body: { schema: LaunchBody, required: false }, answers: changeAnswers },
  shutdown: { method: 'POST', path: '/v1/cluster/shutdown', summary: 'shutdown_cluster: stop everything in reverse dependency order', protected: true, answers: changeAnswers },
  propagate: { method: 'POST', path: '/v1/services/{service}/propagate', summary: 'propagate_service: one more instance, up to max', protected: true, params: { service: ServiceParam }, answers: changeAnswers },
  scale: { method: 'POST', path: '/v1/services/{service}/scale', summary: 'Set the number of instances (within min and max)', protected: true, params: { service: ServiceParam }, body: { schema: ScaleBody, required: true }, answers: changeAnswers },
  // Protected although it changes nothing: it runs the scheduler on the leader (work anyone could
  // ask for in a loop), and a launch plan carries a spec, as the launch itself does.
  plan: { method: 'POST', path: '/v1/plan', summary: 'plan / dry run: the actions the leader would take for a command (launch, place, move, stop, terminate) and why, without taking them; no body: what it would do on its own', protected: true, body: { schema: PlanBody, required: false }, answers: planAnswers },
  migrate: { method: 'POST', path: '/v1/instances/{instance}/migrate', summary: 'migrate_service: move one instance to another node (optionally a given one)', protected: true, params: { instance: InstanceParam }, body: { schema: MigrateBody, required: false }, answers: changeAnswers }
} as const satisfies Record<string, Route>

export type RouteName = keyof typeof ROUTES

/** Fastify's form of an OpenAPI path: {service} → :service. */
export const fastifyPath = (path: string): string => path.replace(/\{(\w+)\}/g, ':$1')

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>
  return rest
}

/** The OpenAPI 3.1 document (JSON Schema 2020-12 inside, as zod produces). */
export function openApiDocument (): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const [name, r] of Object.entries(ROUTES) as Array<[string, Route]>) {
    const op: Record<string, unknown> = {
      operationId: name,
      summary: r.summary,
      responses: Object.fromEntries(Object.entries(r.answers).map(([code, a]) => [code, {
        description: a.description,
        content: a.html ? { 'text/html': { schema: { type: 'string' } } } : a.text ? { 'text/plain': { schema: { type: 'string' } } } : { 'application/json': { schema: jsonSchema(a.schema!, 'output') } }
      }]))
    }
    const parameters = [
      ...Object.entries(r.params ?? {}).map(([n, s]) => ({ name: n, in: 'path', required: true, schema: jsonSchema(s, 'input') })),
      ...Object.entries(r.query?.shape ?? {}).map(([n, s]) => ({ name: n, in: 'query', required: false, schema: jsonSchema((s as z.ZodOptional).unwrap() as z.ZodType, 'input') }))
    ]
    if (parameters.length > 0) op.parameters = parameters
    if (r.body) op.requestBody = { required: r.body.required, content: { 'application/json': { schema: jsonSchema(r.body.schema, 'input') } } }
    if (r.protected) op.security = [{ adminToken: [] }]
    paths[r.path] = { ...paths[r.path], [r.method.toLowerCase()]: op }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'wakame admin API', version: VERSION, description: 'Served by every node. Reads are open; every call that changes the cluster needs the admin token. A node that does not lead forwards changes to the leader.' },
    components: { securitySchemes: { adminToken: { type: 'http', scheme: 'bearer', description: 'the cluster admin token (wakame token)' } } },
    paths
  }
}
