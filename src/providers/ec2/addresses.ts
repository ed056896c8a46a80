// Elastic IPs that follow a service (the balancer). Found by tag, allocated (tagged) on first use,
// associated with reassociation allowed only when the address is moving from another VM — so an
// association made by someone else is never silently taken over on a first association — and
// confirmed by reading it back. Moving an address drops the connections open through it.
import { AllocateAddressCommand, AssociateAddressCommand, DescribeAddressesCommand, type Address } from '@aws-sdk/client-ec2'
import { Ec2ProviderError } from './errors.js'
import { TAG, clusterFilter, describeInstance, fence, tagList, waitInstanceState, type Ctx } from './instances.js'

export class Addresses {
  constructor (private readonly ctx: Ctx) {}

  /** The cluster's address `name` (by tags). Several (a lost AllocateAddress answer): the associated one, else the first by id. */
  async find (name: string): Promise<Address | undefined> {
    const out = await this.ctx.api.send(new DescribeAddressesCommand({
      Filters: [clusterFilter(this.ctx), { Name: `tag:${TAG.address}`, Values: [name] }]
    }), { what: `DescribeAddresses for address ${name}` })
    const all = out.Addresses ?? []
    if (all.length > 1) this.ctx.logger.error({ address: name, ids: all.map(a => a.AllocationId) }, 'several Elastic IPs carry this name; using the associated or first one — release the others')
    return all.sort((a, b) => (Number(b.AssociationId !== undefined) - Number(a.AssociationId !== undefined)) || (a.AllocationId ?? '').localeCompare(b.AllocationId ?? ''))[0]
  }

  async association (name: string): Promise<string | null> {
    return (await this.find(name))?.InstanceId ?? null
  }

  async ip (name: string): Promise<string | undefined> {
    return (await this.find(name))?.PublicIp
  }

  async associate (name: string, vmId: string): Promise<void> {
    const what = `associate address ${name} with ${vmId}`
    let inst = await describeInstance(this.ctx, vmId, what)
    if (inst === undefined) throw new Ec2ProviderError('EC2_BAD_REQUEST', `${what}: no instance ${vmId}; associate it with a running VM`)
    if (inst.State?.Name === 'pending') inst = await waitInstanceState(this.ctx, vmId, ['running'], this.ctx.timeouts.runningMs, what)
    if (inst.State?.Name !== 'running') throw new Ec2ProviderError('EC2_BAD_REQUEST', `${what}: ${vmId} is ${inst.State?.Name ?? 'gone'}; associate it with a running VM`)
    const addr = await this.find(name) ?? await this.allocate(name)
    const id = addr.AllocationId ?? ''
    if (addr.InstanceId !== vmId) {
      const moving = addr.AssociationId !== undefined
      fence(this.ctx, what)
      await this.ctx.api.send(new AssociateAddressCommand({
        AllocationId: id,
        InstanceId: vmId,
        // Only when moving it off another VM; otherwise EC2 refuses a takeover we did not mean.
        ...(moving ? { AllowReassociation: true } : {})
      }), { what: `AssociateAddress ${name} (${addr.PublicIp ?? id}) with ${vmId}`, mutating: true })
      this.ctx.logger.info({ address: name, ip: addr.PublicIp, vm: vmId, from: addr.InstanceId }, moving ? 'address moved' : 'address associated')
    }
    // Confirmed by reading it back: the executor records what the cloud says.
    let seen: string | undefined
    await this.ctx.api.waitFor(async () => {
      const out = await this.ctx.api.send(new DescribeAddressesCommand({ AllocationIds: [id] }), { what: `DescribeAddresses ${name} (${id})`, transientCodes: ['InvalidAllocationID.NotFound'] })
      seen = out.Addresses?.[0]?.InstanceId
      return seen === vmId ? true : undefined
    }, {
      timeoutMs: this.ctx.timeouts.associateMs,
      pollMs: this.ctx.pollMs,
      onTimeout: () => new Ec2ProviderError('EC2_TIMEOUT', `${what}: address ${name} (${addr.PublicIp ?? id}) is associated with ${seen ?? 'nothing'} after ${Math.round(this.ctx.timeouts.associateMs / 1000)} s; retried later`)
    })
  }

  private async allocate (name: string): Promise<Address> {
    const tags = { ...this.ctx.extraTags, [TAG.cluster]: this.ctx.cluster, [TAG.address]: name, [TAG.name]: `wakame-${this.ctx.cluster}-${name}` }
    fence(this.ctx, `allocate address ${name}`)
    // AllocateAddress takes no ClientToken: a lost answer leaves a tagged address that `find` picks up.
    // So it is sent once: after a failure, the address it may have made is looked for first.
    let out
    try {
      out = await this.ctx.api.send(new AllocateAddressCommand({
        Domain: 'vpc',
        TagSpecifications: [{ ResourceType: 'elastic-ip', Tags: tagList(tags) }]
      }), { what: `AllocateAddress ${name}`, mutating: true, maxAttempts: 1 })
    } catch (err) {
      const made = await this.find(name).catch(() => undefined)
      if (made !== undefined) return made
      throw err
    }
    this.ctx.logger.info({ address: name, ip: out.PublicIp, allocation: out.AllocationId }, 'address allocated')
    return { AllocationId: out.AllocationId, PublicIp: out.PublicIp }
  }
}
