// Fault helpers for the end-to-end fault tests: nftables partitions between loopback "VMs" (each
// VM dials from its own 127.0.N.x address, so a (saddr, daddr) rule cuts one link), polling with
// deadlines, background observers of several nodes' status, and readers of what the VMs leave
// on disk (daemon pids, instance pid files, rendered balancer configs, the provider registry).
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { StatusReport } from '../../src/core/status.js'
import { settled, startCluster, type TestCluster } from './cluster.js'

// ---- nftables ------------------------------------------------------------------------------

/** Every table the fault tests create is named `<prefix><pid of the test process>`, in family inet. */
export const NFT_TABLE_PREFIX = 'wakame_test_'

export function isRoot (): boolean {
  return process.getuid?.() === 0
}

export function hasNft (): boolean {
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Why partition tests cannot run here, or undefined when they can (root and `nft`). */
export function partitionUnavailable (): string | undefined {
  if (!isRoot()) return 'partition tests need root (nftables rules): run as root, as CI does'
  if (!hasNft()) return 'partition tests need nft: apt-get install -y nftables (CI installs it)'
  return undefined
}

function nft (args: string[], input?: string): string {
  return execFileSync('nft', args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}), stdio: ['pipe', 'pipe', 'pipe'] })
}

/** Names of the inet tables left by fault tests (this run's and earlier ones'). */
export function testTables (): string[] {
  let text: string
  try { text = nft(['list', 'tables', 'inet']) } catch { return [] }
  return [...text.matchAll(/^table inet (\S+)$/gm)].map(m => m[1]!).filter(n => n.startsWith(NFT_TABLE_PREFIX))
}

function pidAlive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

/**
 * Deletes the tables of test runs that are gone (a run killed before its cleanup) and this
 * process's own; a table of another live test process (a soak run beside CI) is left alone.
 * Returns the names deleted.
 */
export function removeStaleTables (): string[] {
  const gone: string[] = []
  for (const name of testTables()) {
    const pid = Number(name.slice(NFT_TABLE_PREFIX.length))
    if (Number.isInteger(pid) && pid !== process.pid && pidAlive(pid)) continue
    try { nft(['delete', 'table', 'inet', name]); gone.push(name) } catch {}
  }
  return gone
}

/**
 * Packet-filter partitions between loopback addresses, in a table of this process's own. Rules
 * sit on the output hook, which every loopback packet crosses once, and drop both directions of
 * each (a, b) pair; established connections stall as well as new ones.
 */
export class Partition {
  readonly table = `${NFT_TABLE_PREFIX}${process.pid}`
  private pairs: Array<[string, string]> = []

  /** Cuts every address of `a` from every address of `b`, both ways. */
  cut (a: string[], b: string[]): void {
    const pairs: Array<[string, string]> = []
    for (const x of a) for (const y of b) if (x !== y) pairs.push([x, y], [y, x])
    const script = [
      `table inet ${this.table} {`,
      '  chain out {',
      '    type filter hook output priority -10; policy accept;',
      ...pairs.map(([s, d]) => `    ip saddr ${s} ip daddr ${d} counter drop`),
      '  }',
      '}'
    ].join('\n') + '\n'
    // One transaction: the table and all its rules appear at once (or not at all).
    nft(['-f', '-'], script)
    this.pairs.push(...pairs)
  }

  /** Packets dropped so far per rule, for the test's log (proves the rules matched traffic). */
  counters (): string {
    try { return nft(['list', 'table', 'inet', this.table]).split('\n').filter(l => l.includes('drop')).map(l => l.trim()).join('\n') } catch { return '(no table)' }
  }

  /** Removes every rule (deletes the table); safe to call again, and when nothing was cut. */
  heal (): void {
    this.pairs = []
    if (!testTables().includes(this.table)) return
    nft(['delete', 'table', 'inet', this.table])
  }

  get active (): boolean { return this.pairs.length > 0 }
}

// ---- polling -------------------------------------------------------------------------------

export const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/**
 * Polls `probe` until it returns a value other than undefined/false, or throws after `timeoutMs`
 * with `what` and the last error. The value is returned.
 */
export async function waitUntil<T> (what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, intervalMs = 150): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastErr = ''
  for (;;) {
    try {
      const v = await probe()
      if (v !== undefined && v !== false) return v
    } catch (err) { lastErr = (err as Error).message }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr})` : ''}`)
    await sleep(intervalMs)
  }
}

/** GET /v1/status of one node with a short timeout (a frozen or cut-off node must not hang the test). */
export async function statusAt (api: string, timeoutMs = 2_000): Promise<StatusReport> {
  const res = await fetch(new URL('/v1/status', api), { signal: AbortSignal.timeout(timeoutMs) })
  if (!res.ok) throw new Error(`${api}: HTTP ${res.status}`)
  return await res.json() as StatusReport
}

export interface Observation { at: number, node: string, status?: StatusReport, error?: string }

/**
 * Polls the status of several nodes (by API URL) in the background, one round every
 * `intervalMs`, and hands each answer (or error) to `onObservation`. `stop` waits for the round in flight.
 */
export function watchStatus (apis: Record<string, string>, onObservation: (o: Observation) => void, intervalMs = 200): { stop: () => Promise<number> } {
  let running = true
  let rounds = 0
  const done = (async () => {
    while (running) {
      await Promise.all(Object.entries(apis).map(async ([node, api]) => {
        const at = Date.now()
        try { onObservation({ at, node, status: await statusAt(api, 1_500) }) } catch (err) { onObservation({ at, node, error: (err as Error).message }) }
      }))
      rounds++
      await sleep(intervalMs)
    }
  })()
  return { stop: async () => { running = false; await done; return rounds } }
}

// ---- what VMs leave on disk ------------------------------------------------------------------

/** pid.json of an instance on a VM: which process serves it (the supervisor's adoption record). */
export function instancePid (c: TestCluster, vm: string, instance: string): { pid: number, startTime: number } | undefined {
  const file = join(c.vmDir(vm), 'data', 'instances', instance, 'pid.json')
  if (!existsSync(file)) return undefined
  const pf = JSON.parse(readFileSync(file, 'utf8')) as { pid: number, startTime: number }
  return { pid: pf.pid, startTime: pf.startTime }
}

/** Field 22 of /proc/<pid>/stat (start time), or undefined when the process is gone or a zombie. */
export function procStartTime (pid: number): number | undefined {
  let text: string
  try { text = readFileSync(`/proc/${pid}/stat`, 'utf8') } catch { return undefined }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  if (rest[0] === 'Z' || rest[0] === 'X') return undefined
  return Number(rest[19])
}

/** Every instance of the status with the pid serving it (from its node's pid.json). */
export function servicePids (c: TestCluster, s: StatusReport): Map<string, { node: string, pid: number, startTime: number }> {
  const out = new Map<string, { node: string, pid: number, startTime: number }>()
  for (const inst of s.services.flatMap(v => v.instances)) {
    if (!inst.node) continue
    const p = instancePid(c, inst.node, inst.id)
    if (p) out.set(inst.id, { node: inst.node, ...p })
  }
  return out
}

/** Backends (instance ids) per route path in the builtin balancer config rendered for `lb` on `vm`. */
export function balancerBackends (c: TestCluster, vm: string, lb: string): Record<string, string[]> {
  const cfg = JSON.parse(readFileSync(join(c.vmDir(vm), 'data', 'instances', lb, 'balancer.json'), 'utf8')) as { routes: Array<{ path: string, backends: Array<{ id: string, url: string }> }> }
  return Object.fromEntries(cfg.routes.map(r => [r.path, r.backends.map(b => b.id).sort()]))
}

export interface VmRecordLite { id: string, ip: string, pid: number, pgid: number, launch: string, token: string, state: string, launchedAt: string, terminatedAt?: string }

/** Every vm.json in the provider's registry. */
export function registryVms (c: TestCluster): VmRecordLite[] {
  const dir = join(c.clusterDir, 'vms')
  return readdirSync(dir).filter(n => /^vm-\d+$/.test(n) && existsSync(join(dir, n, 'vm.json')))
    .map(n => JSON.parse(readFileSync(join(dir, n, 'vm.json'), 'utf8')) as VmRecordLite)
}

/** Launch decision ids recorded by more than one VM (a duplicate VM for one decision). */
export function duplicateLaunches (c: TestCluster): Record<string, string[]> {
  const by = new Map<string, string[]>()
  for (const vm of registryVms(c)) by.set(vm.launch, [...by.get(vm.launch) ?? [], vm.id])
  return Object.fromEntries([...by].filter(([, ids]) => ids.length > 1))
}

/** The term a launch token was made in (`wakame-<cluster>-<term>-<decision>`). */
export function tokenTerm (token: string, cluster: string): number | undefined {
  const m = new RegExp(`^wakame-${cluster}-(\\d+)-`).exec(token)
  return m ? Number(m[1]) : undefined
}

/** The volume's attachment in the provider registry (which VM it is mounted on), if any. */
export function volumeAttachment (c: TestCluster, name: string): string | undefined {
  const file = join(c.clusterDir, 'volumes', name, 'attachment.json')
  if (!existsSync(file)) return undefined
  return (JSON.parse(readFileSync(file, 'utf8')) as { vm: string }).vm
}

/** Lines of a VM's agent.log (JSON, one event a line) whose message matches. */
export function agentLogLines (c: TestCluster, vm: string, match: RegExp): string[] {
  const file = join(c.vmDir(vm), 'agent.log')
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8').split('\n').filter(l => match.test(l))
}

// ---- status shortcuts ------------------------------------------------------------------------

export function instancesOf (s: StatusReport, service: string): StatusReport['services'][number]['instances'] {
  return s.services.find(v => v.name === service)?.instances ?? []
}

export function nodeOf (s: StatusReport, instance: string): string | undefined {
  return s.services.flatMap(v => v.instances).find(i => i.id === instance)?.node ?? undefined
}

// ---- a settled example cluster ----------------------------------------------------------------

/**
 * Boots the example cluster (examples/webcluster) on `net` like failover.test.ts: the first node,
 * launch_cluster, then all services ONLINE on three voters. The caller owns `cleanup()`.
 */
export async function settledCluster (net: string, onStart: (c: TestCluster) => void): Promise<TestCluster> {
  const t0 = Date.now()
  const c = await startCluster({ net })
  // Handed over before anything can fail, so the caller's afterEach cleans up whatever was started.
  onStart(c)
  const r = await c.cli('launch_cluster', '--no-wait')
  if (r.code !== 0) throw new Error(`launch_cluster failed: ${r.stdout}${r.stderr}`)
  await c.waitFor('all ONLINE on 3 voters', s => settled(s) && s.nodes.filter(n => n.voter && n.status === 'alive').length === 3, 90_000)
  console.log(`[${net}] cluster settled in ${Date.now() - t0} ms`)
  return c
}

/** One line per instance: `id:state@node`, and the leader and term, for logs and failure messages. */
export function describeStatus (s: StatusReport): string {
  return `leader ${s.leader} term ${s.term} committed ${s.committed?.term}/${s.committed?.version}; ` +
    s.services.map(v => `${v.name} ${v.current}/${v.desired}: ${v.instances.map(i => `${i.id}:${i.state}@${i.node}`).join(' ')}`).join('; ') +
    `; nodes ${s.nodes.map(n => `${n.id}:${n.status}${n.voter ? '*' : ''}`).join(' ')}`
}

/**
 * Processes started for a VM the registry does not list as running (a launch abandoned half-way,
 * a terminated VM): `vm-N: pids`. Must be empty, or a VM leaked outside the registry.
 */
export function unrecordedVmProcesses (c: TestCluster): string[] {
  const dir = join(c.clusterDir, 'vms')
  const running = new Set(registryVms(c).filter(v => v.state === 'running').map(v => v.id))
  const out: string[] = []
  const cmdlines = readdirSync('/proc').filter(n => /^\d+$/.test(n)).map(pid => {
    try { return { pid, args: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0') } } catch { return { pid, args: [] } }
  })
  for (const id of readdirSync(dir).filter(n => /^vm-\d+$/.test(n) && !running.has(n))) {
    const config = join(dir, id, 'agent.yaml')
    const pids = cmdlines.filter(p => p.args.includes(config) && procStartTime(Number(p.pid)) !== undefined).map(p => p.pid)
    if (pids.length > 0) out.push(`${id}: ${pids.join(',')}`)
  }
  return out
}

/**
 * Windows during which `vm` itself held a peer dead (from "member X is dead" to "member X is alive"
 * in its agent.log), since `sinceMs`. After a stall the stalled daemon may count its own freeze as
 * its peers' silence (bug 3 of the fault-test report): these windows explain what it then renders.
 */
export function selfEvictionWindows (c: TestCluster, vm: string, sinceMs: number): Array<{ peer: string, from: number, to: number }> {
  const out: Array<{ peer: string, from: number, to: number }> = []
  const open = new Map<string, number>()
  for (const line of agentLogLines(c, vm, /"member vm-\d+ is (dead|alive)"/)) {
    let e: { time: number, msg: string }
    try { e = JSON.parse(line) as { time: number, msg: string } } catch { continue }
    if (e.time < sinceMs) continue
    const m = /^member (\S+) is (dead|alive)$/.exec(e.msg)
    if (!m) continue
    if (m[2] === 'dead') open.set(m[1]!, e.time)
    else if (open.has(m[1]!)) { out.push({ peer: m[1]!, from: open.get(m[1]!)!, to: e.time }); open.delete(m[1]!) }
  }
  for (const [peer, from] of open) out.push({ peer, from, to: Date.now() })
  return out
}

