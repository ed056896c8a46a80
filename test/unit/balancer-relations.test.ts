// The balancer path through relations, with a stand-in supervisor: the kind's runtime gives the argv,
// the file and the reload; builtin behaves as before; a refused config keeps the last good one and
// reports the balancer degraded (not FAIL); nothing is written before the first render (case 02).
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { findProgram } from '../../src/balancers/exec.js'
import { createBalancer } from '../../src/balancers/kinds.js'
import type { LocalInstance } from '../../src/core/local-plan.js'
import type { DependencyView } from '../../src/core/views.js'
import { Relations } from '../../src/relations/relations.js'
import { loadSpecText } from '../../src/spec/load.js'
import type { Supervisor } from '../../src/supervisor/supervisor.js'
import { silentLogger } from '../../src/util/log.js'

function setup (balancer: string) {
  const spec = loadSpecText(`services:
  app: { command: [app], port: 8081 }
  lb:
    port: 8080
    depends_on: [app]
    balancer:
${balancer.split('\n').map(l => `      ${l}`).join('\n')}
`, 'spec.yaml', '/srv')
  const calls: string[] = []
  const supervisor = {
    reload: async (id: string) => { calls.push(`reload ${id}`); return '' },
    restart: async (id: string) => { calls.push(`restart ${id}`) },
    pid: () => undefined
  } as unknown as Supervisor
  const dataDir = mkdtempSync(join(tmpdir(), 'rel-lb-'))
  const rel = new Relations({ dataDir, supervisor, logger: silentLogger(), selfArgv: ['/usr/bin/node', '/opt/wakame.mjs'], bindIp: '10.0.0.3', nodeId: 'vm-2', cluster: 't', now: () => 0 })
  const inst: LocalInstance = { rec: { id: 'lb-1', service: 'lb', node: 'vm-2', slot: 0, phase: 'run' }, spec: spec.services.lb!, port: 8080, specDir: '/srv' }
  return { rel, inst, calls, dir: join(dataDir, 'instances/lb-1') }
}

const view = (...ips: string[]): DependencyView => ({ app: ips.map((ip, i) => ({ id: `app-${i + 1}`, node: `vm-${i + 1}`, ip, port: 8081, address: `${ip}:8081` })) })

describe('relations: the balancer path', () => {
  it('builtin: the same argv, file and reload signal as before there were kinds', async () => {
    const { rel, inst, calls, dir } = setup('routes: [{ path: /, service: app }]')
    const { argv } = rel.prepare(inst, view('10.0.0.2'), 1)
    expect(argv).toEqual(['/usr/bin/node', '/opt/wakame.mjs', 'balancer', '--config', join(dir, 'balancer.json'), '--listen', '10.0.0.3:8080'])
    expect(JSON.parse(readFileSync(join(dir, 'balancer.json'), 'utf8')).routes[0].backends).toEqual([{ id: 'app-1', url: 'http://10.0.0.2:8081' }])
    await rel.update(inst, view('10.0.0.2', '10.0.0.4'), 2, [])
    expect(calls).toEqual(['reload lb-1'])
    expect(rel.report('lb-1')).toMatchObject({ rerenders: 1, onChange: { action: 'reload', ok: true } })
  })

  it.skipIf(findProgram(['haproxy']) === undefined)('haproxy: argv from the adapter; the config installed validated; a refused one leaves the last good live, degraded not FAIL', async () => {
    // A template that turns invalid once app has two members: stands for a user's broken template.
    const { rel, inst, calls, dir } = setup(`kind: haproxy
routes: [{ path: /, service: app }]
template:
  text: |
    defaults
        mode http
        timeout connect 1s
        timeout client 1s
        timeout server 1s
    frontend f
        bind <%= it.listen.address %>
        default_backend app
    backend app
    <% for (const m of it.pools[0].members) { %>    server <%= m.id %> <%= m.address %>
    <% } %><% if (it.pools[0].members.length > 1) { %>    no-such-keyword
    <% } %>`)
    const { argv } = rel.prepare(inst, view('10.0.0.2'), 1)
    expect(argv).toEqual([findProgram(['haproxy']), '-W', '-db', '-S', join(dir, 'master.sock'), '-f', join(dir, 'haproxy.cfg')])
    const good = readFileSync(join(dir, 'haproxy.cfg'), 'utf8')
    expect(good).toContain('server app-1 10.0.0.2:8081')
    await rel.update(inst, view('10.0.0.2', '10.0.0.4'), 2, [])
    expect(calls).toEqual([]) // never the supervisor's signal: the runtime reloads HAProxy itself
    expect(readFileSync(join(dir, 'haproxy.cfg'), 'utf8')).toBe(good)
    const r = rel.report('lb-1')
    expect(r.failure).toBeUndefined()
    expect(r.onChange).toMatchObject({ action: 'reload', ok: false, note: 'degraded: the last good config stays live', output: expect.stringContaining('no-such-keyword') })
    // deps.json still follows the view: what the balancer was given is visible in status.
    expect(JSON.parse(readFileSync(join(dir, 'deps.json'), 'utf8')).deps.app).toHaveLength(2)
  })

  it('a runtime touches nothing before it is told (case 02): an existing config stays as it is', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rel-lb-'))
    writeFileSync(join(dir, 'nginx.conf'), 'the running config\n')
    const before = statSync(join(dir, 'nginx.conf')).mtimeMs
    const rt = createBalancer('nginx', { instance: 'lb-1', dir, listen: { host: '127.0.0.1', port: 8080 }, logger: silentLogger(), pid: () => undefined, reload: async () => '', selfArgv: [] })
    expect(rt.argv()).toContain('daemon off;')
    expect(readFileSync(join(dir, 'nginx.conf'), 'utf8')).toBe('the running config\n')
    // The same text as on disk: nothing to do, nothing written, no reload.
    expect(await rt.apply('the running config\n')).toBe('unchanged')
    expect(statSync(join(dir, 'nginx.conf')).mtimeMs).toBe(before)
  })
})
