// The admin HTTP API, served by every node. Reads are open (status holds no secrets); every call that
// changes the cluster needs the admin token. A node that is not the leader forwards changes to it.
// Routes and their schemas are declared in routes.ts (which also makes /v1/openapi.json).
import { timingSafeEqual, createHash } from 'node:crypto'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { Command } from '../core/commands.js'
import type { StatusReport } from '../core/status.js'
import type { ClusterEvent } from '../events/event.js'
import type { EventQuery } from '../events/ring.js'
import type { PlanAnswerResult, SubmitResult } from '../node/leader.js'
import { loadSpecFile, loadSpecText } from '../spec/load.js'
import { isSafeKey } from '../core/keys.js'
import { InputError } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import { PAGE_EVENTS, renderStatusPage } from './page.js'
import { fastifyPath, InstanceParam, openApiDocument, ROUTES, ServiceParam, type Route, type RouteName } from './routes.js'
import { EventsQuery, LaunchBody, MigrateBody, PlanBody, ScaleBody } from './schemas.js'

/** What the API needs from the daemon. */
export interface ApiBackend {
  readonly id: string
  /** Admin tokens accepted (the primary, and more during a rotation). */
  readonly tokens: readonly string[]
  status: () => StatusReport
  isLeader: () => boolean
  leaderApi: () => string | undefined
  /** `by`: who asked (the node the call reached, the client address), for the event log. */
  submit: (cmd: Command, by?: string) => Promise<SubmitResult>
  eventLog: (q: EventQuery) => { events: ClusterEvent[], last: number }
  /** What the leader would do for a command (or on its own), without doing it. */
  plan: (cmd: Command | undefined) => PlanAnswerResult
  readonly defaultSpecPath: string | undefined
  /** Prometheus exposition of this node (undefined: metrics are off). */
  metrics: () => Promise<{ text: string, contentType: string } | undefined>
}

export interface ApiOptions {
  host: string
  port: number
  logger: Logger
  /** Largest request body accepted: well above the largest valid one (a 256k-character spec, every character escaped, is 1.5 MB). Only read once the token is checked. @default 8 MiB */
  bodyLimit?: number
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: Buffer, key: Buffer }
}

const FORWARDED = 'x-wakame-forwarded'
/** The address of the client a forwarded change came from (trusted only with the admin token). */
const CLIENT = 'x-wakame-client'
const DEFAULT_EVENTS_LIMIT = 200

type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>

export async function startApi (backend: ApiBackend, opts: ApiOptions): Promise<{ close: () => Promise<void> }> {
  const app = Fastify({
    loggerInstance: opts.logger as unknown as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? 8 * 1_048_576,
    connectionTimeout: 30_000,
    requestTimeout: 60_000,
    ...(opts.tls ? { https: opts.tls } : {}),
    // Errors fastify raises before routing (a bad percent-encoding in the URL) in our error shape too.
    frameworkErrors: (err, _req, reply) => {
      void (reply as FastifyReply).code(400).send({ error: { code: err.code ?? 'BAD_REQUEST', message: err.message } })
    }
  })

  app.setErrorHandler((err: Error & { statusCode?: number, code?: string }, req, reply) => {
    const allow = (req.routeOptions.config as { allow?: string[] } | undefined)?.allow
    if (allow) return void methodNotAllowed(req, reply, allow)
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (status === 500) opts.logger.error({ err }, 'API error')
    void reply.code(status).send({ error: { code: status === 500 ? 'INTERNAL' : (err.code ?? 'BAD_REQUEST'), message: status === 500 ? 'internal error; see the node log' : err.message } })
  })
  // JSON only: fastify would also take text/plain bodies, which no route documents.
  app.removeContentTypeParser('text/plain')
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: { code: 'NO_ROUTE', message: `no route ${req.method} ${req.url.slice(0, 200)}; see /v1/openapi.json` } })
  })

  const statusOf = { NOT_FOUND: 404, AT_MAX: 409, CONFLICT: 409, BAD_REQUEST: 400, NO_SPEC: 409, NOT_LEADER: 503, TIMEOUT: 504 } as const
  /** Run on the leader: here if we lead, else forwarded once. Bad input is a 400 and nothing more. */
  const onLeader = <C>(make: (req: FastifyRequest) => C | Promise<C>, run: (cmd: C, reply: FastifyReply, req: FastifyRequest) => Promise<unknown>): Handler => async (req, reply) => {
    if (!backend.isLeader()) {
      const leader = backend.leaderApi()
      if (!leader || req.headers[FORWARDED]) return await reply.code(503).send({ error: { code: 'NO_LEADER', message: 'no leader right now (an election may be running); retry in a few seconds' } })
      return await forward(req, reply, leader)
    }
    let cmd: C
    try {
      cmd = await make(req)
    } catch (err) {
      if (err instanceof InputError) return await reply.code(400).send({ error: { code: 'INPUT_INVALID', message: err.message, problems: err.problems } })
      throw err
    }
    return await run(cmd, reply, req)
  }
  const change = (make: (req: FastifyRequest) => Command | Promise<Command>): Handler => onLeader(make, async (cmd, reply, req) => {
    const by = `${header(req, 'x-wakame-asked-on') ?? backend.id} from ${header(req, CLIENT) ?? req.ip}`
    const r = await backend.submit(cmd, by)
    if (r.ok) return { ok: true, message: r.message, version: r.version, leader: backend.id }
    return await reply.code(statusOf[r.code]).send({ error: { code: r.code, message: r.message } })
  })
  const launchCommand = (spec: z.infer<typeof LaunchBody>['spec']): Command => {
    if (spec) return { type: 'launch', spec: loadSpecText(spec.text, spec.file, spec.dir) }
    if (backend.defaultSpecPath) return { type: 'launch', spec: loadSpecFile(backend.defaultSpecPath) }
    return { type: 'launch' }
  }
  const askedOn = (req: FastifyRequest): string => String(req.headers['x-wakame-asked-on'] ?? backend.id)
  const migrateTo = (to: string | undefined): string | undefined => {
    if (to !== undefined && !isSafeKey(to)) throw new InputError([{ file: 'request', field: 'to', message: `no node "${to}"` }])
    return to
  }
  /** The command a plan body names, built as its own route builds it. */
  const planCommandOf = (req: FastifyRequest): Command | undefined => {
    if (req.body === undefined) return undefined
    const b = parse(PlanBody, req.body)
    switch (b.command) {
      case 'launch': return launchCommand(b.spec)
      case 'shutdown': return { type: 'shutdown', askedOn: askedOn(req) }
      case 'propagate': return { type: 'propagate', service: serviceName(b.service) }
      case 'scale': return { type: 'scale', service: serviceName(b.service), count: b.count }
      case 'migrate': {
        const to = migrateTo(b.to)
        return { type: 'migrate', instance: b.instance, ...(to ? { to } : {}) }
      }
    }
  }
  const param = (req: FastifyRequest, name: string, schema: z.ZodType<string>): string => parse(schema, (req.params as Record<string, string>)[name], name)

  const eventsAnswer = (req: FastifyRequest): unknown => {
    const raw = (req.query ?? {}) as Record<string, unknown>
    // Query values arrive as strings: limit must be plain digits before it is a number.
    const limit = raw.limit === undefined ? undefined : typeof raw.limit === 'string' && /^\d{1,6}$/.test(raw.limit) ? Number(raw.limit) : NaN
    const q = parse(EventsQuery, { ...(raw.since !== undefined ? { since: raw.since } : {}), ...(limit !== undefined ? { limit } : {}) })
    let since: number | string | undefined
    if (q.since !== undefined) {
      if (/^\d+$/.test(q.since)) since = Number(q.since)
      else if (Number.isNaN(Date.parse(q.since))) throw new InputError([{ file: 'request', field: 'since', message: `"${q.since}" is not a valid time` }])
      else since = q.since
    }
    const r = backend.eventLog({ ...(since !== undefined ? { since } : {}), limit: q.limit ?? DEFAULT_EVENTS_LIMIT })
    return { answeredBy: backend.id, last: r.last, events: r.events }
  }

  const handlers: Record<RouteName, Handler> = {
    metrics: async (_req, reply) => {
      const m = await backend.metrics()
      if (!m) return await reply.code(404).send({ error: { code: 'NO_METRICS', message: 'metrics are off on this node' } })
      return await reply.type(m.contentType).send(m.text)
    },
    statusPage: async (_req, reply) => reply.type('text/html; charset=utf-8').send(renderStatusPage(backend.status(), backend.eventLog({ limit: PAGE_EVENTS }).events)),
    status: async () => backend.status(),
    events: async (req, reply) => {
      try {
        return eventsAnswer(req)
      } catch (err) {
        if (err instanceof InputError) return await reply.code(400).send({ error: { code: 'INPUT_INVALID', message: err.message, problems: err.problems } })
        throw err
      }
    },
    health: async () => {
      const s = backend.status()
      return { ok: true, node: backend.id, leader: s.leader, term: s.term }
    },
    openapi: async () => document,
    launch: change(req => launchCommand(parse(LaunchBody, req.body === undefined ? {} : req.body).spec)),
    shutdown: change(req => ({ type: 'shutdown', askedOn: askedOn(req) })),
    propagate: change(req => ({ type: 'propagate', service: serviceName(param(req, 'service', ServiceParam)) })),
    scale: change(req => ({ type: 'scale', service: serviceName(param(req, 'service', ServiceParam)), count: parse(ScaleBody, req.body).count })),
    migrate: change(req => {
      const to = migrateTo(parse(MigrateBody, req.body === undefined ? {} : req.body).to)
      return { type: 'migrate', instance: param(req, 'instance', InstanceParam), ...(to ? { to } : {}) }
    }),
    plan: onLeader(planCommandOf, async (cmd, reply) => {
      const r = backend.plan(cmd)
      if (!r.ok) return await reply.code(statusOf[r.code]).send({ error: { code: r.code, message: r.message } })
      return { ok: true, message: r.message, leader: backend.id, version: r.from, actions: r.actions, notes: r.notes, steps: r.steps, settled: r.settled }
    })
  }
  const document = openApiDocument()

  // The token is checked on request, before the body is even read: without it, a protected route
  // answers 401 whatever the body holds.
  const guard = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (authorized(req.headers.authorization, backend.tokens)) return
    const message = req.headers.authorization === undefined
      ? 'this call changes the cluster: send the admin token as "Authorization: Bearer <token>" (wakame --token-file FILE)'
      : 'the admin token sent is not accepted by this cluster (or not sent as "Authorization: Bearer <token>"); nothing changed'
    await reply.code(401).header('www-authenticate', 'Bearer realm="wakame"').send({ error: { code: 'UNAUTHORIZED', message } })
  }
  for (const [name, route] of Object.entries(ROUTES) as Array<[RouteName, Route]>) {
    const handler: Handler = route.body || route.method === 'GET'
      ? handlers[name]
      : async (req, reply) => req.body === undefined ? await handlers[name](req, reply) : await reply.code(400).send({ error: { code: 'INPUT_INVALID', message: `${route.path} takes no body` } })
    app.route({ method: route.method, url: fastifyPath(route.path), handler, ...(route.protected ? { onRequest: guard } : {}) })
  }
  // A known path asked with another method: 405 and the methods it has (not a 404 that hides it).
  const byPath = new Map<string, string[]>()
  for (const r of Object.values(ROUTES) as Route[]) byPath.set(r.path, [...byPath.get(r.path) ?? [], r.method, ...(r.method === 'GET' ? ['HEAD'] : [])])
  for (const [path, methods] of byPath) {
    const others = app.supportedMethods.filter(m => !methods.includes(m) && m !== 'OPTIONS')
    // (config.allow also turns errors before the handler, like a body fastify cannot parse, into the 405.)
    app.route({ method: others, url: fastifyPath(path), config: { allow: methods }, handler: async (req, reply) => await methodNotAllowed(req, reply, methods) })
  }

  async function forward (req: FastifyRequest, reply: FastifyReply, leader: string): Promise<unknown> {
    try {
      const res = await fetch(new URL(req.url, leader), {
        method: req.method,
        headers: {
          ...(req.body === undefined ? {} : { 'content-type': 'application/json' }),
          authorization: req.headers.authorization ?? '',
          [FORWARDED]: backend.id,
          [CLIENT]: req.ip,
          'x-wakame-asked-on': String(req.headers['x-wakame-asked-on'] ?? backend.id)
        },
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        signal: AbortSignal.timeout(60_000)
      })
      const text = await res.text()
      return await reply.code(res.status).type(res.headers.get('content-type') ?? 'application/json').send(text)
    } catch (err) {
      return await reply.code(503).send({ error: { code: 'NO_LEADER', message: `the leader at ${leader} did not answer (${(err as Error).message}); retry` } })
    }
  }

  await app.listen({ host: opts.host, port: opts.port })
  return { close: async () => { await app.close() } }
}

async function methodNotAllowed (req: FastifyRequest, reply: FastifyReply, allow: string[]): Promise<FastifyReply> {
  return await reply.code(405).header('allow', allow.join(', ')).send({ error: { code: 'METHOD_NOT_ALLOWED', message: `${req.method} is not allowed here; use ${allow.join(' or ')}` } })
}

function parse<T> (schema: z.ZodType<T>, value: unknown, field?: string): T {
  const r = schema.safeParse(value)
  if (r.success) return r.data
  throw new InputError(r.error.issues.map(i => ({ file: 'request', field: [field, ...i.path].filter(p => p !== undefined).join('.') || undefined, message: i.message })))
}

/** A request header as one short string (a repeated or runaway header is not trusted whole). */
function header (req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name]
  return typeof v === 'string' && v !== '' ? v.slice(0, 64) : undefined
}

function serviceName (s: string): string {
  if (!isSafeKey(s)) throw new InputError([{ file: 'request', field: 'service', message: `"${s}" is not a service name` }])
  return s
}

/** Constant-time comparison (of digests, so lengths do not leak either), against every accepted token. */
export function authorized (header: string | undefined, tokens: readonly string[]): boolean {
  const m = /^Bearer (\S+)$/.exec(header ?? '')
  if (!m) return false
  const a = createHash('sha256').update(m[1]!).digest()
  let ok = false
  for (const token of tokens) ok = timingSafeEqual(a, createHash('sha256').update(token).digest()) || ok
  return ok
}
