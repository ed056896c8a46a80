// Supervisor against real child processes (test/fixtures/supervisor/server.mjs) on 127.0.0.1.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { get as httpGet } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { InstanceReport, InstanceState } from '../../src/core/types.js'
import { ServiceSchema, type ServiceSpec } from '../../src/spec/schema.js'
import { Backoff } from '../../src/supervisor/backoff.js'
import { Supervisor, type BackoffOptions, type InstanceDef } from '../../src/supervisor/supervisor.js'
import { silentLogger } from '../../src/util/log.js'

const FIXTURES = fileURLToPath(new URL('../fixtures/supervisor', import.meta.url))
const HOST = '127.0.0.1'
const FAST_BACKOFF = { initialMs: 100, maxMs: 400 }

let dataDir: string
const sups: Supervisor[] = []
/** Every pid any supervisor reported, so afterEach can kill them even when a test failed. */
const pids = new Set<number>()

beforeEach(() => { dataDir = mkdtempSync(join(tmpdir(), 'wakame-sup-')) })

afterEach(() => {
  for (const s of sups.splice(0)) s.detach()
  const inst = join(dataDir, 'instances')
  for (const id of existsSync(inst) ? readdirSync(inst) : []) {
    try { pids.add(JSON.parse(readFileSync(join(inst, id, 'pid.json'), 'utf8')).pid) } catch {}
  }
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch {} }
  pids.clear()
  rmSync(dataDir, { recursive: true, force: true })
})

function makeSup (backoff: BackoffOptions = FAST_BACKOFF): Supervisor {
  const sup = new Supervisor({ dataDir, bindIp: HOST, nodeId: 'n1', logger: silentLogger(), backoff })
  sup.on('change', id => { const p = sup.pid(id); if (p) pids.add(p) })
  sups.push(sup)
  return sup
}

function spec (input: Record<string, unknown>): ServiceSpec {
  return { ...ServiceSchema.parse(input), max: 1 } as ServiceSpec
}

/** The fixture server with an HTTP check every 50 ms. */
function serverSpec (extra: Record<string, unknown> = {}, health: Record<string, unknown> = { http: { path: '/health' } }): ServiceSpec {
  return spec({
    command: ['node', 'server.mjs'],
    health: { interval_ms: 50, timeout_ms: 500, start_timeout_ms: 3000, failures: 2, ...health },
    stop: { signal: 'SIGTERM', timeout_ms: 2000 },
    ...extra
  })
}

function def (id: string, s: ServiceSpec, port: number | undefined, extra: Partial<InstanceDef> = {}): InstanceDef {
  return { id, service: 'app', spec: s, port, specDir: FIXTURES, env: {}, ...extra }
}

function one (d: InstanceDef): Map<string, InstanceDef> { return new Map([[d.id, d]]) }

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, HOST, () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

function get (port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    httpGet({ host: HOST, port, path, agent: false }, res => {
      let body = ''
      res.on('data', c => { body += c })
      res.on('end', () => resolve(body))
    }).on('error', reject)
  })
}

/** Poll `fn` until it returns a truthy value, or fail at the deadline. */
async function waitFor<T> (what: string, fn: () => T | Promise<T>, timeoutMs = 4000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** Resolves on the next (or current) report of `id` in `state`; events catch states shorter than a poll. */
function waitState (sup: Supervisor, id: string, state: InstanceState, timeoutMs = 4000): Promise<InstanceReport> {
  const now = sup.reports()[id]
  if (now?.state === state || (state === 'Offline' && !now)) return Promise.resolve(now ?? { state })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sup.off('change', on)
      reject(new Error(`timed out waiting for ${id} to be ${state} (now ${JSON.stringify(sup.reports()[id])})`))
    }, timeoutMs)
    function on (i: string, r: InstanceReport): void {
      if (i !== id || r.state !== state) return
      clearTimeout(timer)
      sup.off('change', on)
      resolve(r)
    }
    sup.on('change', on)
  })
}

function record (sup: Supervisor): Array<[string, InstanceReport]> {
  const events: Array<[string, InstanceReport]> = []
  sup.on('change', (id, r) => events.push([id, r]))
  return events
}

function outputOf (id: string): string {
  return readFileSync(join(dataDir, 'instances', id, 'output.log'), 'utf8')
}

function count (text: string, needle: string): number {
  return text.split(needle).length - 1
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

describe('Supervisor: starting and health', () => {
  it('goes Starting → ONLINE with an http check, with the documented env and cwd', async () => {
    const sup = makeSup()
    const events = record(sup)
    const port = await freePort()
    const d = def('app-1', serverSpec({ env: { FOO: 'spec' } }), port, { env: { FOO: 'def', WAKAME_DEP_DB: '10.0.0.1:5432' }, volumeDir: '/vol/x' })
    // The daemon's own settings (here a token meant for the CLI) do not reach the service.
    process.env.WAKAME_TOKEN = 'not-for-services'
    try { sup.reconcile(one(d)) } finally { delete process.env.WAKAME_TOKEN }
    expect(sup.reports()).toEqual({ 'app-1': { state: 'Starting', port } })
    await waitState(sup, 'app-1', 'ONLINE')
    expect(events.map(([id, r]) => `${id}:${r.state}`)).toEqual(['app-1:Starting', 'app-1:ONLINE'])
    expect(JSON.parse(await get(port, '/env'))).toEqual({
      PORT: String(port), WAKAME_BIND: HOST, WAKAME_INSTANCE: 'app-1', WAKAME_SERVICE: 'app', WAKAME_NODE: 'n1',
      WAKAME_VOLUME: '/vol/x', WAKAME_DEP_DB: '10.0.0.1:5432', FOO: 'def', cwd: FIXTURES
    })
    const pf = JSON.parse(readFileSync(join(dataDir, 'instances', 'app-1', 'pid.json'), 'utf8'))
    expect(pf).toMatchObject({ pid: sup.pid('app-1'), argv: [process.execPath, 'server.mjs'], port })
    expect(pf.startTime).toBeGreaterThan(0)
  })

  it('goes ONLINE with a tcp check', async () => {
    const sup = makeSup()
    const port = await freePort()
    sup.reconcile(one(def('app-1', serverSpec({}, { tcp: {} }), port)))
    await waitState(sup, 'app-1', 'ONLINE')
  })

  it('goes ONLINE with a command check that sees the instance env', async () => {
    const sup = makeSup()
    const port = await freePort()
    const check = ['node', '-e', `process.exit(process.env.PORT === '${port}' ? 0 : 1)`]
    sup.reconcile(one(def('app-1', serverSpec({}, { command: check }), port)))
    await waitState(sup, 'app-1', 'ONLINE')
  })

  it('shell metacharacters in a command list reach the program literally; shell: true runs /bin/sh -c', async () => {
    const sup = makeSup()
    const dir = mkdtempSync(join(tmpdir(), 'wakame-shell-'))
    const marker = join(dir, 'injected')
    // Without a shell, "; touch marker" is just an argument the program prints.
    const literal = ['node', '-e', 'console.log(JSON.stringify(process.argv.slice(1))); setInterval(() => {}, 1000)', `; touch ${marker}`, '$(touch x)']
    sup.reconcile(one(def('lit-1', spec({ command: literal }), undefined)))
    await waitState(sup, 'lit-1', 'ONLINE')
    expect(existsSync(marker)).toBe(false)
    // With shell: true, a string command is a shell script.
    const shelled = { ...ServiceSchema.parse({ shell: true, command: `touch ${marker} && exec sleep 30` }), max: 1 } as ServiceSpec
    sup.reconcile(new Map([...one(def('lit-1', spec({ command: literal }), undefined)), ...one(def('sh-1', shelled, undefined))]))
    await waitState(sup, 'sh-1', 'ONLINE')
    expect(existsSync(marker)).toBe(true)
  })

  it('without a health section, is ONLINE once the process stayed up 300 ms', async () => {
    const sup = makeSup()
    const t0 = Date.now()
    sup.reconcile(one(def('job-1', spec({ command: ['node', '-e', 'setInterval(() => {}, 1000)'] }), undefined)))
    await waitState(sup, 'job-1', 'ONLINE')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290)
    expect(sup.reports()['job-1']).toEqual({ state: 'ONLINE' })
  })

  it('a crash is FAIL with the last output lines, then a restart after backoff', async () => {
    const sup = makeSup()
    const port = await freePort()
    sup.reconcile(one(def('app-1', serverSpec(), port)))
    await waitState(sup, 'app-1', 'ONLINE')
    const pid1 = sup.pid('app-1')
    const failed = waitState(sup, 'app-1', 'FAIL')
    await get(port, '/crash')
    const r = await failed
    expect(r.error).toMatch(/^exited with code 3 \/ signal null: listening on .* \| about to crash \| boom: something broke$/)
    expect(existsSync(join(dataDir, 'instances', 'app-1', 'pid.json'))).toBe(false)
    const t0 = Date.now()
    await waitState(sup, 'app-1', 'Starting')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(80) // the 100 ms backoff
    expect(sup.pid('app-1')).not.toBe(pid1)
    await waitState(sup, 'app-1', 'ONLINE')
  })

  it('restart delays double up to backoff.maxMs', async () => {
    const sup = makeSup({ initialMs: 100, maxMs: 300 })
    const times: Array<[InstanceState, number]> = []
    sup.on('change', (_id, r) => times.push([r.state, Date.now()]))
    sup.reconcile(one(def('job-1', spec({ command: ['node', '-e', 'process.exit(1)'] }), undefined)))
    await waitFor('four restarts', () => times.filter(([s]) => s === 'Starting').length >= 5)
    sup.reconcile(new Map())
    // Gap between each FAIL and the Starting that follows it.
    const gaps: number[] = []
    times.forEach(([s, t], i) => { if (s === 'FAIL' && times[i + 1]?.[0] === 'Starting') gaps.push(times[i + 1]![1] - t) })
    const wanted = [100, 200, 300, 300]
    expect(gaps.length).toBeGreaterThanOrEqual(4)
    gaps.slice(0, 4).forEach((g, i) => expect(g).toBeGreaterThanOrEqual(wanted[i]! - 10))
  })

  it('a spawn failure is FAIL with the reason', async () => {
    const sup = makeSup()
    sup.reconcile(one(def('app-1', spec({ command: ['./no-such-program'] }), undefined)))
    const r = await waitState(sup, 'app-1', 'FAIL')
    expect(r.error).toMatch(/^could not start: spawn .*no-such-program ENOENT/)
  })

  it('not healthy within start_timeout_ms is FAIL, killed, and restarted', async () => {
    const sup = makeSup()
    const port = await freePort()
    sup.reconcile(one(def('app-1', serverSpec({ env: { FAIL_HEALTH: '1' } }, { http: { path: '/health' }, start_timeout_ms: 400 }), port)))
    await waitState(sup, 'app-1', 'Starting')
    const pid1 = sup.pid('app-1')!
    const r = await waitState(sup, 'app-1', 'FAIL')
    expect(r.error).toMatch(new RegExp(`^not healthy within 400 ms: GET http://127.0.0.1:${port}/health answered 500$`))
    await waitState(sup, 'app-1', 'Starting')
    expect(alive(pid1)).toBe(false)
    expect(sup.pid('app-1')).not.toBe(pid1)
  })

  it('an ONLINE instance failing `failures` checks in a row is FAIL and restarted', async () => {
    const sup = makeSup()
    const port = await freePort()
    sup.reconcile(one(def('app-1', serverSpec(), port)))
    await waitState(sup, 'app-1', 'ONLINE')
    const pid1 = sup.pid('app-1')
    await get(port, '/fail')
    const r = await waitState(sup, 'app-1', 'FAIL')
    expect(r.error).toMatch(/^2 health checks failed in a row: GET .* answered 500$/)
    await waitState(sup, 'app-1', 'ONLINE') // the new process is healthy
    expect(sup.pid('app-1')).not.toBe(pid1)
  })
})

describe('Supervisor: crash loops', () => {
  it('gives up after restart.max_failures: FAIL with the last error and stderr, no more restarts', async () => {
    const sup = makeSup()
    const events = record(sup)
    const crash = ['node', '-e', 'console.error("fatal: config missing"); process.exit(3)']
    sup.reconcile(one(def('job-1', spec({ command: crash, restart: { max_failures: 3 } }), undefined)))
    const r = await waitFor('gave up', () => sup.reports()['job-1']?.gaveUp === true ? sup.reports()['job-1'] : undefined)
    expect(r.state).toBe('FAIL')
    expect(r.failures).toBe(3)
    expect(r.error).toMatch(/^crash loop: gave up after 3 failures; last: exited with code 3 \/ signal null: fatal: config missing$/)
    const starts = () => events.filter(([, e]) => e.state === 'Starting').length
    expect(starts()).toBe(3)
    // Backoff would have restarted it within 400 ms: nothing starts any more.
    await new Promise(resolve => setTimeout(resolve, 800))
    expect(starts()).toBe(3)
    expect(sup.pid('job-1')).toBeUndefined()
    // A stop still works (the leader moves it away).
    sup.reconcile(new Map())
    await waitState(sup, 'job-1', 'Offline')
  })

  it('a new definition (a fixed spec) starts a given-up instance again with a fresh count', async () => {
    const sup = makeSup()
    sup.reconcile(one(def('job-1', spec({ command: ['node', '-e', 'process.exit(3)'], restart: { max_failures: 2 } }), undefined)))
    await waitFor('gave up', () => sup.reports()['job-1']?.gaveUp)
    // The same definition again changes nothing.
    sup.reconcile(one(def('job-1', spec({ command: ['node', '-e', 'process.exit(3)'], restart: { max_failures: 2 } }), undefined)))
    expect(sup.reports()['job-1']).toMatchObject({ state: 'FAIL', gaveUp: true })
    sup.reconcile(one(def('job-1', spec({ command: ['node', '-e', 'setInterval(() => {}, 1000)'], restart: { max_failures: 2 } }), undefined)))
    const r = await waitState(sup, 'job-1', 'ONLINE')
    expect(r.gaveUp).toBeUndefined()
    expect(r.failures).toBeUndefined()
  })

  it('a stable ONLINE period (restart.stable_ms) starts the failure count over', async () => {
    const sup = makeSup()
    const port = await freePort()
    sup.reconcile(one(def('app-1', serverSpec({ restart: { max_failures: 2, stable_ms: 300 } }), port)))
    await waitState(sup, 'app-1', 'ONLINE')
    await get(port, '/crash')
    await waitState(sup, 'app-1', 'FAIL')
    await waitState(sup, 'app-1', 'ONLINE')
    expect(sup.reports()['app-1']?.failures).toBe(1)
    await waitFor('the count to start over', () => sup.reports()['app-1']?.failures === undefined)
    await get(port, '/crash')
    await waitState(sup, 'app-1', 'FAIL')
    // One failure after a stable period: restarted, not given up.
    const back = await waitState(sup, 'app-1', 'ONLINE')
    expect(back.gaveUp).toBeUndefined()
    expect(sup.reports()['app-1']?.failures).toBe(1)
  })
})

describe('Supervisor: stop, reload, restart', () => {
  it('stops an instance left out of the desired set with its stop signal', async () => {
    const sup = makeSup()
    const events = record(sup)
    const port = await freePort()
    sup.reconcile(one(def('app-1', serverSpec(), port)))
    await waitState(sup, 'app-1', 'ONLINE')
    const pid = sup.pid('app-1')!
    sup.reconcile(new Map())
    expect(sup.reports()['app-1']?.state).toBe('Stopping')
    await waitState(sup, 'app-1', 'Offline')
    expect(sup.reports()).toEqual({})
    expect(events.map(([, r]) => r.state)).toEqual(['Starting', 'ONLINE', 'Stopping', 'Offline'])
    expect(alive(pid)).toBe(false)
    expect(outputOf('app-1')).toContain('bye')
    expect(existsSync(join(dataDir, 'instances', 'app-1', 'pid.json'))).toBe(false)
  })

  it('SIGKILLs a process that ignores the stop signal after stop.timeout_ms', async () => {
    const sup = makeSup()
    const port = await freePort()
    sup.reconcile(one(def('app-1', serverSpec({ env: { IGNORE_TERM: '1' }, stop: { signal: 'SIGTERM', timeout_ms: 300 } }), port)))
    await waitState(sup, 'app-1', 'ONLINE')
    const pid = sup.pid('app-1')!
    const t0 = Date.now()
    sup.reconcile(new Map())
    await waitState(sup, 'app-1', 'Offline')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290)
    expect(alive(pid)).toBe(false)
    expect(outputOf('app-1')).toContain('ignoring SIGTERM')
  })

  it('stopping an instance in backoff cancels its restart', async () => {
    const sup = makeSup({ initialMs: 5000, maxMs: 5000 })
    sup.reconcile(one(def('job-1', spec({ command: ['node', '-e', 'process.exit(1)'] }), undefined)))
    await waitState(sup, 'job-1', 'FAIL')
    const t0 = Date.now()
    sup.reconcile(new Map())
    await waitState(sup, 'job-1', 'Offline')
    expect(Date.now() - t0).toBeLessThan(1000)
    expect(sup.reports()).toEqual({})
  })

  it('an instance wanted again while Stopping is started again once the old process is gone', async () => {
    const sup = makeSup()
    const events = record(sup)
    const port = await freePort()
    const d = def('app-1', serverSpec({ env: { IGNORE_TERM: '1' }, stop: { signal: 'SIGTERM', timeout_ms: 300 } }), port)
    sup.reconcile(one(d))
    await waitState(sup, 'app-1', 'ONLINE')
    const pid1 = sup.pid('app-1')!
    sup.reconcile(new Map())
    expect(sup.reports()['app-1']?.state).toBe('Stopping')
    sup.reconcile(one(d))
    expect(sup.reports()['app-1']?.state).toBe('Stopping')
    await waitState(sup, 'app-1', 'ONLINE', 4000)
    expect(alive(pid1)).toBe(false)
    expect(events.map(([, r]) => r.state)).toEqual(['Starting', 'ONLINE', 'Stopping', 'Starting', 'ONLINE'])
  })

  it('reload delivers SIGHUP', async () => {
    const sup = makeSup()
    const port = await freePort()
    sup.reconcile(one(def('app-1', serverSpec(), port)))
    await waitState(sup, 'app-1', 'ONLINE')
    await sup.reload('app-1')
    await waitFor('the server to count one SIGHUP', async () => (await get(port, '/hups')) === '1')
    expect(sup.reports()['app-1']?.state).toBe('ONLINE')
    await expect(sup.reload('nope-1')).rejects.toMatchObject({ code: 'INSTANCE_UNKNOWN' })
  })

  it('restart() stops gracefully and resolves when Starting with a new process', async () => {
    const sup = makeSup()
    const port = await freePort()
    sup.reconcile(one(def('app-1', serverSpec(), port)))
    await waitState(sup, 'app-1', 'ONLINE')
    const pid1 = sup.pid('app-1')!
    await sup.restart('app-1')
    expect(sup.reports()['app-1']?.state).toBe('Starting')
    expect(alive(pid1)).toBe(false)
    expect(sup.pid('app-1')).not.toBe(pid1)
    await waitState(sup, 'app-1', 'ONLINE')
  })

  it('stopAll() stops everything', async () => {
    const sup = makeSup()
    const [p1, p2] = [await freePort(), await freePort()]
    sup.reconcile(new Map([['app-1', def('app-1', serverSpec(), p1)], ['app-2', def('app-2', serverSpec(), p2)]]))
    await Promise.all([waitState(sup, 'app-1', 'ONLINE'), waitState(sup, 'app-2', 'ONLINE')])
    const running = [sup.pid('app-1')!, sup.pid('app-2')!]
    await sup.stopAll()
    expect(sup.reports()).toEqual({})
    expect(running.filter(alive)).toEqual([])
  })
})

describe('Supervisor: reconcile and adoption', () => {
  it('reconcile is idempotent, and a changed definition restarts the instance', async () => {
    const sup = makeSup()
    const events = record(sup)
    const port = await freePort()
    const mk = (foo: string): InstanceDef => def('app-1', serverSpec({ env: { FOO: foo } }), port)
    for (let i = 0; i < 5; i++) sup.reconcile(one(mk('a')))
    await waitState(sup, 'app-1', 'ONLINE')
    const pid1 = sup.pid('app-1')
    for (let i = 0; i < 5; i++) sup.reconcile(one(mk('a')))
    expect(sup.pid('app-1')).toBe(pid1)
    expect(events.map(([, r]) => r.state)).toEqual(['Starting', 'ONLINE'])
    expect(count(outputOf('app-1'), 'listening on')).toBe(1)

    sup.reconcile(one(mk('b')))
    expect(sup.reports()['app-1']?.state).toBe('Stopping')
    sup.reconcile(one(mk('b'))) // again while it restarts
    await waitState(sup, 'app-1', 'ONLINE')
    expect(sup.pid('app-1')).not.toBe(pid1)
    expect(JSON.parse(await get(port, '/env')).FOO).toBe('b')
    expect(count(outputOf('app-1'), 'listening on')).toBe(2)
  })

  it('adopt() keeps a process left by a previous supervisor ONLINE without restarting it', async () => {
    const port = await freePort()
    const desired = one(def('bal-1', serverSpec(), port))
    const sup1 = makeSup()
    sup1.reconcile(desired)
    await waitState(sup1, 'bal-1', 'ONLINE')
    const pid = sup1.pid('bal-1')!
    sup1.detach()

    const sup2 = makeSup()
    const events = record(sup2)
    await sup2.adopt()
    // Its first health check ran during adopt(): a restarted daemon reports it ONLINE at once (case 02).
    expect(sup2.reports()).toEqual({ 'bal-1': { state: 'ONLINE', port } })
    sup2.reconcile(desired)
    await waitState(sup2, 'bal-1', 'ONLINE')
    expect(sup2.pid('bal-1')).toBe(pid)
    expect(events.map(([, r]) => r.state)).toEqual(['Starting', 'ONLINE'])
    expect(count(outputOf('bal-1'), 'listening on')).toBe(1)

    // Not our child: its exit is noticed by polling, then it is restarted like any crash.
    const failed = waitState(sup2, 'bal-1', 'FAIL')
    await get(port, '/crash')
    expect((await failed).error).toMatch(/^exited \(adopted process: exit code unknown\): .*boom: something broke$/)
    await waitState(sup2, 'bal-1', 'ONLINE')
    expect(sup2.pid('bal-1')).not.toBe(pid)
  })

  it('adopt() stops adopted instances no longer desired and removes stale pid files', async () => {
    const port = await freePort()
    const sup1 = makeSup()
    sup1.reconcile(one(def('app-1', serverSpec(), port)))
    await waitState(sup1, 'app-1', 'ONLINE')
    const pid = sup1.pid('app-1')!
    sup1.detach()
    // A pid file whose pid exists but started at another time (a recycled pid): stale.
    const staleDir = join(dataDir, 'instances', 'old-1')
    mkdirSync(staleDir, { recursive: true })
    writeFileSync(join(staleDir, 'pid.json'), JSON.stringify({ pid: process.pid, startTime: 1, argv: ['x'] }))

    const sup2 = makeSup()
    await sup2.adopt()
    expect(Object.keys(sup2.reports())).toEqual(['app-1'])
    expect(existsSync(join(staleDir, 'pid.json'))).toBe(false)
    sup2.reconcile(new Map())
    expect(sup2.reports()['app-1']?.state).toBe('Stopping')
    await waitState(sup2, 'app-1', 'Offline')
    expect(alive(pid)).toBe(false)
    expect(outputOf('app-1')).toContain('bye')
  })

  it('an adopted process whose command changed is restarted', async () => {
    const port = await freePort()
    const sup1 = makeSup()
    sup1.reconcile(one(def('app-1', serverSpec(), port)))
    await waitState(sup1, 'app-1', 'ONLINE')
    const pid = sup1.pid('app-1')!
    sup1.detach()
    const sup2 = makeSup()
    await sup2.adopt()
    sup2.reconcile(one(def('app-1', serverSpec(), port, { argv: ['node', './server.mjs'] })))
    await waitState(sup2, 'app-1', 'ONLINE')
    expect(sup2.pid('app-1')).not.toBe(pid)
    expect(alive(pid)).toBe(false)
  })
})

describe('Backoff', () => {
  it('doubles up to maxMs and starts over after resetAfterMs ONLINE', () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 30_000, resetAfterMs: 60_000 })
    expect(Array.from({ length: 7 }, () => b.next(0))).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000])
    b.online(100_000)
    expect(b.next(159_999)).toBe(30_000) // ONLINE for less than a minute: keeps its delay
    b.online(200_000)
    expect(b.next(260_000)).toBe(1000)
    expect(b.next(260_000)).toBe(2000)
  })
})
