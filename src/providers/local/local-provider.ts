// The local provider: the embedded default "cloud". A VM is a wakame daemon (under its init when
// initArgv is set, see vm-init.ts) started detached (its own session and process group) on its own
// loopback address; the services it runs stay in its group, so killing the group takes down the VM
// and everything on it, as on a real machine.
// The registry is on disk (see registry.ts), so any process with the cluster directory can act.
import { spawn } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { stringify } from 'yaml'
import { writeFileAtomicSync } from '../../store/atomic.js'
import { createLogger, type Logger } from '../../util/log.js'
import type { LaunchRequest, Provider, TerminateCheck, VmInfo } from '../provider.js'
import { LAST_HOST, canBind } from './addresses.js'
import { LocalProviderError } from './errors.js'
import { AddressLeases } from './leases.js'
import { findProcessesByArg, killGroup, procStat, processStartTime, sameProcessAlive, waitUntil } from './proc.js'
import { TERMINATE_GRACE_MS, isLive, killStrays, killVm } from './teardown.js'
import { Registry, type LaunchClaim, type VmRecord } from './registry.js'
import * as volumes from './volumes.js'

export { startOwnerWatchdog } from './proc.js'
export { DAEMON_PID_FILE } from './vm-init.js'
export { terminateAll } from './teardown.js'
export { LocalProviderError } from './errors.js'

export interface LocalVmSpec {
  id: string
  ip: string
  vmDir: string
  dataDir: string
  /** Launch decision id. */
  launch: string
  bootstrap: string[]
  bootstrapExpect: number
}

export interface LocalProviderOptions {
  /** Directory of the registry (vms/, tokens/, volumes/, addresses/); created if missing. */
  clusterDir: string
  /** First three octets of VM addresses. @default "127.0.0" */
  net?: string
  /** Lowest host number handed out (127.0.0.1 stays for the host itself). @default 2 */
  firstHost?: number
  /** Mesh port every VM listens on (at its own address); must be free there for the address to be used. */
  meshPort: number
  /** API port every VM listens on, checked like meshPort. */
  apiPort: number
  /** argv that starts a daemon; the provider appends ['--config', '<vmDir>/agent.yaml']. Runs in this process's cwd. */
  agentArgv: string[]
  /**
   * argv of the VM's init, put before agentArgv (e.g. [...selfArgv(), 'vm-init', '--']): the init
   * leads the VM's process group and restarts the daemon if it dies, as systemd does on a real node
   * (see vm-init.ts). vm.json then records the init's pid; the daemon's is in <vmDir>/daemon.pid.
   * @default none: the daemon itself leads the group
   */
  initArgv?: string[]
  /** Builds the daemon config for a new VM (written as YAML to <vmDir>/agent.yaml). */
  agentConfig: (vm: LocalVmSpec) => Record<string, unknown>
  /** Pid of the process that owns this local cluster; passed to VMs as WAKAME_LOCAL_OWNER_PID. */
  ownerPid?: number
  /** Extra environment for VM processes. */
  env?: Record<string, string>
  logger?: Logger
}

export const DEFAULT_NET = '127.0.0'
export const DEFAULT_FIRST_HOST = 2
export { TERMINATE_GRACE_MS }
/** How long a launch waits for another live process that is launching the same token. */
export const LAUNCH_WAIT_MS = 15_000

// One queue per cluster directory for the whole process (not per instance), so two providers on
// the same directory cannot pick the same address or attach the same volume at once.
const queues = new Map<string, Promise<unknown>>()
function serialized<T> (key: string, fn: () => Promise<T> | T): Promise<T> {
  const run = (queues.get(key) ?? Promise.resolve()).then(fn, fn)
  queues.set(key, run.catch(() => {}))
  return run
}

export class LocalProvider implements Provider {
  readonly kind = 'local' as const
  private readonly reg: Registry
  private readonly leases: AddressLeases
  private readonly net: string
  private readonly firstHost: number
  private readonly log: Logger

  constructor (private readonly opts: LocalProviderOptions) {
    this.reg = new Registry(resolve(opts.clusterDir))
    this.reg.init()
    this.leases = new AddressLeases(join(this.reg.clusterDir, 'addresses'))
    this.leases.init()
    this.net = opts.net ?? DEFAULT_NET
    this.firstHost = opts.firstHost ?? DEFAULT_FIRST_HOST
    this.log = (opts.logger ?? createLogger('local-provider')).child({ component: 'local-provider' })
  }

  async launch (req: LaunchRequest): Promise<VmInfo> {
    return await serialized(this.reg.clusterDir, async () => await this.launchNow(req))
  }

  async terminate (vmId: string, check?: TerminateCheck): Promise<void> {
    const vm = this.reg.readVm(vmId)
    if (vm !== undefined && check?.ip !== undefined && vm.ip !== check.ip && vm.state === 'running') {
      throw new LocalProviderError('LOCAL_WRONG_VM', `${vmId} has address ${vm.ip}, not ${check.ip}: not terminating it`)
    }
    if (vm === undefined) {
      // Unknown, or a launch that never recorded its VM: kill whatever daemon it may have started.
      if (this.reg.vmIds().includes(vmId)) await killStrays([this.reg.agentConfigPath(vmId)])
      return
    }
    if (vm.state === 'running') {
      if (!await killVm(vm)) {
        throw new LocalProviderError('LOCAL_KILL_FAILED', `${vmId} (process group ${vm.pgid}) survived SIGKILL: look for processes stuck in D state, then retry`)
      }
      this.reg.writeVm({ ...vm, state: 'terminated', terminatedAt: new Date().toISOString() })
      this.log.info({ vm: vmId, ip: vm.ip }, 'vm terminated')
    }
    // Also on an already terminated VM: a terminate that crashed after marking it may not have detached.
    const detached = await serialized(this.reg.clusterDir, () => volumes.detachAll(this.reg, vmId))
    if (detached.length > 0) this.log.info({ vm: vmId, volumes: detached }, 'volumes detached')
  }

  async list (): Promise<VmInfo[]> {
    const out: VmInfo[] = []
    for (const id of this.reg.vmIds()) {
      const vm = this.reg.readVm(id)
      if (vm !== undefined) {
        out.push({ id, ip: vm.ip, state: isLive(vm) ? 'running' : 'terminated', launch: vm.launch })
        continue
      }
      const claim = this.reg.readClaim(id)
      if (claim !== undefined && this.reg.readToken(claim.token) === id) out.push({ id, ip: claim.ip, state: 'pending', launch: claim.decisionId })
    }
    return out
  }

  async attachVolume (name: string, service: string, vmId: string): Promise<void> {
    await serialized(this.reg.clusterDir, () => volumes.attachVolume(this.reg, name, service, vmId, id => isLive(this.reg.readVm(id))))
    this.log.info({ volume: name, vm: vmId, service }, 'volume attached')
  }

  async detachVolume (name: string, vmId: string): Promise<void> {
    await serialized(this.reg.clusterDir, () => volumes.detachVolume(this.reg, name, vmId))
  }

  async volumeAttachment (name: string): Promise<string | null> {
    const a = this.reg.readAttachment(name)
    return a !== undefined && isLive(this.reg.readVm(a.vm)) ? a.vm : null
  }

  async volumeZone (): Promise<string | undefined> {
    return undefined // one machine: no zones
  }

  /** Local addresses stand in for Elastic IPs: a record of which VM holds the name (its address is the VM's). */
  async associateAddress (name: string, vmId: string): Promise<void> {
    await serialized(this.reg.clusterDir, () => {
      if (!isLive(this.reg.readVm(vmId))) throw new LocalProviderError('LOCAL_VM_NOT_RUNNING', `cannot associate address ${name} with ${vmId}: it is not running`)
      this.reg.writeAddress(name, vmId)
    })
  }

  async addressAssociation (name: string): Promise<string | null> {
    const vm = this.reg.readAddress(name)
    return vm !== undefined && isLive(this.reg.readVm(vm)) ? vm : null
  }

  async addressIp (name: string): Promise<string | undefined> {
    const vm = this.reg.readAddress(name)
    return vm === undefined ? undefined : this.reg.readVm(vm)?.ip
  }

  /** The "mount" is a symlink into the VM's directory, made only while the volume is attached here. */
  async mountVolume (name: string, vmId: string): Promise<string | undefined> {
    if (this.reg.readAttachment(name)?.vm !== vmId) return undefined
    volumes.ensureMountLink(this.reg, vmId, name)
    return volumes.mountPoint(this.reg, name, vmId)
  }

  async unmountVolume (name: string, vmId: string): Promise<void> {
    volumes.removeMountLink(this.reg, vmId, name)
  }

  mountedVolumes (vmId: string): string[] {
    return this.reg.volumeNames().filter(n => volumes.mountPoint(this.reg, n, vmId) !== undefined)
  }

  mountPoint (name: string, vmId: string): string | undefined {
    return volumes.mountPoint(this.reg, name, vmId)
  }

  private async launchNow (req: LaunchRequest): Promise<VmInfo> {
    const existing = this.reg.readToken(req.token)
    if (existing !== undefined) return await this.resume(existing)
    const id = this.reg.allocateVmDir()
    const claim: LaunchClaim = {
      id, ip: '', token: req.token, decisionId: req.decisionId, reason: req.reason, bootstrap: req.bootstrap,
      bootstrapExpect: req.bootstrapExpect ?? 0, launcherPid: process.pid, launcherStartTime: processStartTime(process.pid), claimedAt: new Date().toISOString()
    }
    if (!await this.reserveAddress(claim)) {
      throw new LocalProviderError('LOCAL_NO_FREE_ADDRESS', `no free address in ${this.net}.${this.firstHost}-${LAST_HOST} with ports ${this.opts.meshPort} and ${this.opts.apiPort} free: terminate VMs or use another net`)
    }
    if (!this.reg.claimToken(req.token, id)) {
      // Another process launched this token between our check and our claim: use its VM. Without
      // a claim, our vm dir and address lease count as free.
      this.reg.removeClaim(id)
      const winner = this.reg.readToken(req.token)
      // Gone again: the winner's launch failed and was rolled back, so start over.
      return winner !== undefined ? await this.resume(winner) : await this.launchNow(req)
    }
    return await this.boot(claim)
  }

  /**
   * Leases the first address whose holder is gone and whose ports are free, recording it in the
   * claim first: whoever sees the lease then finds a claim backing it.
   */
  private async reserveAddress (claim: LaunchClaim): Promise<boolean> {
    const ports = [this.opts.meshPort, this.opts.apiPort]
    const leases = this.leases.snapshot()
    for (let host = this.firstHost; host <= LAST_HOST; host++) {
      const ip = `${this.net}.${host}`
      const lease = leases.get(ip)
      if (lease?.vm !== undefined && this.holds(lease.vm, ip)) continue
      // The registry cannot know other programs (or clusters) on this address: ask the kernel.
      if (!(await canBind(ip, ports[0]!)) || !(await canBind(ip, ports[1]!))) continue
      claim.ip = ip
      this.reg.writeClaim(claim)
      if (this.leases.take(ip, lease?.gen ?? 0, claim.id)) return true
    }
    return false
  }

  /** Whether `vmId` still holds `ip`: a live VM, or a launch under way (launcher alive, or token claimed). */
  private holds (vmId: string, ip: string): boolean {
    const vm = this.reg.readVm(vmId)
    if (vm !== undefined) return vm.ip === ip && isLive(vm)
    const claim = this.reg.readClaim(vmId)
    if (claim === undefined || claim.ip !== ip) return false
    return sameProcessAlive(claim.launcherPid, claim.launcherStartTime) || this.reg.readToken(claim.token) === vmId
  }

  /** A token already names `id`: return its VM, waiting for or finishing a launch that is under way. */
  private async resume (id: string): Promise<VmInfo> {
    const deadline = Date.now() + LAUNCH_WAIT_MS
    for (;;) {
      const vm = this.reg.readVm(id)
      if (vm !== undefined) return { id, ip: vm.ip, state: isLive(vm) ? 'running' : 'terminated', launch: vm.launch }
      const claim = this.reg.readClaim(id)
      if (claim === undefined) throw new LocalProviderError('LOCAL_REGISTRY_CORRUPT', `a token names ${id}, which has neither vm.json nor launch.json: remove its file under ${this.reg.tokensDir} to launch anew`)
      // Our own queue is serialized, so a claim of this process is a launch that failed part-way.
      const launcherBusy = claim.launcherPid !== process.pid && sameProcessAlive(claim.launcherPid, claim.launcherStartTime)
      if (!launcherBusy && this.takeOver(claim)) {
        this.log.warn({ vm: id, deadLauncher: claim.launcherPid }, 'finishing a launch whose launcher died')
        return await this.boot({ ...claim, launcherPid: process.pid, launcherStartTime: processStartTime(process.pid) })
      }
      if (Date.now() >= deadline) throw new LocalProviderError('LOCAL_LAUNCH_IN_PROGRESS', `${id} is being launched by process ${claim.launcherPid}, which has not finished in ${LAUNCH_WAIT_MS} ms: retry later`)
      await waitUntil(() => existsSync(join(this.reg.vmDir(id), 'vm.json')), 200)
    }
  }

  /** Exactly one process gets to finish a dead launcher's launch: the one that creates this marker. */
  private takeOver (claim: LaunchClaim): boolean {
    const marker = join(this.reg.vmDir(claim.id), `.takeover-${claim.launcherPid}-${claim.claimedAt.replace(/[^0-9]/g, '')}`)
    try {
      closeSync(openSync(marker, 'wx'))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw err
    }
    this.reg.writeClaim({ ...claim, launcherPid: process.pid, launcherStartTime: processStartTime(process.pid), claimedAt: new Date().toISOString() })
    return true
  }

  /** Writes the config, starts (or adopts) the daemon and records the VM. On failure, undoes the claim. */
  private async boot (claim: LaunchClaim): Promise<VmInfo> {
    const vmDir = this.reg.vmDir(claim.id)
    const configPath = this.reg.agentConfigPath(claim.id)
    let pid: number | undefined
    try {
      const dataDir = join(vmDir, 'data')
      mkdirSync(dataDir, { recursive: true })
      // A config already there means an earlier launcher died part-way: it may have started the daemon.
      const recovering = existsSync(configPath)
      if (!recovering) {
        const config = this.opts.agentConfig({ id: claim.id, ip: claim.ip, vmDir, dataDir, launch: claim.decisionId, bootstrap: claim.bootstrap, bootstrapExpect: claim.bootstrapExpect })
        writeFileAtomicSync(configPath, stringify(config))
      }
      // Adopt the daemon of a launcher that died after spawning it but before writing vm.json.
      const orphan = recovering ? findProcessesByArg([configPath]).find(p => procStat(p)?.pgrp === p) : undefined
      pid = orphan ?? await this.spawnDaemon(vmDir, configPath)
      const vm: VmRecord = {
        id: claim.id, ip: claim.ip, pid, pgid: pid, startTime: processStartTime(pid), token: claim.token,
        launch: claim.decisionId, ports: [this.opts.meshPort, this.opts.apiPort], state: 'running', launchedAt: new Date().toISOString()
      }
      this.reg.writeVm(vm)
      this.log.info({ vm: vm.id, ip: vm.ip, pid, launch: vm.launch, reason: claim.reason }, 'vm launched')
      return { id: vm.id, ip: vm.ip, state: 'running', launch: vm.launch }
    } catch (err) {
      if (pid !== undefined) await killGroup(pid, undefined, 0)
      this.reg.removeClaim(claim.id)
      this.reg.releaseToken(claim.token, claim.id)
      throw err
    }
  }

  private async spawnDaemon (vmDir: string, configPath: string): Promise<number> {
    if (this.opts.agentArgv.length === 0) throw new LocalProviderError('LOCAL_SPAWN_FAILED', 'agentArgv is empty: give the command that starts a daemon')
    const [cmd, ...args] = [...this.opts.initArgv ?? [], ...this.opts.agentArgv] as [string, ...string[]]
    const env: Record<string, string | undefined> = { ...process.env, ...this.opts.env }
    if (this.opts.ownerPid !== undefined) env.WAKAME_LOCAL_OWNER_PID = String(this.opts.ownerPid)
    const logFd = openSync(join(vmDir, 'agent.log'), 'a')
    try {
      // detached: setsid() in the child, so the daemon (or its init) leads a new process group that its services join.
      const child = spawn(cmd, [...args, '--config', configPath], { detached: true, stdio: ['ignore', logFd, logFd], env })
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve)
        child.once('error', err => reject(new LocalProviderError('LOCAL_SPAWN_FAILED', `cannot start ${cmd}: ${err.message}; check agentArgv`)))
      })
      // The VM must not keep this process (the launcher) alive.
      child.unref()
      if (child.pid === undefined) throw new LocalProviderError('LOCAL_SPAWN_FAILED', `${cmd} started without a pid`)
      return child.pid
    } finally {
      closeSync(logFd)
    }
  }
}
