// A simulated cloud behind the Provider interface, with the faults real clouds have: throttling,
// capacity errors, answers that are slow or lost after the work was done (so only idempotency saves
// the caller from duplicates), and volumes that are attached to one VM at a time.
import { ProviderError, type LaunchRequest, type Provider, type VmInfo } from '../providers/provider.js'
import type { Rng } from './rng.js'

export interface CloudFaults {
  /** Chance a launch is refused for good (no capacity): a definitive error. */
  capacityRate: number
  /** Chance a call is throttled (retryable, nothing done). */
  throttleRate: number
  /** Chance a call's work is done but its answer is lost (retryable error after the fact). */
  lostAnswerRate: number
  /** Answer delay range, ms. */
  delayMs: [number, number]
  /** Time from launch to a running VM whose daemon starts, ms. */
  bootMs: [number, number]
}

export interface SimVm {
  id: string
  launch: string
  token: string
  zone: string
  state: 'pending' | 'running' | 'terminated'
  createdAt: number
}

/** One cloud call, as the invariant checkers see it. */
export interface CloudCall { caller: string, op: 'launch' | 'terminate' | 'attach' | 'detach' | 'describe' | 'associate', target: string, at: number }

export interface CloudHooks {
  now: () => number
  schedule: (delayMs: number, run: () => void) => void
  /** A VM finished booting: start its daemon. */
  booted: (vm: SimVm) => void
  /** A VM is gone: its daemon and services with it. */
  terminated: (vm: SimVm) => void
  /** Every call, before it is answered (checkers look at the caller's state at that moment). */
  called: (call: CloudCall) => void
}

export class SimCloud {
  readonly vms = new Map<string, SimVm>()
  readonly tokens = new Map<string, string>()
  /** Volume name → VM it is attached to. */
  readonly volumes = new Map<string, string>()
  /** Address name → VM it is associated with. */
  readonly addresses = new Map<string, string>()
  readonly volumeZones = new Map<string, string>()
  private nextVm = 1

  /** Mutation: a cloud (or caller) that ignores idempotency tokens, so every retry launches anew. */
  ignoreTokens = false
  /** After the fault phase the cloud behaves (answers still take time). */
  healed = false

  constructor (private readonly rng: Rng, private readonly faults: CloudFaults, private readonly hooks: CloudHooks) {}

  /** Create a VM outside any decision (the nodes a cluster starts with). */
  createInitial (): SimVm {
    const n = this.nextVm++
    const vm: SimVm = { id: `vm-${n}`, launch: 'initial', token: `initial-${n}`, zone: ZONES[n % ZONES.length]!, state: 'running', createdAt: this.hooks.now() }
    this.vms.set(vm.id, vm)
    return vm
  }

  /** The Provider a given node's executor uses: every call is recorded with its caller. */
  providerFor (caller: string): Provider {
    return {
      kind: 'local',
      launch: async (req) => await this.call(caller, 'launch', req.decisionId, () => this.doLaunch(req)),
      terminate: async (id) => { await this.call(caller, 'terminate', id, () => this.doTerminate(id)) },
      list: async () => [...this.vms.values()].map(v => this.info(v)),
      attachVolume: async (name, _service, vmId) => { await this.call(caller, 'attach', `${name}@${vmId}`, () => this.doAttach(name, vmId)) },
      detachVolume: async (name, vmId) => { await this.call(caller, 'detach', `${name}@${vmId}`, () => this.doDetach(name, vmId)) },
      volumeAttachment: async (name) => await this.call(caller, 'describe', name, () => this.volumes.get(name) ?? null),
      volumeZone: async (name) => this.volumeZones.get(name),
      associateAddress: async (name, vmId) => { await this.call(caller, 'associate', `${name}@${vmId}`, () => { this.addresses.set(name, vmId) }) },
      addressAssociation: async (name) => await this.call(caller, 'describe', name, () => this.addresses.get(name) ?? null),
      addressIp: async () => undefined,
      // Node side: a volume attached to this VM is usable at once.
      mountVolume: async (name, vmId) => this.volumes.get(name) === vmId ? `/sim/volumes/${name}` : undefined,
      unmountVolume: async () => {},
      mountedVolumes: (vmId) => [...this.volumes].filter(([, at]) => at === vmId).map(([n]) => n)
    }
  }

  kill (id: string): void {
    const vm = this.vms.get(id)
    if (!vm || vm.state === 'terminated') return
    vm.state = 'terminated'
    for (const [name, at] of this.volumes) if (at === id) this.volumes.delete(name)
    for (const [name, at] of this.addresses) if (at === id) this.addresses.delete(name)
    this.hooks.terminated(vm)
  }

  private async call<T> (caller: string, op: CloudCall['op'], target: string, work: () => T): Promise<T> {
    this.hooks.called({ caller, op, target, at: this.hooks.now() })
    const f = this.faults
    const delay = this.rng.range(f.delayMs[0], f.delayMs[1])
    const throttled = this.rng.chance(f.throttleRate) && !this.healed
    const lost = this.rng.chance(f.lostAnswerRate) && !this.healed
    return await new Promise<T>((resolve, reject) => {
      this.hooks.schedule(delay, () => {
        if (throttled) return reject(new ProviderError('RequestLimitExceeded', 'Request limit exceeded.', true))
        let result: T
        try { result = work() } catch (err) { return reject(err) }
        if (lost) return reject(new ProviderError('RequestTimeout', 'the answer was lost (the work was done)', true))
        resolve(result)
      })
    })
  }

  private doLaunch (req: LaunchRequest): VmInfo {
    const known = this.ignoreTokens ? undefined : this.tokens.get(req.token)
    if (known) return this.info(this.vms.get(known)!)
    if (this.rng.chance(this.faults.capacityRate) && !this.healed) throw new ProviderError('InsufficientInstanceCapacity', 'no capacity for this instance type', false)
    const n = this.nextVm++
    const zone = req.zones?.[0] ?? ZONES[n % ZONES.length]!
    const vm: SimVm = { id: `vm-${n}`, launch: req.decisionId, token: req.token, zone, state: 'pending', createdAt: this.hooks.now() }
    this.vms.set(vm.id, vm)
    this.tokens.set(req.token, vm.id)
    this.hooks.schedule(this.rng.range(this.faults.bootMs[0], this.faults.bootMs[1]), () => {
      if (vm.state !== 'pending') return
      vm.state = 'running'
      this.hooks.booted(vm)
    })
    return this.info(vm)
  }

  private doTerminate (id: string): void {
    this.kill(id)
  }

  private doAttach (name: string, vmId: string): void {
    const vm = this.vms.get(vmId)
    if (!vm || vm.state !== 'running') throw new ProviderError('IncorrectInstanceState', `${vmId} is not running`, true)
    const at = this.volumes.get(name)
    if (at && at !== vmId) throw new ProviderError('VolumeInUse', `${name} is attached to ${at}`, true)
    // A volume lives in the zone of the VM it was created for (as an EBS volume does).
    const zone = this.volumeZones.get(name) ?? vm.zone
    if (zone !== vm.zone) throw new ProviderError('InvalidVolume.ZoneMismatch', `${name} is in ${zone}, ${vmId} in ${vm.zone}`, false)
    this.volumeZones.set(name, zone)
    this.volumes.set(name, vmId)
  }

  private doDetach (name: string, vmId: string): void {
    if (this.volumes.get(name) === vmId) this.volumes.delete(name)
  }

  private info (vm: SimVm): VmInfo {
    return { id: vm.id, ip: ipOf(vm.id), state: vm.state, launch: vm.launch, zone: vm.zone }
  }
}

/** Two zones, so volumes (which live in one) constrain where their service may go. */
const ZONES = ['sim-1a', 'sim-1b']

/** vm-N → 10.x.y.z (unique per VM). */
export function ipOf (id: string): string {
  const n = Number(id.slice(3))
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`
}
