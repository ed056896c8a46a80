// README command 1: `wakame demo` (what `npm start` runs) serves /api through the balancer, and
// Ctrl-C stops every VM and service it caused, including the VMs the leader launched later.
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { terminateAll } from '../../src/providers/local/local-provider.js'
import { groupMembers } from '../../src/providers/local/proc.js'
import { BUNDLE, ROOT } from '../helpers/cluster.js'

const dir = mkdtempSync(join(tmpdir(), 'wakame-demo-'))
afterAll(async () => { await terminateAll(join(dir, 'cluster')) })


describe('wakame demo', () => {
  it('comes up serving /api, and Ctrl-C leaves no process behind', async () => {
    const demo = spawn(process.execPath, [BUNDLE, 'demo', '--dir', dir, '--net', '127.0.24'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    demo.stdout.on('data', d => { out += String(d) })
    demo.stderr.on('data', d => { out += String(d) })
    const exited = new Promise<number | null>(resolve => demo.on('exit', code => resolve(code)))
    const deadline = Date.now() + 90_000
    while (!out.includes('Ctrl-C stops') && Date.now() < deadline && demo.exitCode === null) await new Promise(r => setTimeout(r, 200))
    expect(out).toMatch(/db <1 1 1>/)
    expect(out).toMatch(/lb <1 1 1>\s+http:\/\/127\.0\.24\.\d+:8080\//)
    expect(out).toMatch(/curl http:\/\/127\.0\.24\.\d+:8080\/api\s+->\s+\{"instance":"app-\d+".*"hits":1\}/)
    const vms = readdirSync(join(dir, 'cluster', 'vms'))
    expect(vms.length).toBeGreaterThanOrEqual(3) // the first node and the VMs the leader launched
    const pids = vms.map(v => (JSON.parse(readFileSync(join(dir, 'cluster', 'vms', v, 'vm.json'), 'utf8')) as { pgid: number }).pgid)
    demo.kill('SIGINT')
    expect(await exited).toBe(0)
    expect(out).toMatch(/stopped \d+ VMs and their services/)
    for (const pgid of pids) expect(groupMembers(pgid), `live processes of VM group ${pgid}`).toEqual([])
  })
})
