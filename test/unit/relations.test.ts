// Relations with a stand-in supervisor: what is written, when on_change runs, and what is reported.
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { LocalInstance } from '../../src/core/local-plan.js'
import type { DependencyView } from '../../src/core/views.js'
import { Relations } from '../../src/relations/relations.js'
import type { PeerInstance } from '../../src/relations/rolling.js'
import { loadSpecText } from '../../src/spec/load.js'
import type { Supervisor } from '../../src/supervisor/supervisor.js'
import { silentLogger } from '../../src/util/log.js'

function setup (onChange: 'reload' | 'restart' | 'none', reloadFails = false) {
  const spec = loadSpecText(`services:
  db: { command: [db], port: 6380 }
  app:
    command: [app]
    port: 8081
    depends_on: [db]
    on_change: ${onChange}
    templates: [{ text: 'db=<%= it.deps.db.map(e => e.address).join(",") %>', dest: app.conf, format: text }]
`, 'spec.yaml', '/srv')
  const calls: string[] = []
  const supervisor = {
    reload: async (id: string) => { calls.push(`reload ${id}`); if (reloadFails) throw new Error('reload command exited with 1: config rejected'); return '' },
    restart: async (id: string) => { calls.push(`restart ${id}`) }
  } as unknown as Supervisor
  const dataDir = mkdtempSync(join(tmpdir(), 'rel-'))
  const rel = new Relations({ dataDir, supervisor, logger: silentLogger(), selfArgv: ['wakame'], bindIp: '10.0.0.3', nodeId: 'vm-2', cluster: 't', now: () => 0 })
  const inst: LocalInstance = { rec: { id: 'app-3', service: 'app', node: 'vm-2', slot: 0, phase: 'run' }, spec: spec.services.app!, port: 8081, specDir: '/srv' }
  return { rel, inst, calls, dataDir }
}

const view = (...ips: string[]): DependencyView => ({ db: ips.map((ip, i) => ({ id: `db-${i + 1}`, node: 'vm-1', ip, port: 6380, address: `${ip}:6380` })) })

describe('relations', () => {
  it('prepare writes the files an instance reads at start, and env with its dependencies', () => {
    const { rel, inst, dataDir } = setup('reload')
    const { env } = rel.prepare(inst, view('10.0.0.2'), 7)
    expect(env.WAKAME_DEP_DB).toBe('10.0.0.2:6380')
    expect(readFileSync(join(dataDir, 'instances/app-3/app.conf'), 'utf8')).toBe('db=10.0.0.2:6380')
    expect(rel.report('app-3')).toMatchObject({ view: 7, deps: { db: ['10.0.0.2:6380'] }, rerenders: 0 })
  })

  it('a new view re-renders and reloads once; the same view again changes nothing', async () => {
    const { rel, inst, calls, dataDir } = setup('reload')
    rel.prepare(inst, view('10.0.0.2'), 7)
    await rel.update(inst, view('10.0.0.2'), 8, [])
    expect(calls).toEqual([])
    await rel.update(inst, view('10.0.0.9'), 9, [])
    await rel.update(inst, view('10.0.0.9'), 10, [])
    expect(calls).toEqual(['reload app-3'])
    expect(readFileSync(join(dataDir, 'instances/app-3/app.conf'), 'utf8')).toBe('db=10.0.0.9:6380')
    expect(rel.report('app-3')).toMatchObject({ view: 10, rerenders: 1, onChange: { action: 'reload', ok: true } })
  })

  it('a failed reload is reported with its output (the instance is shown FAIL)', async () => {
    const { rel, inst } = setup('reload', true)
    rel.prepare(inst, view('10.0.0.2'), 7)
    await rel.update(inst, view('10.0.0.9'), 8, [])
    const r = rel.report('app-3')
    expect(r.onChange).toMatchObject({ action: 'reload', ok: false, output: expect.stringContaining('config rejected') })
    expect(r.failure).toContain('on_change reload failed')
  })

  it('restart waits for its turn behind an instance that has not restarted yet, and a lone one restarts anyway', async () => {
    const { rel, inst, calls } = setup('restart')
    rel.prepare(inst, view('10.0.0.2'), 7)
    const ahead: PeerInstance = { id: 'app-1', state: 'ONLINE', viewHash: 'stale', live: true }
    await rel.update(inst, view('10.0.0.9'), 8, [ahead])
    expect(calls).toEqual([])
    expect(rel.hasPending()).toBe(true)
    await rel.update(inst, view('10.0.0.9'), 9, [])
    expect(calls).toEqual(['restart app-3'])
    expect(rel.hasPending()).toBe(false)
    expect(rel.report('app-3').onChange).toMatchObject({ action: 'restart', ok: true, note: expect.stringContaining('single instance') })
  })

  it('on_change none re-renders the files and runs nothing', async () => {
    const { rel, inst, calls, dataDir } = setup('none')
    rel.prepare(inst, view('10.0.0.2'), 7)
    await rel.update(inst, view('10.0.0.9'), 8, [])
    expect(calls).toEqual([])
    expect(readFileSync(join(dataDir, 'instances/app-3/app.conf'), 'utf8')).toBe('db=10.0.0.9:6380')
    expect(rel.report('app-3').rerenders).toBe(1)
  })
})
