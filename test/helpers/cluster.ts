// End-to-end helpers: a real local cluster of wakame daemons (dist/wakame.mjs) on 127.0.N.x,
// driven through the real API and CLI client. Every VM is killed in cleanup, even on failure; and
// each VM watches this test process (WAKAME_LOCAL_OWNER_PID), so none survives a killed test run.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { localVmConfig } from '../../src/cli/agent.js'
import { Client } from '../../src/cli/client.js'
import { TimingSchema } from '../../src/config/daemon-config.js'
import type { StatusReport } from '../../src/core/status.js'
import { generatePsk, generateToken } from '../../src/mesh/keys.js'
import { LocalProvider, terminateAll } from '../../src/providers/local/local-provider.js'
import { silentLogger } from '../../src/util/log.js'

export const ROOT = resolve(import.meta.dirname, '../..')
export const BUNDLE = join(ROOT, 'dist/wakame.mjs')
export const EXAMPLE_SPEC = join(ROOT, 'examples/webcluster/cluster.yaml')
const run = promisify(execFile)

export interface TestCluster {
  dir: string
  clusterDir: string
  tokenFile: string
  pskFile: string
  net: string
  client: Client
  provider: LocalProvider
  /** API URL of the first node. */
  first: string
  cli: (...args: string[]) => Promise<{ stdout: string, stderr: string, code: number }>
  status: (node?: string) => Promise<StatusReport>
  waitFor: (what: string, pred: (s: StatusReport) => boolean, timeoutMs?: number, node?: string) => Promise<StatusReport>
  /** The VM's record: pid and pgid are its init's (the process-group leader). */
  vm: (id: string) => { id: string, ip: string, pid: number, pgid: number, launch: string, state: string }
  /** Directory of a VM (vm.json, agent.log, daemon.pid, data/). */
  vmDir: (id: string) => string
  /** Pid of the daemon running now on a VM (under its init; changes when the init restarts it). */
  daemonPid: (id: string) => number
  /** API URL of a node by id. */
  api: (id: string) => string
  cleanup: () => Promise<void>
}

export interface ClusterOptions {
  /** First three octets, unique per test file, e.g. 127.0.21. */
  net: string
  spec?: string
  timing?: Record<string, number>
}

export async function startCluster (opts: ClusterOptions): Promise<TestCluster> {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build first`)
  const dir = mkdtempSync(join(tmpdir(), 'wakame-e2e-'))
  const clusterDir = join(dir, 'cluster')
  const pskFile = join(dir, 'psk.key')
  const tokenFile = join(dir, 'admin.token')
  writeFileSync(pskFile, generatePsk(), { mode: 0o600 })
  writeFileSync(tokenFile, `${generateToken()}\n`, { mode: 0o600 })
  const local = { cluster_dir: clusterDir, net: opts.net, first_host: 2 }
  const base = {
    cluster: 'e2e', psk_file: pskFile, admin_token_file: tokenFile, mesh_port: 7610, api_port: 7600, local,
    spec: opts.spec ?? EXAMPLE_SPEC, log_level: 'info' as const, timing: TimingSchema.parse(opts.timing ?? {})
  }
  const provider = new LocalProvider({
    clusterDir, net: opts.net, firstHost: 2, meshPort: 7610, apiPort: 7600,
    initArgv: [process.execPath, BUNDLE, 'vm-init', '--'],
    agentArgv: [process.execPath, BUNDLE, 'agent'],
    agentConfig: (vm) => localVmConfig(base, vm),
    ownerPid: process.pid,
    logger: silentLogger()
  })
  const cleanup = async () => { await terminateAll(clusterDir) }
  try {
    const vm = await provider.launch({ token: 'first', decisionId: 'first', reason: 'test', bootstrap: [], bootstrapExpect: 1 })
    const first = `http://${vm.ip}:7600`
    const client = new Client({ node: first, tokenFile })
    const status = async (node = first) => await new Client({ node, tokenFile }).status()
    const waitFor = async (what: string, pred: (s: StatusReport) => boolean, timeoutMs = 60_000, node = first): Promise<StatusReport> => {
      const deadline = Date.now() + timeoutMs
      let last: StatusReport | undefined
      let err = ''
      while (Date.now() < deadline) {
        try {
          last = await status(node)
          if (pred(last)) return last
        } catch (e) { err = (e as Error).message }
        await new Promise(r => setTimeout(r, 150))
      }
      throw new Error(`timed out waiting for ${what}${err ? ` (${err})` : ''}; last status: ${JSON.stringify(last?.services.map(s => [s.name, s.instances.map(i => `${i.id}:${i.state}@${i.node}`)]))} nodes ${JSON.stringify(last?.nodes.map(n => `${n.id}:${n.status}`))} leader ${last?.leader}`)
    }
    const vmDir = (id: string) => join(clusterDir, 'vms', id)
    const vmInfo = (id: string) => {
      const rec = JSON.parse(readFileSync(join(vmDir(id), 'vm.json'), 'utf8')) as { id: string, ip: string, pid: number, pgid: number, launch: string, state: string }
      return rec
    }
    const daemonPid = (id: string) => {
      const pid = Number(readFileSync(join(vmDir(id), 'daemon.pid'), 'utf8').trim())
      if (!Number.isInteger(pid) || pid <= 1) throw new Error(`${vmDir(id)}/daemon.pid holds no pid`)
      return pid
    }
    const cli = async (...args: string[]) => {
      try {
        const r = await run(process.execPath, [BUNDLE, '--node', first, '--token-file', tokenFile, ...args], { timeout: 200_000 })
        return { stdout: r.stdout, stderr: r.stderr, code: 0 }
      } catch (e) {
        const x = e as { stdout?: string, stderr?: string, code?: number }
        return { stdout: x.stdout ?? '', stderr: x.stderr ?? '', code: x.code ?? 1 }
      }
    }
    await waitFor('the first node to lead', s => s.leader !== null, 30_000)
    return { dir, clusterDir, tokenFile, pskFile, net: opts.net, client, provider, first, cli, status, waitFor, vm: vmInfo, vmDir, daemonPid, api: (id) => `http://${vmInfo(id).ip}:7600`, cleanup }
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** All services at their desired count and ONLINE. */
export function settled (s: StatusReport): boolean {
  return s.phase === 'up' && s.settled && s.services.every(svc => svc.current === svc.desired)
}

export function balancerUrl (s: StatusReport): string {
  const url = s.services.find(svc => svc.name === 'lb')?.urls?.[0]
  if (!url) throw new Error('no ONLINE balancer')
  return url
}

export interface LoopResult { ok: number, failed: number, failures: string[], instances: Map<string, number> }

/**
 * A steady request loop through the balancer (one request at a time, ~50/s), counting failures
 * and which instance answered (x-wakame-instance header, or the JSON "instance" field of /api).
 */
export function requestLoop (url: string, intervalMs = 20): { stop: () => Promise<LoopResult> } {
  const result: LoopResult = { ok: 0, failed: 0, failures: [], instances: new Map() }
  let running = true
  const done = (async () => {
    while (running) {
      const t = Date.now()
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(5_000) })
        const body = await res.text()
        if (res.ok) {
          result.ok++
          let inst = res.headers.get('x-wakame-instance') ?? undefined
          if (!inst) { try { inst = (JSON.parse(body) as { instance?: string }).instance } catch {} }
          if (inst) result.instances.set(inst, (result.instances.get(inst) ?? 0) + 1)
        } else {
          result.failed++
          result.failures.push(`${new Date(t).toISOString()} HTTP ${res.status} ${body.slice(0, 100)}`)
        }
      } catch (err) {
        result.failed++
        result.failures.push(`${new Date(t).toISOString()} ${(err as Error).message}`)
      }
      await new Promise(r => setTimeout(r, intervalMs))
    }
  })()
  return { stop: async () => { running = false; await done; return result } }
}

export function kill (pid: number, signal: NodeJS.Signals): void {
  try { process.kill(pid, signal) } catch {}
}
