// One health check of an instance: http (2xx), tcp (connect) or command (exit 0), each bounded by
// a timeout. A check answers null when healthy, or a short reason that ends up in the FAIL error.
// An http check's answer may also carry the instance's autoscaling metric: a JSON body
// `{"metric": <number>}` (at most METRIC_BODY_MAX bytes; any other body is fine and carries none).
import { spawn } from 'node:child_process'
import { request } from 'node:http'
import { connect } from 'node:net'
import type { HealthSpec } from '../spec/schema.js'
import { resolveProgram } from './process.js'

export interface CheckTarget {
  host: string
  port?: number
  /** cwd and env of the instance, for command checks (so they see PORT, WAKAME_BIND...). */
  cwd: string
  env: Record<string, string>
}

/** The kind of check a health section asks for, or null when it asks for none. */
export function checkKind (h: HealthSpec | undefined): 'http' | 'tcp' | 'command' | null {
  if (!h) return null
  return h.http ? 'http' : h.tcp ? 'tcp' : h.command ? 'command' : null
}

/** Largest health answer body read for a metric; a longer one is healthy but carries no metric. */
export const METRIC_BODY_MAX = 4096

/** The metric in a health answer body `{"metric": <finite number>}`, if there is one. */
export function parseMetric (body: string): number | undefined {
  try {
    const v: unknown = JSON.parse(body)
    const m = typeof v === 'object' && v !== null ? (v as { metric?: unknown }).metric : undefined
    return typeof m === 'number' && Number.isFinite(m) && Math.abs(m) <= 1e12 ? m : undefined
  } catch {
    return undefined
  }
}

/** `onMetric` gets the metric of each healthy http answer (undefined when it carried none). */
export function runCheck (h: HealthSpec, t: CheckTarget, onMetric?: (metric: number | undefined) => void): Promise<string | null> {
  if (h.command) return checkCommand(h.command, h.timeout_ms, t)
  if (t.port === undefined) return Promise.resolve('no port to check: give the service a port')
  if (h.http) return checkHttp(t.host, t.port, h.http.path, h.timeout_ms, onMetric)
  return checkTcp(t.host, t.port, h.timeout_ms)
}

export function checkHttp (host: string, port: number, path: string, timeoutMs: number, onMetric?: (metric: number | undefined) => void): Promise<string | null> {
  const url = `http://${host}:${port}${path}`
  return new Promise(resolve => {
    // No agent: a pooled keep-alive socket would hide a server that stopped accepting connections.
    const req = request({ host, port, path, method: 'GET', agent: false, headers: { 'user-agent': 'wakame-health' } }, res => {
      const code = res.statusCode ?? 0
      const healthy = code >= 200 && code < 300
      if (!healthy || !onMetric) {
        res.resume()
        finish(healthy ? null : `GET ${url} answered ${code}`)
        return
      }
      // Healthy; read a small body for the metric (still within the check's timeout).
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        if (size <= METRIC_BODY_MAX) chunks.push(c)
      })
      res.on('end', () => {
        if (!done) onMetric(size <= METRIC_BODY_MAX ? parseMetric(Buffer.concat(chunks).toString('utf8')) : undefined)
        finish(null)
      })
      res.on('error', () => finish(null))
    })
    const timer = setTimeout(() => finish(`GET ${url} timed out after ${timeoutMs} ms`), timeoutMs)
    let done = false
    function finish (result: string | null): void {
      if (done) return
      done = true
      clearTimeout(timer)
      req.destroy()
      resolve(result)
    }
    req.on('error', err => finish(`GET ${url} failed: ${err.message}`))
    req.end()
  })
}

export function checkTcp (host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise(resolve => {
    const sock = connect({ host, port })
    const timer = setTimeout(() => finish(`TCP connect to ${host}:${port} timed out after ${timeoutMs} ms`), timeoutMs)
    let done = false
    function finish (result: string | null): void {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      resolve(result)
    }
    sock.once('connect', () => finish(null))
    sock.once('error', err => finish(`TCP connect to ${host}:${port} failed: ${err.message}`))
  })
}

export function checkCommand (argv: string[], timeoutMs: number, t: CheckTarget): Promise<string | null> {
  return new Promise(resolve => {
    const [cmd, ...args] = resolveProgram(argv) as [string, ...string[]]
    const child = spawn(cmd, args, { cwd: t.cwd, env: t.env, stdio: 'ignore' })
    let done = false
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      finish(`health command timed out after ${timeoutMs} ms`)
    }, timeoutMs)
    function finish (result: string | null): void {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve(result)
    }
    child.once('error', err => finish(`health command could not run: ${err.message}`))
    child.once('exit', (code, signal) => finish(code === 0 ? null : `health command exited with code ${code} / signal ${signal}`))
  })
}
