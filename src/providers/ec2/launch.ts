// Launching a VM for a decision, so that one decision never makes two VMs:
// - an instance already tagged with the decision (a rerun after a lost answer, a new leader) is
//   adopted before anything is launched;
// - RunInstances carries a ClientToken: the decision's token in the decision's first subnet, and in
//   each other subnet a token derived from it and the subnet, so a retry of the whole launch
//   repeats the same (subnet, token) pairs and EC2 answers the instance it already made;
// - InsufficientInstanceCapacity moves on to the next allowed subnet (zone); the subnets already
//   found full are remembered for retries by this process;
// - IdempotentParameterMismatch (the token was used with other parameters: another leader with
//   another image or peers, or a cluster of the same name earlier) adopts the live instance the
//   token made if it is ours, else launches with a token derived from the new parameters.
import { createHash } from 'node:crypto'
import { DescribeSubnetsCommand, RunInstancesCommand, type Instance, type RunInstancesCommandInput } from '@aws-sdk/client-ec2'
import type { LaunchRequest, VmInfo } from '../provider.js'
import { Ec2ProviderError, awsCodeOf, isCapacity } from './errors.js'
import type { Identity } from './identity.js'
import { LIVE_STATES, TAG, clusterFilter, describeInstances, fence, tagList, tagsOf, vmInfoOf, type Ctx } from './instances.js'

/** EC2's ClientToken limit. */
export const MAX_TOKEN_LENGTH = 64

/** A token derived from `base` and `salt`: deterministic, at most 64 characters. */
export function deriveToken (base: string, salt: string): string {
  const h = createHash('sha256').update(base).update('\0').update(salt).digest('hex').slice(0, 16)
  return `${base.slice(0, MAX_TOKEN_LENGTH - h.length - 1)}-${h}`
}

/**
 * The order in which a decision tries the subnets: rotated by a hash of the decision id, so the
 * VMs of successive decisions spread over the subnets (zones), and every retry of one decision
 * uses the same order. The first subnet of this order gets the decision's own token.
 */
export function launchOrder (decisionId: string, subnetIds: string[]): string[] {
  if (subnetIds.length <= 1) return [...subnetIds]
  const start = createHash('sha256').update(decisionId).digest().readUInt32BE(0) % subnetIds.length
  return [...subnetIds.slice(start), ...subnetIds.slice(0, start)]
}

export interface LaunchSettings {
  /** @default the node's own AMI (every VM from the same image); with a launch template, the template's */
  imageId?: string
  launchTemplate?: { id?: string, name?: string, version?: string }
  /** Required unless a launch template sets it. */
  instanceType?: string
  /** Tried in launchOrder. @default [the node's own subnet] */
  subnetIds?: string[]
  /** @default the node's own groups */
  securityGroupIds?: string[]
  /** @default the node's own instance profile */
  instanceProfileArn?: string
  /** User-data for a new VM (see userdata.ts, `launchUserData`). */
  userData: (vm: { decisionId: string, bootstrap: string[], bootstrapExpect: number }) => string
}

export class Launcher {
  /** Subnet id → zone (the node's own is known; others are read once with DescribeSubnets). */
  private readonly zones = new Map<string, string>()
  /** Per decision token: subnets found without capacity, and the request sent per subnet token. */
  private readonly progress = new Map<string, { full: Set<string>, inputs: Map<string, RunInstancesCommandInput> }>()
  /** Tokens launched in the last minute (the spend guard). */
  private readonly launchedAt = new Map<string, number>()
  private readonly subnetIds: string[]

  constructor (private readonly ctx: Ctx, private readonly self: Identity, private readonly s: LaunchSettings, private readonly maxPerMinute: number) {
    this.subnetIds = s.subnetIds !== undefined && s.subnetIds.length > 0 ? [...s.subnetIds] : [self.subnetId]
    this.zones.set(self.subnetId, self.zone)
  }

  async launch (req: LaunchRequest): Promise<VmInfo> {
    const adopted = await this.findByDecision(req.decisionId)
    if (adopted !== undefined) return adopted
    this.guard(req.token)
    const order = launchOrder(req.decisionId, this.subnetIds)
    const allowed = await this.allowed(order, req.zones)
    const p = this.progress.get(req.token) ?? { full: new Set<string>(), inputs: new Map() }
    this.progress.set(req.token, p)
    for (const subnetId of allowed) {
      if (p.full.has(subnetId)) continue
      const token = subnetId === order[0] ? req.token : deriveToken(req.token, `subnet:${subnetId}`)
      // The first request built for a token is re-sent as is on retries (same peers, same bytes).
      let input = p.inputs.get(token)
      if (input === undefined) {
        input = this.input(req, subnetId, token)
        p.inputs.set(token, input)
      }
      try {
        const vm = await this.run(req, input)
        this.progress.delete(req.token)
        return vm
      } catch (err) {
        if (!isCapacity(err)) throw err
        p.full.add(subnetId)
        this.ctx.logger.warn({ launch: req.decisionId, subnet: subnetId, zone: this.zones.get(subnetId) }, 'no capacity in this subnet; trying the next one')
      }
    }
    this.progress.delete(req.token)
    throw new Ec2ProviderError('EC2_NO_CAPACITY', `launch ${req.decisionId}: no ${this.typeOf(req) ?? 'instance'} capacity in any allowed subnet (${allowed.join(', ')}): add subnets in other zones to ec2.subnets, or choose another instance type`)
  }

  private typeOf (req: LaunchRequest): string | undefined {
    return req.instanceType ?? this.s.instanceType
  }

  /** The spend guard: at most `maxPerMinute` distinct decisions launched per minute (retries are free). */
  private guard (token: string): void {
    const now = this.ctx.api.clock.now()
    for (const [t, at] of this.launchedAt) if (now - at >= 60_000) this.launchedAt.delete(t)
    if (this.launchedAt.has(token)) return
    if (this.launchedAt.size >= this.maxPerMinute) {
      throw new Ec2ProviderError('EC2_LAUNCH_RATE', `launch rate limit: ${this.launchedAt.size} VMs launched in the last minute (max_launches_per_minute ${this.maxPerMinute}); retried later`)
    }
    this.launchedAt.set(token, now)
  }

  private async allowed (order: string[], zones: string[] | undefined): Promise<string[]> {
    if (zones === undefined) return order
    const unknown = order.filter(s => !this.zones.has(s))
    if (unknown.length > 0) {
      const out = await this.ctx.api.send(new DescribeSubnetsCommand({ SubnetIds: unknown }), { what: 'DescribeSubnets (zones of ec2.subnets)' })
      for (const sn of out.Subnets ?? []) if (sn.SubnetId !== undefined && sn.AvailabilityZone !== undefined) this.zones.set(sn.SubnetId, sn.AvailabilityZone)
    }
    const allowed = order.filter(s => zones.includes(this.zones.get(s) ?? ''))
    if (allowed.length === 0) {
      throw new Ec2ProviderError('EC2_NO_SUBNET', `no subnet in ${zones.join(', ')} among ec2.subnets (${order.map(s => `${s} in ${this.zones.get(s) ?? '?'}`).join(', ')}): add one there (a volume can only move within its zone)`)
    }
    return allowed
  }

  private input (req: LaunchRequest, subnetId: string, token: string): RunInstancesCommandInput {
    const s = this.s
    const tags = { ...this.ctx.extraTags, [TAG.cluster]: this.ctx.cluster, [TAG.launch]: req.decisionId, [TAG.name]: `wakame-${this.ctx.cluster}` }
    const imageId = s.imageId ?? (s.launchTemplate === undefined ? this.self.amiId : undefined)
    const instanceType = this.typeOf(req)
    if (instanceType === undefined && s.launchTemplate === undefined) {
      throw new Ec2ProviderError('EC2_BAD_REQUEST', `launch ${req.decisionId}: no instance type: set ec2.instance_type (or a launch template that sets one)`)
    }
    const groups = s.securityGroupIds ?? this.self.securityGroupIds
    const profile = s.instanceProfileArn ?? this.self.instanceProfileArn
    const lt = s.launchTemplate
    const userData = s.userData({ decisionId: req.decisionId, bootstrap: req.bootstrap, bootstrapExpect: req.bootstrapExpect ?? 0 })
    return {
      ...(imageId !== undefined ? { ImageId: imageId } : {}),
      ...(instanceType !== undefined ? { InstanceType: instanceType as RunInstancesCommandInput['InstanceType'] } : {}),
      ...(lt !== undefined ? { LaunchTemplate: { ...(lt.id !== undefined ? { LaunchTemplateId: lt.id } : { LaunchTemplateName: lt.name }), Version: lt.version ?? '$Default' } } : {}),
      MinCount: 1,
      MaxCount: 1,
      SubnetId: subnetId,
      ...(groups.length > 0 ? { SecurityGroupIds: groups } : {}),
      ...(profile !== undefined ? { IamInstanceProfile: { Arn: profile } } : {}),
      // IMDSv2 only: a token is required, so SSRF through a service cannot read the role's credentials.
      MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
      UserData: Buffer.from(userData, 'utf8').toString('base64'),
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tagList(tags) },
        { ResourceType: 'volume', Tags: tagList({ ...this.ctx.extraTags, [TAG.cluster]: this.ctx.cluster, [TAG.name]: `wakame-${this.ctx.cluster}` }) }
      ],
      ClientToken: token
    }
  }

  private async run (req: LaunchRequest, input: RunInstancesCommandInput, derived = false): Promise<VmInfo> {
    fence(this.ctx, `launch ${req.decisionId}`)
    let inst: Instance | undefined
    try {
      const out = await this.ctx.api.send(new RunInstancesCommand(input), { what: `RunInstances for launch ${req.decisionId} in ${input.SubnetId ?? '?'}`, mutating: true })
      inst = out.Instances?.[0]
    } catch (err) {
      if (awsCodeOf(err) !== 'IdempotentParameterMismatch') throw err
      if (derived) throw new Ec2ProviderError('EC2_BAD_REQUEST', `launch ${req.decisionId}: the derived ClientToken ${input.ClientToken ?? ''} was also used with other parameters; give up`, { cause: err })
      return await this.onMismatch(req, input)
    }
    if (inst?.InstanceId === undefined) throw new Ec2ProviderError('EC2_FAILED', `RunInstances for launch ${req.decisionId} answered no instance`)
    // Recorded at once: from now on NotFound for this id means "not visible yet" (case 05).
    if (!this.ctx.recent.has(inst.InstanceId)) this.ctx.recent.set(inst.InstanceId, this.ctx.api.clock.now())
    this.ctx.logger.info({ launch: req.decisionId, instance: inst.InstanceId, ip: inst.PrivateIpAddress, subnet: input.SubnetId, token: input.ClientToken }, 'instance launched')
    return vmInfoOf(inst, req.decisionId)
  }

  /** The token was used with other parameters: adopt what it made if that is ours and alive, else launch anew. */
  private async onMismatch (req: LaunchRequest, input: RunInstancesCommandInput): Promise<VmInfo> {
    const token = input.ClientToken ?? ''
    const lookup = async (): Promise<Instance[]> =>
      await describeInstances(this.ctx, [{ Name: 'client-token', Values: [token] }], `DescribeInstances for ClientToken ${token}`)
    const deadline = this.ctx.api.clock.now() + this.ctx.timeouts.mismatchLookupMs
    let made = await lookup()
    // EC2 knows the token, so an instance was made with it; it may not be visible yet (case 05).
    while (made.length === 0 && this.ctx.api.clock.now() < deadline) {
      await this.ctx.api.clock.sleep(this.ctx.pollMs)
      made = await lookup()
    }
    const ours = made.find(i => tagsOf(i.Tags)[TAG.cluster] === this.ctx.cluster && ['pending', 'running'].includes(i.State?.Name ?? ''))
    if (ours !== undefined) {
      this.ctx.logger.warn({ launch: req.decisionId, instance: ours.InstanceId, token }, 'launch request changed since this token was used; keeping the instance it made')
      return vmInfoOf(ours, tagsOf(ours.Tags)[TAG.launch] ?? req.decisionId)
    }
    const { ClientToken: _unused, ...params } = input
    const fresh = deriveToken(token, `params:${fingerprint(params)}`)
    this.ctx.logger.warn({ launch: req.decisionId, token, fresh, found: made.map(i => `${i.InstanceId ?? '?'} ${i.State?.Name ?? '?'}`) }, 'ClientToken already used with other parameters and nothing of ours alive made by it; launching with a token derived from the new parameters')
    return await this.run(req, { ...input, ClientToken: fresh }, true)
  }

  /** The live instance already launched for this decision (tagged with it), if any is visible. */
  private async findByDecision (decisionId: string): Promise<VmInfo | undefined> {
    const found = await describeInstances(this.ctx, [clusterFilter(this.ctx), { Name: `tag:${TAG.launch}`, Values: [decisionId] }, LIVE_STATES], `DescribeInstances for launch ${decisionId}`)
    if (found.length > 1) this.ctx.logger.error({ launch: decisionId, instances: found.map(i => i.InstanceId) }, 'more than one instance for one launch decision; adopting the oldest, terminate the others')
    const first = found.sort((a, b) => (a.LaunchTime?.getTime() ?? 0) - (b.LaunchTime?.getTime() ?? 0))[0]
    if (first === undefined) return undefined
    this.ctx.logger.info({ launch: decisionId, instance: first.InstanceId }, 'adopting the instance already launched for this decision')
    return vmInfoOf(first, decisionId)
  }
}

/** A canonical hash of a request's parameters (sorted keys), for tokens derived from them. */
export function fingerprint (v: unknown): string {
  const canon = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(canon)
    if (x !== null && typeof x === 'object') return Object.fromEntries(Object.keys(x).sort().map(k => [k, canon((x as Record<string, unknown>)[k])]))
    return x
  }
  return createHash('sha256').update(JSON.stringify(canon(v))).digest('hex').slice(0, 32)
}
