// The local provider: VMs as detached daemon processes on 127.0.77.N, a registry on disk.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createServer, type Server } from 'node:net'
import { dirname, join } from 'node:path'
import { build } from 'esbuild'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { canBind } from '../../src/providers/local/addresses.js'
import { startOwnerWatchdog, terminateAll, type LocalProvider } from '../../src/providers/local/local-provider.js'
import { AddressLeases } from '../../src/providers/local/leases.js'
import { procStat } from '../../src/providers/local/proc.js'
import { Registry, type VmRecord } from '../../src/providers/local/registry.js'
import { API_PORT, FAKE_AGENT, MESH_PORT, Harness, alive, waitFor } from '../fixtures/local-provider/harness.js'

const NET = '127.0.77'
const req = (token: string, decisionId = `d-${token}`) => ({ token, decisionId, reason: 'test', bootstrap: ['/ip4/127.0.77.9/tcp/1'], bootstrapExpect: 1 })

let h: Harness
let p: LocalProvider
beforeEach(() => { h = new Harness(NET); p = h.provider() })
afterEach(async () => { await h.cleanup() })

function vmJson (id: string): VmRecord {
  return JSON.parse(readFileSync(join(h.vmDir(id), 'vm.json'), 'utf8')) as VmRecord
}

/** A pid that certainly belongs to no process any more. */
function deadPid (): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
  return Number(r.stdout)
}

describe('launch', () => {
  it('is idempotent by token: again, from another provider instance, and concurrently', async () => {
    const first = await p.launch(req('t1'))
    expect(first).toEqual({ id: 'vm-1', ip: `${NET}.2`, state: 'running', launch: 'd-t1' })
    expect(await p.launch(req('t1'))).toEqual(first)
    expect(await h.provider().launch(req('t1'))).toEqual(first)
    const racing = await Promise.all([p.launch(req('t2')), h.provider().launch(req('t2')), p.launch(req('t2'))])
    expect(new Set(racing.map(v => v.id))).toEqual(new Set(['vm-2']))
    expect((await p.list()).map(v => v.id)).toEqual(['vm-1', 'vm-2'])
    // One daemon per VM: the recorded pid is the one the agent reports.
    expect((await h.pids('vm-1')).agent).toBe(vmJson('vm-1').pid)
  })

  it('gives different tokens different ids and addresses, and hands config and env to the daemon', async () => {
    const a = await p.launch(req('a'))
    const b = await p.launch(req('b'))
    expect([a.id, a.ip, b.id, b.ip]).toEqual(['vm-1', `${NET}.2`, 'vm-2', `${NET}.3`])
    const pids = await h.pids('vm-2')
    expect(pids.ownerPid).toBe(String(process.pid))
    expect(pids.mark).toBe('from-test')
    expect(await canBind(b.ip, MESH_PORT)).toBe(false)
    const config = parse(readFileSync(join(h.vmDir('vm-2'), 'agent.yaml'), 'utf8'))
    expect(config).toMatchObject({ id: 'vm-2', ip: `${NET}.3`, launch: 'd-b', bootstrapExpect: 1, dataDir: join(h.vmDir('vm-2'), 'data') })
    expect(readFileSync(join(h.vmDir('vm-2'), 'agent.log'), 'utf8')).toContain(`fake-agent vm-2 listening on ${NET}.3`)
    const vm = vmJson('vm-2')
    expect(vm).toMatchObject({ id: 'vm-2', ip: `${NET}.3`, token: 'b', launch: 'd-b', state: 'running', pgid: vm.pid })
    expect(vm.startTime).toBe(procStat(vm.pid)?.startTime)
  })

  it('skips an address whose ports another program holds', async () => {
    const squatter: Server = createServer()
    await new Promise<void>(resolve => squatter.listen(MESH_PORT, `${NET}.2`, resolve))
    try {
      expect((await p.launch(req('a'))).ip).toBe(`${NET}.3`)
    } finally {
      await new Promise(resolve => squatter.close(resolve))
    }
  })

  it('finishes a launch whose launcher died after claiming the token', async () => {
    const reg = new Registry(h.clusterDir)
    const id = reg.allocateVmDir()
    // What a launcher leaves when it dies right after claiming the token: claim, address lease, token.
    reg.writeClaim({ id, ip: `${NET}.2`, token: 'crash', decisionId: 'd-crash', reason: 'test', bootstrap: [], bootstrapExpect: 0, launcherPid: deadPid(), launcherStartTime: 1, claimedAt: new Date().toISOString() })
    expect(new AddressLeases(join(h.clusterDir, 'addresses')).take(`${NET}.2`, 0, id)).toBe(true)
    expect(reg.claimToken('crash', id)).toBe(true)
    expect(await p.list()).toEqual([{ id, ip: `${NET}.2`, state: 'pending', launch: 'd-crash' }])
    // The pending VM keeps its address: a new launch must not take it.
    expect((await p.launch(req('other'))).ip).toBe(`${NET}.3`)
    expect(await p.launch(req('crash'))).toEqual({ id, ip: `${NET}.2`, state: 'running', launch: 'd-crash' })
    expect((await h.pids(id)).agent).toBe(vmJson(id).pid)
  })

  it('adopts the daemon a dead launcher started but never recorded', async () => {
    const reg = new Registry(h.clusterDir)
    const id = reg.allocateVmDir()
    reg.writeClaim({ id, ip: `${NET}.2`, token: 'orphan', decisionId: 'd-orphan', reason: 'test', bootstrap: [], bootstrapExpect: 0, launcherPid: deadPid(), launcherStartTime: 1, claimedAt: new Date().toISOString() })
    reg.claimToken('orphan', id)
    const configPath = join(h.vmDir(id), 'agent.yaml')
    writeFileSync(configPath, `id: ${id}\nip: ${NET}.2\nvmDir: ${h.vmDir(id)}\nmeshPort: ${MESH_PORT}\n`)
    const orphan = h.spawnStray(configPath)
    const pids = await h.pids(id)
    expect(pids.agent).toBe(orphan.pid)
    expect((await p.launch(req('orphan'))).state).toBe('running')
    expect(vmJson(id).pid).toBe(orphan.pid)
  })

  it('reports a bad agentArgv and leaves the token free for a retry', async () => {
    const bad = h.provider({ agentArgv: [join(h.clusterDir, 'no-such-binary')] })
    await expect(bad.launch(req('x'))).rejects.toMatchObject({ code: 'LOCAL_SPAWN_FAILED' })
    expect((await p.launch(req('x'))).state).toBe('running')
  })
})

describe('terminate and list', () => {
  it('kills the daemon and the service in its process group, and is idempotent', async () => {
    const vm = await p.launch(req('a'))
    const pids = await h.pids(vm.id)
    expect(procStat(pids.service)?.pgrp).toBe(pids.agent)
    await p.terminate(vm.id)
    expect(await canBind(vm.ip, MESH_PORT)).toBe(true)
    expect(alive(pids.agent)).toBe(false)
    expect(alive(pids.service)).toBe(false)
    expect(vmJson(vm.id).state).toBe('terminated')
    expect(await p.list()).toEqual([{ ...vm, state: 'terminated' }])
    await p.terminate(vm.id)
    await p.terminate('vm-99')
    await p.terminate('../../etc')
  })

  it('SIGKILLs a VM that ignores SIGTERM', async () => {
    const stubborn = h.provider({}, { ignoreTerm: true })
    const vm = await stubborn.launch(req('a'))
    const pids = await h.pids(vm.id)
    const started = Date.now()
    await stubborn.terminate(vm.id)
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_900)
    expect(alive(pids.agent) || alive(pids.service)).toBe(false)
  })

  it('sees a VM killed from outside as terminated, and reuses its address', async () => {
    const vm = await p.launch(req('a'))
    await h.pids(vm.id)
    process.kill(-vmJson(vm.id).pgid, 'SIGKILL')
    await waitFor(async () => (await p.list())[0]?.state === 'terminated', 'list() to show vm-1 terminated')
    // The kernel frees a killed listener's port a few ms after the process is gone.
    await waitFor(async () => await canBind(vm.ip, MESH_PORT), 'the mesh port to be free')
    const next = await p.launch(req('b'))
    expect([next.id, next.ip]).toEqual(['vm-2', vm.ip])
  })
})

describe('terminateAll', () => {
  it('kills every VM of the directory, recorded or not', async () => {
    const a = await p.launch(req('a'))
    const b = await p.launch(req('b'))
    const reg = new Registry(h.clusterDir)
    const strayId = reg.allocateVmDir()
    const strayConfig = join(h.vmDir(strayId), 'agent.yaml')
    writeFileSync(strayConfig, `id: ${strayId}\nip: ${NET}.9\nvmDir: ${h.vmDir(strayId)}\nmeshPort: ${MESH_PORT}\n`)
    h.spawnStray(strayConfig)
    const all = await Promise.all([a.id, b.id, strayId].map(async id => await h.pids(id)))
    expect(await terminateAll(h.clusterDir)).toBe(3)
    for (const pids of all) expect(alive(pids.agent) || alive(pids.service)).toBe(false)
    expect((await p.list()).map(v => v.state)).toEqual(['terminated', 'terminated'])
    expect(await terminateAll(h.clusterDir)).toBe(0)
  })
})

describe('startOwnerWatchdog', () => {
  it('calls onGone once the owner exits, and not after stop()', async () => {
    const owner = h.spawnSleeper()
    await waitFor(() => owner.pid !== undefined && procStat(owner.pid) !== undefined, 'the owner to start')
    let gone = 0
    let stoppedGone = 0
    const stop = startOwnerWatchdog(owner.pid!, () => { gone++ }, 20)
    const stopOther = startOwnerWatchdog(owner.pid!, () => { stoppedGone++ }, 20)
    try {
      await waitFor(() => existsSync(`/proc/${owner.pid!}`), 'the owner to be visible')
      expect(gone).toBe(0)
      stopOther()
      owner.kill('SIGKILL')
      await waitFor(() => gone === 1, 'the watchdog to notice the owner is gone')
      expect(stoppedGone).toBe(0)
    } finally {
      stop()
      stopOther()
    }
  })

  it('fires at once for an owner that is already gone', async () => {
    let gone = false
    const stop = startOwnerWatchdog(deadPid(), () => { gone = true }, 20)
    try {
      await waitFor(() => gone, 'onGone for a dead owner')
    } finally {
      stop()
    }
  })
})

describe('launch from several processes', () => {
  let bundle: string
  beforeAll(async () => {
    // The launcher is TypeScript: bundle it (as build.mjs bundles the daemon) so plain node runs it.
    bundle = join(mkdtempSync(join(tmpdir(), 'wakame-launch-once-')), 'launch-once.mjs')
    await build({
      entryPoints: ['test/fixtures/local-provider/launch-once.ts'], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: bundle, logLevel: 'warning',
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" }
    })
  })
  afterAll(() => { if (bundle !== undefined) rmSync(dirname(bundle), { recursive: true, force: true }) })

  it('yields one VM per token when processes race', async () => {
    const options = JSON.stringify({ clusterDir: h.clusterDir, net: NET, meshPort: MESH_PORT, apiPort: API_PORT, agentArgv: [process.execPath, FAKE_AGENT], ownerPid: process.pid })
    const goFile = join(h.clusterDir, 'go')
    const tokens = ['x', 'x', 'x', 'y', 'y', 'z']
    const outputs = tokens.map(() => '')
    const launchers = tokens.map((token, i) => {
      const child = h.track(spawn(process.execPath, [bundle, options, goFile, token], { stdio: ['ignore', 'pipe', 'inherit'] }))
      child.stdout!.on('data', (d: Buffer) => { outputs[i] += d.toString() })
      return new Promise<number | null>(resolve => child.on('exit', resolve))
    })
    await waitFor(() => outputs.every(o => o.startsWith('ready\n')), 'every launcher to be ready', 15_000)
    writeFileSync(goFile, '')
    expect(await Promise.all(launchers)).toEqual(tokens.map(() => 0))
    const vms = outputs.map(o => JSON.parse(o.split('\n')[1]!) as { id: string, ip: string })
    const byToken = new Map<string, Set<string>>()
    tokens.forEach((t, i) => byToken.set(t, (byToken.get(t) ?? new Set()).add(`${vms[i]!.id}@${vms[i]!.ip}`)))
    expect([...byToken.values()].map(s => s.size)).toEqual([1, 1, 1])
    const listed = await p.list()
    expect(listed).toHaveLength(3)
    expect(new Set(listed.map(v => v.ip)).size).toBe(3)
    for (const v of listed) expect(v.state).toBe('running')
  })
})
