// A real local wakame cluster for the benchmarks: the first node booted through the local
// provider, then launch_cluster on a bench spec whose min_nodes makes the leader launch the other
// VMs (the product's own way of growing a cluster). Every VM is a daemon under its vm-init, on its
// own 127.0.<net>.x address, in its own process group; all are killed at the end.
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { localVmConfig } from '../../src/cli/agent.js'
import { Client, type ApiAnswer } from '../../src/cli/client.js'
import { TimingSchema } from '../../src/config/daemon-config.js'
import type { StatusReport } from '../../src/core/status.js'
import { generatePsk, generateToken } from '../../src/mesh/keys.js'
import { LocalProvider, terminateAll } from '../../src/providers/local/local-provider.js'
import { silentLogger } from '../../src/util/log.js'
import { onCleanup, runDir, trackGroup } from './cleanup.js'
import { signal, sleep, waitUntil } from './proc.js'

export const ROOT = resolve(import.meta.dirname, '..', '..')
/** The bench's own copy of the bundle (bench/build.mjs), next to this runner's bundle. */
export const BUNDLE = existsSync(join(import.meta.dirname, 'wakame.mjs')) ? join(import.meta.dirname, 'wakame.mjs') : join(ROOT, 'bench/.build/wakame.mjs')
export const FIXTURE = join(ROOT, 'bench/fixtures/hello.mjs')
export const API_PORT = 7600
export const MESH_PORT = 7610

export interface VmRec { id: string, ip: string, pid: number, pgid: number, state: string, launch: string }

export interface LogEntry { node: string, time: number, msg: string, [k: string]: unknown }

export interface BenchSpecOptions {
  minNodes: number
  maxNodes?: number
  www?: { min: number, max: number, maxPerNode?: number }
  lb?: boolean
  /** The balancer's kind. @default builtin */
  lbKind?: 'builtin' | 'haproxy' | 'nginx' | 'apache'
  /** A no-port service with no health check (ONLINE ~at once), for dissemination and failover trials. */
  probe?: { max: number }
}

/** A bench spec: www (the hello fixture), a builtin balancer in front, and a probe service. */
export function benchSpec (o: BenchSpecOptions): string {
  const www = o.www ?? { min: 2, max: 12 }
  const lines = [
    'cluster:',
    `  min_nodes: ${o.minNodes}`,
    `  max_nodes: ${o.maxNodes ?? o.minNodes + 10}`,
    '  max_instances_per_node: 4',
    'services:',
    '  www:',
    `    command: [node, ${JSON.stringify(FIXTURE)}]`,
    '    port: 8082',
    '    health: { http: { path: /health }, interval_ms: 1000 }',
    `    min: ${www.min}`,
    `    max: ${www.max}`,
    ...(www.maxPerNode ? [`    max_per_node: ${www.maxPerNode}`] : []),
    ...(o.lb === false ? [] : [
      '  lb:',
      '    port: 8080',
      '    depends_on: [www]',
      '    health: { http: { path: /_wakame/health } }',
      `    balancer: { kind: ${o.lbKind ?? 'builtin'}, routes: [ { path: /, service: www } ] }`,
      '    min: 1',
      '    max: 1'
    ]),
    ...(o.probe ? [
      '  probe:',
      '    command: [sleep, "100000"]',
      '    min: 0',
      `    max: ${o.probe.max}`
    ] : [])
  ]
  return lines.join('\n') + '\n'
}

export interface WakameCluster {
  name: string
  dir: string
  clusterDir: string
  tokenFile: string
  net: string
  provider: LocalProvider
  first: string
  vms: () => VmRec[]
  running: () => VmRec[]
  vm: (id: string) => VmRec
  vmDir: (id: string) => string
  daemonPid: (id: string) => number
  api: (id: string) => string
  status: (id?: string, timeoutMs?: number) => Promise<StatusReport>
  change: (path: string, body?: unknown, node?: string) => Promise<ApiAnswer>
  /** Byte offsets of every VM's agent.log now: logsSince() reads only what comes after. */
  logMark: () => Map<string, number>
  logsSince: (mark: Map<string, number>, match?: (e: LogEntry) => boolean) => LogEntry[]
  /** Launches one more VM through the provider (joins through the first node). */
  launchVm: (token: string) => Promise<VmRec>
  stop: () => Promise<void>
}

let clusterSeq = 0

export async function startWakame (opts: { name: string, net: string, spec: string, specFile?: string, nodes: number, timing?: Record<string, number>, settleTimeoutMs?: number, launch?: boolean, env?: Record<string, string>, daemonNodeFlags?: string[] }): Promise<WakameCluster> {
  const dir = join(runDir(), `wakame-${opts.name}-${++clusterSeq}`)
  mkdirSync(dir, { recursive: true })
  const clusterDir = join(dir, 'cluster')
  const pskFile = join(dir, 'psk.key')
  const tokenFile = join(dir, 'admin.token')
  const specFile = join(dir, 'spec.yaml')
  writeFileSync(pskFile, generatePsk(), { mode: 0o600 })
  writeFileSync(tokenFile, `${generateToken()}\n`, { mode: 0o600 })
  if (!opts.specFile) writeFileSync(specFile, opts.spec)
  const local = { cluster_dir: clusterDir, net: opts.net, first_host: 2 }
  const base = {
    cluster: 'bench', psk_file: pskFile, admin_token_file: tokenFile, mesh_port: MESH_PORT, api_port: API_PORT, local,
    spec: opts.specFile ?? specFile, log_level: 'info' as const, timing: TimingSchema.parse(opts.timing ?? {})
  }
  const provider = new LocalProvider({
    clusterDir, net: opts.net, firstHost: 2, meshPort: MESH_PORT, apiPort: API_PORT,
    initArgv: [process.execPath, BUNDLE, 'vm-init', '--'],
    agentArgv: [process.execPath, ...(opts.daemonNodeFlags ?? []), BUNDLE, 'agent'],
    agentConfig: (vm) => localVmConfig(base, vm),
    ownerPid: process.pid,
    ...(opts.env ? { env: opts.env } : {}),
    logger: silentLogger()
  })
  const vmDir = (id: string) => join(clusterDir, 'vms', id)
  const readVm = (id: string): VmRec | undefined => {
    try { return JSON.parse(readFileSync(join(vmDir(id), 'vm.json'), 'utf8')) as VmRec } catch { return undefined }
  }
  const vms = (): VmRec[] => {
    let ids: string[] = []
    try { ids = readdirSync(join(clusterDir, 'vms')).filter(n => /^vm-\d+$/.test(n)) } catch {}
    return ids.map(readVm).filter((v): v is VmRec => v !== undefined).sort((a, b) => Number(a.id.slice(3)) - Number(b.id.slice(3)))
  }
  const vm = (id: string): VmRec => {
    const v = readVm(id)
    if (!v) throw new Error(`no vm.json for ${id}`)
    return v
  }
  const api = (id: string) => `http://${vm(id).ip}:${API_PORT}`
  const clients = new Map<string, Client>()
  const status = async (id?: string, timeoutMs = 5_000): Promise<StatusReport> => {
    const url = id ? api(id) : first
    const res = await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) })
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`)
    return await res.json() as StatusReport
  }
  let first = ''
  const change = async (path: string, body?: unknown, node?: string): Promise<ApiAnswer> => {
    const url = node ? api(node) : first
    let c = clients.get(url)
    if (!c) { c = new Client({ node: url, tokenFile, requestTimeoutMs: 30_000 }); clients.set(url, c) }
    return await c.change(path, body)
  }
  const logFile = (id: string) => join(vmDir(id), 'agent.log')
  const logMark = (): Map<string, number> => {
    const m = new Map<string, number>()
    for (const v of vms()) {
      try { const fd = openSync(logFile(v.id), 'r'); m.set(v.id, fstatSync(fd).size); closeSync(fd) } catch { m.set(v.id, 0) }
    }
    return m
  }
  const logsSince = (mark: Map<string, number>, match?: (e: LogEntry) => boolean): LogEntry[] => {
    const out: LogEntry[] = []
    for (const v of vms()) {
      let text: string
      try {
        const fd = openSync(logFile(v.id), 'r')
        const size = fstatSync(fd).size
        const from = mark.get(v.id) ?? 0
        const buf = Buffer.alloc(Math.max(0, size - from))
        readSync(fd, buf, 0, buf.length, from)
        closeSync(fd)
        text = buf.toString('utf8')
      } catch { continue }
      for (const line of text.split('\n')) {
        if (!line.startsWith('{')) continue
        let e: Record<string, unknown>
        try { e = JSON.parse(line) as Record<string, unknown> } catch { continue }
        const entry = { ...e, node: v.id, time: Number(e.time), msg: String(e.msg ?? '') } as LogEntry
        if (!match || match(entry)) out.push(entry)
      }
    }
    return out.sort((a, b) => a.time - b.time)
  }
  let launched = 0
  const launchVm = async (token: string): Promise<VmRec> => {
    const bootstrap = running().slice(0, 3).map(v => `${v.ip}:${MESH_PORT}`)
    const info = await provider.launch({ token: `bench-${token}-${++launched}`, decisionId: `bench-${launched}`, reason: 'bench', bootstrap, bootstrapExpect: 0 })
    const rec = vm(info.id)
    trackGroup(rec.pgid)
    return rec
  }
  const running = () => vms().filter(v => v.state === 'running')
  const stop = async (): Promise<void> => {
    // SIGKILL every VM group first (fast), then let the provider record them terminated.
    for (const v of vms()) if (v.state === 'running') { signal(-v.pgid, 'SIGCONT'); signal(-v.pgid, 'SIGKILL') }
    await sleep(100)
    await terminateAll(clusterDir).catch(() => 0)
  }
  const cleanup = onCleanup(`wakame cluster ${opts.name}`, stop)
  const cluster: WakameCluster = {
    name: opts.name, dir, clusterDir, tokenFile, net: opts.net, provider, first: '',
    vms, running, vm, vmDir, daemonPid: (id) => Number(readFileSync(join(vmDir(id), 'daemon.pid'), 'utf8').trim()),
    api, status, change, logMark, logsSince, launchVm, stop: cleanup
  }
  try {
    const v1 = await provider.launch({ token: 'bench-first', decisionId: 'first', reason: 'bench', bootstrap: [], bootstrapExpect: 1 })
    trackGroup(vm(v1.id).pgid)
    first = `http://${v1.ip}:${API_PORT}`
    cluster.first = first
    await waitUntil('the first node to lead', async () => (await status()).leader !== null, 30_000, 100)
    if (opts.launch !== false) {
      await change('/v1/cluster/launch')
      await waitUntilSettled(cluster, opts.nodes, opts.settleTimeoutMs ?? 60_000 + opts.nodes * 4_000)
    }
    return cluster
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** Every VM up and seen alive by the first node, one leader, all services at their count. */
export async function waitUntilSettled (c: WakameCluster, nodes: number, timeoutMs: number, node?: string): Promise<StatusReport> {
  const tracked = new Set<number>()
  let last: StatusReport | undefined
  try {
    return await waitUntil(`${nodes} nodes alive and settled`, async () => {
      for (const v of c.running()) if (!tracked.has(v.pgid)) { trackGroup(v.pgid); tracked.add(v.pgid) }
      const s = last = await c.status(node)
      const alive = s.nodes.filter(n => n.status === 'alive').length
      return s.leader !== null && alive >= nodes && s.settled && s.services.every(v => v.current === v.desired) ? s : undefined
    }, timeoutMs, 250)
  } catch (err) {
    // Say how far it got: a timeout alone does not tell a slow start from a cluster that churns.
    throw new Error(`${(err as Error).message}${last ? `; last status: ${c.running().length} VMs running, ${brief(last)}` : ''}`)
  }
}

/** Leader, term, how many nodes are in each state, and each service's count: how far a cluster got. */
function brief (s: StatusReport): string {
  const states = new Map<string, number>()
  for (const n of s.nodes) states.set(n.status, (states.get(n.status) ?? 0) + 1)
  return `leader ${s.leader ?? 'none'} term ${s.term}, nodes ${[...states].map(([k, v]) => `${v} ${k}`).join(', ')}, ` +
    `settled ${s.settled}, services ${s.services.map(v => `${v.name} ${v.current}/${v.desired}`).join(' ')}`
}

/** Every node's own status agrees that `pred` holds (polled in parallel). */
export async function everyNode (c: WakameCluster, ids: string[], pred: (s: StatusReport, id: string) => boolean, timeoutMs: number, what: string): Promise<void> {
  await waitUntil(what, async () => {
    const all = await Promise.all(ids.map(async id => { try { return pred(await c.status(id, 3_000), id) } catch { return false } }))
    return all.every(Boolean)
  }, timeoutMs, 200)
}
