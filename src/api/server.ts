// The admin HTTP API, served by every node. Reads are open (status holds no secrets); every call that
// changes the cluster needs the admin token. A node that is not the leader forwards changes to it.
import { timingSafeEqual, createHash } from 'node:crypto'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { Command } from '../core/commands.js'
import type { StatusReport } from '../core/status.js'
import type { SubmitResult } from '../node/leader.js'
import { loadSpecFile, loadSpecText } from '../spec/load.js'
import { SERVICE_NAME } from '../spec/schema.js'
import { isSafeKey } from '../core/keys.js'
import { InputError } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import { renderStatusPage } from './page.js'

/** What the API needs from the daemon. */
export interface ApiBackend {
  readonly id: string
  readonly token: string
  status: () => StatusReport
  isLeader: () => boolean
  leaderApi: () => string | undefined
  submit: (cmd: Command) => Promise<SubmitResult>
  readonly defaultSpecPath: string | undefined
}

export interface ApiOptions {
  host: string
  port: number
  logger: Logger
  /** Largest request body accepted. @default 1 MiB */
  bodyLimit?: number
}

const FORWARDED = 'x-wakame-forwarded'
const LaunchBody = z.strictObject({
  spec: z.strictObject({ text: z.string().max(1_000_000), file: z.string().max(4096), dir: z.string().max(4096) }).optional()
}).optional()
const ScaleBody = z.strictObject({ count: z.number().int().min(0).max(1000) })
const MigrateBody = z.strictObject({ to: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'a node id').refine(isSafeKey, 'no such node').optional() }).optional()
const InstanceId = z.string().regex(/^[a-z][a-z0-9-]{0,30}-\d{1,12}$/, 'an instance id looks like app-12')

export async function startApi (backend: ApiBackend, opts: ApiOptions): Promise<{ close: () => Promise<void> }> {
  const app = Fastify({
    loggerInstance: opts.logger as unknown as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? 1_048_576,
    connectionTimeout: 30_000,
    requestTimeout: 60_000
  })

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (status === 500) opts.logger.error({ err }, 'API error')
    void reply.code(status).send({ error: { code: status === 500 ? 'INTERNAL' : 'BAD_REQUEST', message: status === 500 ? 'internal error; see the node log' : err.message } })
  })

  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(renderStatusPage(backend.status())))
  app.get('/v1/status', async () => backend.status())
  app.get('/v1/health', async () => {
    const s = backend.status()
    return { ok: true, node: backend.id, leader: s.leader, term: s.term }
  })

  const guard = async (req: FastifyRequest, reply: FastifyReply): Promise<boolean> => {
    if (authorized(req.headers.authorization, backend.token)) return true
    await reply.code(401).header('www-authenticate', 'Bearer realm="wakame"').send({ error: { code: 'UNAUTHORIZED', message: 'this call changes the cluster: send the admin token as "Authorization: Bearer <token>" (wakame --token-file FILE)' } })
    return false
  }

  /** Run a command on the leader: here if we lead, else forwarded once. */
  const change = async (req: FastifyRequest, reply: FastifyReply, make: () => Command | Promise<Command>): Promise<unknown> => {
    if (!await guard(req, reply)) return reply
    if (!backend.isLeader()) {
      const leader = backend.leaderApi()
      if (!leader || req.headers[FORWARDED]) return await reply.code(503).send({ error: { code: 'NO_LEADER', message: 'no leader right now (an election may be running); retry in a few seconds' } })
      return await forward(req, reply, leader)
    }
    let cmd: Command
    try {
      cmd = await make()
    } catch (err) {
      if (err instanceof InputError) return await reply.code(400).send({ error: { code: 'INPUT_INVALID', message: err.message, problems: err.problems } })
      throw err
    }
    const r = await backend.submit(cmd)
    if (r.ok) return { ok: true, message: r.message, version: r.version, leader: backend.id }
    const code = { NOT_FOUND: 404, AT_MAX: 409, CONFLICT: 409, BAD_REQUEST: 400, NO_SPEC: 409, NOT_LEADER: 503, TIMEOUT: 504 }[r.code]
    return await reply.code(code).send({ error: { code: r.code, message: r.message } })
  }

  app.post('/v1/cluster/launch', async (req, reply) => change(req, reply, () => {
    const body = parse(LaunchBody, req.body ?? undefined)
    if (body?.spec) return { type: 'launch', spec: loadSpecText(body.spec.text, body.spec.file, body.spec.dir) }
    if (backend.defaultSpecPath) return { type: 'launch', spec: loadSpecFile(backend.defaultSpecPath) }
    return { type: 'launch' }
  }))
  app.post('/v1/cluster/shutdown', async (req, reply) => change(req, reply, () => ({ type: 'shutdown', askedOn: String(req.headers['x-wakame-asked-on'] ?? backend.id) })))
  app.post<{ Params: { service: string } }>('/v1/services/:service/propagate', async (req, reply) => change(req, reply, () => ({ type: 'propagate', service: serviceParam(req.params.service) })))
  app.post<{ Params: { service: string } }>('/v1/services/:service/scale', async (req, reply) => change(req, reply, () => ({ type: 'scale', service: serviceParam(req.params.service), count: parse(ScaleBody, req.body).count })))
  app.post<{ Params: { instance: string } }>('/v1/instances/:instance/migrate', async (req, reply) => change(req, reply, () => {
    const to = parse(MigrateBody, req.body ?? undefined)?.to
    return { type: 'migrate', instance: parse(InstanceId, req.params.instance), ...(to ? { to } : {}) }
  }))

  async function forward (req: FastifyRequest, reply: FastifyReply, leader: string): Promise<unknown> {
    try {
      const res = await fetch(new URL(req.url, leader), {
        method: req.method,
        headers: {
          ...(req.body === undefined ? {} : { 'content-type': 'application/json' }),
          authorization: req.headers.authorization ?? '',
          [FORWARDED]: backend.id,
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

function parse<T> (schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value)
  if (r.success) return r.data
  throw new InputError(r.error.issues.map(i => ({ file: 'request', field: i.path.join('.') || undefined, message: i.message })))
}

function serviceParam (s: string): string {
  if (!SERVICE_NAME.test(s) || !isSafeKey(s)) throw new InputError([{ file: 'request', field: 'service', message: `"${s.slice(0, 40)}" is not a service name` }])
  return s
}

/** Constant-time comparison (of digests, so lengths do not leak either). */
export function authorized (header: string | undefined, token: string): boolean {
  const m = /^Bearer (\S+)$/.exec(header ?? '')
  if (!m) return false
  const a = createHash('sha256').update(m[1]!).digest()
  const b = createHash('sha256').update(token).digest()
  return timingSafeEqual(a, b)
}
