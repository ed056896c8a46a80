// `npm run bench -- --profile-idle N`: an idle N-node cluster whose daemons run with --cpu-prof
// (node flags of the daemon process only); after the idle window each
// daemon is stopped with SIGTERM so Node writes its profile. Prints where the profiles are; see
// bench/analyze-profile.py to aggregate self time per function.
import { mkdirSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { runDir } from '../lib/cleanup.js'
import { cpuSeconds, signal, sleep, waitUntil, alive } from '../lib/proc.js'
import { benchSpec, startWakame } from '../lib/wakame.js'
import { WAKAME_NET } from './groups.js'

export async function profileIdle (n: number, seconds: number, outDir: string): Promise<void> {
  const dir = join(runDir(), 'profiles')
  mkdirSync(dir, { recursive: true })
  mkdirSync(outDir, { recursive: true })
  const c = await startWakame({ name: `prof${n}`, net: WAKAME_NET, nodes: n, spec: benchSpec({ minNodes: n, www: { min: 2, max: 12 }, probe: { max: n } }), daemonNodeFlags: ['--cpu-prof', `--cpu-prof-dir=${outDir}`] })
  try {
    await sleep(10_000)
    const daemons = c.running().map(v => ({ id: v.id, pid: c.daemonPid(v.id), init: v.pid }))
    const cpu0 = daemons.map(d => cpuSeconds(d.pid)!)
    await sleep(seconds * 1000)
    const cpu1 = daemons.map(d => cpuSeconds(d.pid)!)
    daemons.forEach((d, i) => console.log(`${d.id} daemon pid ${d.pid}: ${((cpu1[i]! - cpu0[i]!) / seconds * 100).toFixed(1)} % of a core`))
    for (const d of daemons) { signal(d.init, 'SIGSTOP'); signal(d.pid, 'SIGTERM') }
    await waitUntil('daemons exited', () => daemons.every(d => !alive(d.pid) || isZombie(d.pid)), 30_000, 200).catch(() => {})
    console.log(`profiles in ${outDir}: ${readdirSync(outDir).filter(f => daemons.some(d => f.includes(`.${d.pid}.`))).join(' ')}`)
  } finally {
    await c.stop()
  }
}

function isZombie (pid: number): boolean {
  try { return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')) } catch { return true }
}
