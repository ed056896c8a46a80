// `wakame demo` (what `npm start` runs): boots the first node of a local cluster through the local
// provider, runs launch_cluster on the example, prints the status and the balancer URL, and keeps
// running. Ctrl-C stops every VM and service the demo caused, including VMs the leader launched
// later (found through the provider's registry). If the demo itself is killed, each VM notices its
// owner is gone and stops itself.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { localVmConfig, selfArgv } from '../cli/agent.js'
import { Client } from '../cli/client.js'
import { formatStatus } from '../cli/format.js'
import { waitForSettle } from '../cli/wait.js'
import { TimingSchema } from '../config/daemon-config.js'
import { generatePsk, generateToken } from '../mesh/keys.js'
import { LocalProvider, terminateAll } from '../providers/local/local-provider.js'
import { loadSpecFile } from '../spec/load.js'
import { writeFileAtomicSync } from '../store/atomic.js'
import { WakameError } from '../util/errors.js'
import { silentLogger } from '../util/log.js'

export interface DemoOptions {
  spec: string
  dir: string
  /** First three octets of the VMs' addresses. @default 127.0.0 */
  net?: string
  apiPort?: number
  meshPort?: number
  /** Return after launching instead of waiting for Ctrl-C (tests). */
  detach?: boolean
  print?: (line: string) => void
}

export async function runDemo (o: DemoOptions): Promise<{ node: string, stop: () => Promise<void> }> {
  const print = o.print ?? ((l: string) => console.log(l))
  const dir = resolve(o.dir)
  const specPath = resolve(o.spec)
  const spec = loadSpecFile(specPath)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const pidFile = join(dir, 'demo.pid')
  const other = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0
  if (other > 0 && other !== process.pid && alive(other)) throw new WakameError('DEMO_RUNNING', `a demo is already running (pid ${other}); stop it with Ctrl-C or kill ${other}`)
  writeFileSync(pidFile, String(process.pid))
  const clusterDir = join(dir, 'cluster')
  // Leftovers of an earlier demo that was not stopped cleanly: a fresh start every time.
  await terminateAll(clusterDir).catch(() => 0)
  rmSync(clusterDir, { recursive: true, force: true })
  const psk = join(dir, 'psk.key')
  const token = join(dir, 'admin.token')
  if (!existsSync(psk)) writeFileSync(psk, generatePsk(), { mode: 0o600 })
  if (!existsSync(token)) writeFileSync(token, `${generateToken()}\n`, { mode: 0o600 })

  const meshPort = o.meshPort ?? 7610
  const apiPort = o.apiPort ?? 7600
  const local = { cluster_dir: clusterDir, net: o.net ?? '127.0.0', first_host: 2 }
  const base = { cluster: 'demo', psk_file: psk, admin_token_file: token, mesh_port: meshPort, api_port: apiPort, local, spec: specPath, log_level: 'info' as const, timing: TimingSchema.parse({}) }
  const provider = new LocalProvider({
    clusterDir, net: local.net, firstHost: local.first_host, meshPort, apiPort,
    initArgv: [...selfArgv(), 'vm-init', '--'],
    agentArgv: [...selfArgv(), 'agent'],
    agentConfig: (vm) => localVmConfig(base, vm),
    ownerPid: process.pid,
    logger: silentLogger()
  })

  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    const n = await terminateAll(clusterDir)
    rmSync(join(dir, 'cli.json'), { force: true })
    rmSync(pidFile, { force: true })
    print(`stopped ${n} VM${n === 1 ? '' : 's'} and their services`)
  }
  const onSignal = () => { void stop().finally(() => process.exit(0)) }
  if (!o.detach) { process.on('SIGINT', onSignal); process.on('SIGTERM', onSignal) }

  try {
    print(`wakame demo: ${Object.keys(spec.services).length} services from ${o.spec}`)
    const vm = await provider.launch({ token: 'demo-first-node', decisionId: 'first', reason: 'first node', bootstrap: [], bootstrapExpect: 1 })
    const node = `http://${vm.ip}:${apiPort}`
    writeFileAtomicSync(join(dir, 'cli.json'), JSON.stringify({ node, token_file: token }, null, 2))
    print(`booted ${vm.id} at ${vm.ip} (log: ${join(clusterDir, 'vms', vm.id, 'agent.log')})`)
    const client = new Client({ node, tokenFile: token })
    await waitForLeader(client, 30_000)
    print('leader elected; launch_cluster:')
    const r = await client.change('/v1/cluster/launch')
    const s = await waitForSettle(client, { version: r.version, timeoutMs: 120_000, print })
    print('')
    print(formatStatus(s, process.stdout.isTTY))
    const lb = s.services.find(svc => svc.urls?.length)?.urls?.[0]
    print('')
    if (lb) {
      print(`balancer: ${lb}`)
      try {
        const answer = await (await fetch(new URL('/api', lb), { signal: AbortSignal.timeout(3_000) })).text()
        print(`  curl ${new URL('/api', lb)}  ->  ${answer.trim()}`)
      } catch {}
    }
    // Keep the CLI's list of nodes current, so `wakame` still finds the cluster if a node goes.
    if (!o.detach) {
      let known = [node]
      setInterval(() => {
        void new Client({ node: known.join(','), tokenFile: token }).status().then(st => {
          const nodes = st.nodes.filter(n => n.status !== 'dead' && n.api).map(n => n.api!)
          if (nodes.length > 0 && !stopped && nodes.join() !== known.join()) {
            known = nodes
            // Atomically: the CLI may read it at any moment (a half-written file reads as missing).
            writeFileAtomicSync(join(dir, 'cli.json'), JSON.stringify({ node: nodes[0], nodes, token_file: token }, null, 2))
          }
        }, () => {})
      }, 2_000).unref()
    }
    print('')
    print('drive it from another terminal (in this directory):')
    print('  npx wakame status | propagate_service app | migrate_service www-N | shutdown_cluster')
    print(`  (or: node dist/wakame.mjs --node ${node} --token-file ${token} status)`)
    if (!o.detach) print('Ctrl-C stops every VM and service of the demo.')
    return { node, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

async function waitForLeader (client: Client, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      const s = await client.status()
      if (s.leader) return
    } catch (err) { last = (err as Error).message }
    await new Promise(r => setTimeout(r, 200))
  }
  throw new WakameError('DEMO_FAILED', `the first node did not elect itself within ${timeoutMs / 1000} s${last ? ` (${last})` : ''}; see its agent.log`)
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}
