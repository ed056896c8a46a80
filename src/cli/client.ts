// The CLI's view of a node: its API URL and the admin token, from flags, the environment, or the
// file the demo leaves in .wakame/demo/cli.json.
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import type { StatusReport } from '../core/status.js'
import type { ClusterEvent } from '../events/event.js'
import { loadToken } from '../mesh/keys.js'
import { WakameError } from '../util/errors.js'

export const DEMO_CLI_FILE = '.wakame/demo/cli.json'

export interface ClientOptions {
  node?: string
  tokenFile?: string
  /** How long one request may take. @default 70000 */
  requestTimeoutMs?: number
}

export interface ApiAnswer { ok: true, message: string, version: number, leader: string }

export interface PlanApiAnswer extends ApiAnswer {
  actions: Array<{ step: number, kind: string, what: string, why: string }>
  notes: string[]
  steps: number
  settled: boolean
}

export class ApiError extends WakameError {
  constructor (readonly status: number, code: string, message: string) { super(code, message) }
}

export class Client {
  /** Nodes to ask, in order: the first that answers is used (any node can answer). */
  readonly urls: string[]
  private readonly tokenFile?: string
  private readonly tokenValue?: string
  private readonly requestTimeoutMs: number

  constructor (opts: ClientOptions, env: NodeJS.ProcessEnv = process.env) {
    const demo = readDemoFile()
    const list = opts.node ?? env.WAKAME_NODE ?? demo?.nodes?.join(',') ?? demo?.node ?? 'http://127.0.0.1:7600'
    this.urls = list.split(',').map(u => u.trim().replace(/\/+$/, '')).filter(Boolean)
    if (this.urls.length === 0) throw new WakameError('BAD_NODE_URL', `"${list}" names no node; give one like http://127.0.0.2:7600`)
    for (const u of this.urls) {
      let ok = false
      try { ok = ['http:', 'https:'].includes(new URL(u).protocol) } catch {}
      if (!ok) throw new WakameError('BAD_NODE_URL', `"${u}" is not a node URL; give one like http://127.0.0.2:7600`)
    }
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 70_000
    this.tokenFile = opts.tokenFile ?? env.WAKAME_TOKEN_FILE ?? (env.WAKAME_TOKEN ? undefined : demo?.token_file)
    this.tokenValue = this.tokenFile ? undefined : env.WAKAME_TOKEN
  }

  async status (): Promise<StatusReport> {
    return await this.call<StatusReport>('GET', '/v1/status')
  }

  async events (q: { since?: string, limit?: number } = {}): Promise<{ answeredBy: string, last: number, events: ClusterEvent[] }> {
    const params = new URLSearchParams()
    if (q.since !== undefined) params.set('since', q.since)
    if (q.limit !== undefined) params.set('limit', String(q.limit))
    const qs = params.toString()
    return await this.call('GET', `/v1/events${qs ? `?${qs}` : ''}`)
  }

  async change (path: string, body?: unknown): Promise<ApiAnswer> {
    return await this.call<ApiAnswer>('POST', path, body, true)
  }

  /** POST /v1/plan: what the leader would do for the command (no body: on its own); changes nothing. */
  async plan (body?: unknown): Promise<PlanApiAnswer> {
    return await this.call<PlanApiAnswer>('POST', '/v1/plan', body, true)
  }

  private token (): string {
    if (this.tokenValue) return this.tokenValue
    if (this.tokenFile) return loadToken(this.tokenFile)
    throw new WakameError('TOKEN_MISSING', 'this command changes the cluster and needs the admin token: pass --token-file FILE, or set WAKAME_TOKEN_FILE or WAKAME_TOKEN')
  }

  private async call<T> (method: string, path: string, body?: unknown, auth = false): Promise<T> {
    const headers: Record<string, string> = {}
    if (auth) headers.authorization = `Bearer ${this.token()}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response | undefined
    const errors: string[] = []
    for (const url of this.urls) {
      try {
        res = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(this.requestTimeoutMs) })
        break
      } catch (err) {
        const cause = (err as { cause?: { code?: string, message?: string } }).cause
        const why = cause?.code ?? cause?.message ?? (err as Error).message
        // fetch refuses ports reserved for other protocols (1, 25, 6000, ...) with just "bad port".
        errors.push(`${url}: ${why === 'bad port' ? 'fetch refuses this port (reserved for another protocol), so no wakame API can be reached there' : why}`)
      }
    }
    if (!res) throw new WakameError('UNREACHABLE', `cannot reach a wakame node (${errors.join('; ')}); is the agent running? (--node URL or WAKAME_NODE)`)
    const text = await res.text()
    let json: unknown
    try { json = JSON.parse(text) } catch { json = undefined }
    if (!res.ok) {
      const e = (json as { error?: { code?: string, message?: string } } | undefined)?.error
      throw new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? (text.slice(0, 300) || res.statusText))
    }
    return json as T
  }
}

function readDemoFile (): { node?: string, nodes?: string[], token_file?: string } | undefined {
  const path = resolve(DEMO_CLI_FILE)
  if (!existsSync(path)) return undefined
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as { node?: string, nodes?: string[], token_file?: string }
    return { node: v.node, nodes: Array.isArray(v.nodes) ? v.nodes.map(String) : undefined, token_file: v.token_file ? resolve(v.token_file) : undefined }
  } catch {
    return undefined
  }
}
