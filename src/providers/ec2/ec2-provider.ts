// The EC2 provider: VMs are EC2 instances booted from this node's own image, found by the cluster
// tag; volumes are EBS volumes and addresses Elastic IPs, both found by tag. Every call is
// idempotent (ClientTokens, tag lookups, "already there" checks) and goes through one rate limit
// and retry policy (api.ts). Transient failures that outlast it are ProviderErrors with
// retryable: true, which the executor retries later with the same token; definitive ones say
// what to change.
import { EC2Client, TerminateInstancesCommand, type EC2ClientConfig } from '@aws-sdk/client-ec2'
import { createLogger, type Logger } from '../../util/log.js'
import type { LaunchRequest, Provider, TerminateCheck, VmInfo } from '../provider.js'
import { Addresses } from './addresses.js'
import { Ec2Api, makeEc2Client, type Clock, type RateLimit, type RetryPolicy } from './api.js'
import { LinuxDiskOps, type DiskOps } from './disk.js'
import { Ec2ProviderError, awsCodeOf } from './errors.js'
import type { Identity } from './identity.js'
import {
  DEFAULT_TIMEOUTS, LIVE_STATES, TAG, clusterFilter, describeInstance, describeInstances, fence, tagsOf, vmInfoOf,
  waitInstanceState, type Ctx, type Timeouts
} from './instances.js'
import { Launcher, type LaunchSettings } from './launch.js'
import { DEFAULT_MAX_LAUNCHES_PER_MINUTE } from './settings.js'
import { Mounts, Volumes, type VolumeSettings } from './volumes.js'

export { Ec2ProviderError } from './errors.js'
export type { Identity } from './identity.js'
export type { LaunchSettings } from './launch.js'

export interface Ec2ProviderOptions {
  /** An SDK client (build it with maxAttempts: 1: this provider retries), or the config for one. */
  client: EC2Client | EC2ClientConfig
  cluster: string
  /** This node, from IMDS (identity.ts): the defaults of image, subnet, groups and profile come from it. */
  self: Identity
  launch: LaunchSettings
  /** The spend guard: distinct launches per minute. @default 10 */
  maxLaunchesPerMinute?: number
  /** Extra tags for every instance, volume and address wakame creates (cost allocation, owner). */
  tags?: Record<string, string>
  volumes?: VolumeSettings
  /** How the node finds, formats and mounts disks. @default LinuxDiskOps */
  disk?: DiskOps
  /** Where volumes are mounted, one directory per volume name. @default /var/lib/wakame/volumes */
  mountRoot?: string
  /** See api.ts for the defaults and their reasons. */
  rateLimit?: RateLimit
  retry?: RetryPolicy
  timeouts?: Partial<Timeouts>
  /** Pause between two reads while waiting for a state. @default 1000 */
  pollMs?: number
  /** MaxResults of DescribeInstances pages. @default 1000 */
  pageSize?: number
  /**
   * False while this node must not change the cloud (the leader's lease): checked right before
   * each call that changes something inside one operation, and before each retry of one.
   * @default always true (the executor checks before each operation)
   */
  canAct?: () => boolean
  clock?: Clock
  random?: () => number
  logger?: Logger
}

export { DEFAULT_MAX_LAUNCHES_PER_MINUTE } from './settings.js'
export const DEFAULT_MOUNT_ROOT = '/var/lib/wakame/volumes'

export class Ec2Provider implements Provider {
  readonly kind = 'ec2' as const
  readonly api: Ec2Api
  private readonly ctx: Ctx
  private readonly launcher: Launcher
  private readonly vols: Volumes
  private readonly addrs: Addresses
  private readonly mounts: Mounts
  private readonly ownsClient: boolean

  constructor (private readonly opts: Ec2ProviderOptions) {
    const logger = (opts.logger ?? createLogger('ec2-provider')).child({ component: 'ec2-provider' })
    this.ownsClient = !(opts.client instanceof EC2Client)
    const client = opts.client instanceof EC2Client ? opts.client : makeEc2Client({ region: opts.self.region, ...opts.client })
    const canAct = opts.canAct ?? (() => true)
    this.api = new Ec2Api({
      client, logger, canAct,
      ...(opts.clock !== undefined ? { clock: opts.clock } : {}),
      ...(opts.random !== undefined ? { random: opts.random } : {}),
      ...(opts.rateLimit !== undefined ? { rateLimit: opts.rateLimit } : {}),
      ...(opts.retry !== undefined ? { retry: opts.retry } : {})
    })
    this.ctx = {
      api: this.api,
      cluster: opts.cluster,
      logger,
      timeouts: { ...DEFAULT_TIMEOUTS, ...opts.timeouts },
      pollMs: opts.pollMs ?? 1_000,
      pageSize: opts.pageSize ?? 1_000,
      extraTags: opts.tags ?? {},
      recent: new Map(),
      canAct
    }
    this.launcher = new Launcher(this.ctx, opts.self, opts.launch, opts.maxLaunchesPerMinute ?? DEFAULT_MAX_LAUNCHES_PER_MINUTE)
    this.vols = new Volumes(this.ctx, opts.volumes)
    this.addrs = new Addresses(this.ctx)
    this.mounts = new Mounts(this.ctx, this.vols, opts.disk ?? new LinuxDiskOps(), opts.mountRoot ?? DEFAULT_MOUNT_ROOT)
  }

  async launch (req: LaunchRequest): Promise<VmInfo> {
    return await this.launcher.launch(req)
  }

  /** The cluster's pending and running instances (by the cluster tag, every page). */
  async list (): Promise<VmInfo[]> {
    const found = await describeInstances(this.ctx, [clusterFilter(this.ctx), LIVE_STATES], 'DescribeInstances (list the cluster)')
    return found.map(i => vmInfoOf(i))
  }

  /**
   * Re-reads the VM and terminates it only if it carries this cluster's tag and (with `check`)
   * still has the address the leader knows; never this node itself. Gone or unknown: success.
   */
  async terminate (vmId: string, check?: TerminateCheck): Promise<void> {
    const what = `terminate ${vmId}`
    if (vmId === this.opts.self.instanceId) throw new Ec2ProviderError('EC2_SELF', `${what}: that is this node; another node's leader must do it`)
    const inst = await describeInstance(this.ctx, vmId, `DescribeInstances for ${what}`)
    const state = inst?.State?.Name
    if (inst === undefined || state === 'terminated' || state === 'shutting-down') {
      this.ctx.recent.delete(vmId)
      return
    }
    const cluster = tagsOf(inst.Tags)[TAG.cluster]
    if (cluster !== this.opts.cluster) {
      throw new Ec2ProviderError('EC2_NOT_OURS', `${what}: refused, it is ${cluster === undefined ? 'not tagged' : `tagged ${TAG.cluster}=${cluster}`}, not ${TAG.cluster}=${this.opts.cluster}`)
    }
    if (check?.ip !== undefined && inst.PrivateIpAddress !== check.ip) {
      throw new Ec2ProviderError('EC2_WRONG_VM', `${what}: refused, its private address is ${inst.PrivateIpAddress ?? 'none'}, not ${check.ip} as the leader expects`)
    }
    fence(this.ctx, what)
    try {
      await this.api.send(new TerminateInstancesCommand({ InstanceIds: [vmId] }), { what: `TerminateInstances ${vmId}`, mutating: true, transientCodes: ['InvalidInstanceID.NotFound'] })
    } catch (err) {
      if (awsCodeOf(err) !== 'IncorrectInstanceState') throw err
    }
    this.ctx.logger.info({ vm: vmId, ip: inst.PrivateIpAddress }, 'instance terminating')
    await waitInstanceState(this.ctx, vmId, ['shutting-down', 'terminated'], this.ctx.timeouts.terminateMs, what)
    this.ctx.recent.delete(vmId)
  }

  async attachVolume (name: string, service: string, vmId: string): Promise<void> {
    await this.vols.attach(name, service, vmId)
  }

  async detachVolume (name: string, vmId: string): Promise<void> {
    await this.vols.detach(name, vmId)
  }

  async volumeAttachment (name: string): Promise<string | null> {
    return await this.vols.attachment(name)
  }

  async volumeZone (name: string): Promise<string | undefined> {
    return await this.vols.zone(name)
  }

  async associateAddress (name: string, vmId: string): Promise<void> {
    await this.addrs.associate(name, vmId)
  }

  async addressAssociation (name: string): Promise<string | null> {
    return await this.addrs.association(name)
  }

  async addressIp (name: string): Promise<string | undefined> {
    return await this.addrs.ip(name)
  }

  /** Node side: only this node's own volumes (vmId is this instance). */
  async mountVolume (name: string, vmId: string): Promise<string | undefined> {
    return await this.mounts.mount(name, vmId)
  }

  async unmountVolume (name: string, _vmId: string): Promise<void> {
    await this.mounts.unmount(name)
  }

  mountedVolumes (_vmId: string): string[] {
    return this.mounts.mounted()
  }

  mountPoint (name: string): string {
    return this.mounts.dir(name)
  }

  /** Releases the SDK client when this provider built it. */
  close (): void {
    if (this.ownsClient) this.api.client.destroy()
  }
}
