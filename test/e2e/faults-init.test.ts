// The local VM's init (`wakame vm-init -- <argv>`, src/providers/local/vm-init.ts) on its own,
// with a tiny fake daemon that starts a fake service: restarts with a growing backoff and a fresh
// daemon.pid, the service left running across daemon restarts, SIGTERM forwarded (and the init
// gone once the daemon is), and the owner watchdog taking the whole process group down.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { groupMembers } from '../../src/providers/local/proc.js'
import { BUNDLE, kill } from '../helpers/cluster.js'
import { procStartTime, waitUntil } from '../helpers/faults.js'

// The fake daemon: starts one "service" child on its first run only (a later run finds it alive
// through service.pid, as the real daemon adopts its instances), and exits on SIGTERM.
const FAKE_DAEMON = `
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
const dir = dirname(process.argv[process.argv.indexOf('--config') + 1])
process.on('SIGTERM', () => { writeFileSync(join(dir, 'sigterm'), String(process.pid)); process.exit(0) })
const svcFile = join(dir, 'service.pid')
const alive = (pid) => { try { process.kill(pid, 0); return true } catch { return false } }
if (!existsSync(svcFile) || !alive(Number(readFileSync(svcFile, 'utf8')))) {
  const svc = spawn(process.execPath, ['-e', 'process.on("SIGTERM", () => process.exit(0)); setInterval(() => {}, 1000)'], { stdio: 'ignore' })
  writeFileSync(svcFile, String(svc.pid))
  svc.unref()
}
setInterval(() => {}, 1000)
`

let dir: string
const started: ChildProcess[] = []

afterEach(() => {
  // Whole groups: the init leads one (started with setsid), its daemon and service are in it.
  for (const p of started.splice(0)) if (p.pid) { kill(-p.pid, 'SIGKILL'); kill(p.pid, 'SIGKILL') }
})

function startInit (env: Record<string, string> = {}): ChildProcess {
  dir = mkdtempSync(join(tmpdir(), 'wakame-vm-init-'))
  writeFileSync(join(dir, 'daemon.mjs'), FAKE_DAEMON)
  writeFileSync(join(dir, 'agent.yaml'), '{}\n')
  const init = spawn(process.execPath, [BUNDLE, 'vm-init', '--', process.execPath, join(dir, 'daemon.mjs'), '--config', join(dir, 'agent.yaml')], {
    detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, WAKAME_LOCAL_OWNER_PID: '', ...env }
  })
  started.push(init)
  return init
}

const daemonPid = (): number | undefined => existsSync(join(dir, 'daemon.pid')) ? Number(readFileSync(join(dir, 'daemon.pid'), 'utf8')) : undefined

async function nextDaemon (than: number | undefined): Promise<number> {
  return await waitUntil('a (new) daemon pid', () => { const p = daemonPid(); return p !== undefined && p !== than && procStartTime(p) !== undefined ? p : undefined }, 10_000, 10)
}

describe('vm-init', () => {
  it('restarts a daemon that dies, with a growing backoff, and the service keeps running', async () => {
    const init = startInit()
    let log = ''
    init.stderr!.on('data', (b: Buffer) => { log += b.toString() })
    const d1 = await nextDaemon(undefined)
    const svc = await waitUntil('the service', () => existsSync(join(dir, 'service.pid')) ? Number(readFileSync(join(dir, 'service.pid'), 'utf8')) : undefined, 5_000, 10)
    const svcStart = procStartTime(svc)
    const gaps: number[] = []
    let d = d1
    for (let i = 0; i < 3; i++) {
      const t = Date.now()
      kill(d, 'SIGKILL')
      d = await nextDaemon(d)
      gaps.push(Date.now() - t)
    }
    console.log(`daemon restarted after ${gaps.join(', ')} ms`)
    // 200, 400, 800 ms backoff (plus the spawn): each wait longer than the one before.
    expect(gaps[0]).toBeGreaterThanOrEqual(200)
    expect(gaps[1]!).toBeGreaterThan(gaps[0]!)
    expect(gaps[2]!).toBeGreaterThan(gaps[1]!)
    // The init leads the group; its daemon and the service are in it; the service never restarted.
    expect(groupMembers(init.pid!).sort()).toEqual([init.pid!, d, svc].sort())
    expect(procStartTime(svc)).toBe(svcStart)
    expect((log.match(/daemon exited unexpectedly; restarting it/g) ?? []).length).toBe(3)
  })

  it('forwards SIGTERM to the daemon and exits once the daemon has', async () => {
    const init = startInit()
    const d = await nextDaemon(undefined)
    // Its SIGTERM handler is in place once it has looked for its service.
    await waitUntil('the service', () => existsSync(join(dir, 'service.pid')), 5_000, 10)
    const exited = new Promise<number | null>(resolve => init.once('exit', code => resolve(code)))
    kill(init.pid!, 'SIGTERM')
    expect(await exited).toBe(0)
    expect(readFileSync(join(dir, 'sigterm'), 'utf8')).toBe(String(d))
    expect(existsSync(join(dir, 'daemon.pid')), 'daemon.pid removed').toBe(false)
  })

  it('takes the whole VM (its process group) down when the owner of the local cluster dies', async () => {
    const owner = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    started.push(owner)
    const init = startInit({ WAKAME_LOCAL_OWNER_PID: String(owner.pid) })
    await nextDaemon(undefined)
    await waitUntil('the service', () => existsSync(join(dir, 'service.pid')), 5_000, 10)
    expect(groupMembers(init.pid!).length).toBe(3)
    kill(owner.pid!, 'SIGKILL')
    await waitUntil('the VM\'s group to be gone', () => groupMembers(init.pid!).length === 0, 10_000, 50)
  })
})
