// Elastic IPs: AllocateAddress, DescribeAddresses, AssociateAddress (reassociation rules), Disassociate, Release.
import { Ec2Error, applyFilters, invalidValue, tagSet, xml, type QueryParams, type XmlRecord } from './protocol.js'
import type { Taggable } from './catalog.js'
import type { Instance } from './instances.js'
import type { AddressInfo, World } from './types.js'

interface Address {
  allocationId: string
  publicIp: string
  tags: Map<string, string>
  associationId?: string
  instanceId?: string
  privateIp?: string
  eniId?: string
}

export class AddressStore {
  private readonly all = new Map<string, Address>()

  constructor (private readonly w: World) {}

  get (allocationId: string): Address {
    const a = this.all.get(allocationId)
    if (a === undefined) throw new Ec2Error('InvalidAllocationID.NotFound', `The allocation ID '${allocationId}' does not exist`)
    return a
  }

  info (a: Address): AddressInfo {
    return {
      allocationId: a.allocationId,
      publicIp: a.publicIp,
      tags: Object.fromEntries(a.tags),
      ...(a.associationId === undefined ? {} : { associationId: a.associationId, instanceId: a.instanceId, privateIp: a.privateIp })
    }
  }

  list (): AddressInfo[] { return [...this.all.values()].map((a) => this.info(a)) }

  taggables (): Taggable[] { return [...this.all.values()].map((a) => ({ id: a.allocationId, type: 'elastic-ip', tags: a.tags })) }

  publicIpOf (instanceId: string): string | undefined {
    return [...this.all.values()].find((a) => a.instanceId === instanceId)?.publicIp
  }

  private item (a: Address): XmlRecord {
    return {
      publicIp: a.publicIp,
      allocationId: a.allocationId,
      domain: 'vpc',
      instanceId: a.instanceId,
      associationId: a.associationId,
      networkInterfaceId: a.eniId,
      networkInterfaceOwnerId: a.eniId === undefined ? undefined : this.w.opts.accountId,
      privateIpAddress: a.privateIp,
      tagSet: tagSet(a.tags),
      publicIpv4Pool: 'amazon',
      networkBorderGroup: this.w.opts.region
    }
  }

  allocate (p: QueryParams): string {
    const domain = p.get('Domain') ?? 'vpc'
    if (domain !== 'vpc') throw invalidValue(`Value (${domain}) for parameter domain is invalid: only vpc addresses exist now`)
    if (this.all.size >= this.w.opts.maxAddresses) throw new Ec2Error('AddressLimitExceeded', 'The maximum number of addresses has been reached.')
    const publicIp = this.w.catalog.allocatePublicIp()
    if (publicIp === undefined) throw new Ec2Error('InsufficientAddressCapacity', 'There are not enough available addresses to satisfy your minimum request.', 500)
    const a: Address = { allocationId: this.w.ids.next('eipalloc'), publicIp, tags: new Map(p.tagSpecs(['elastic-ip']).get('elastic-ip') ?? []) }
    this.all.set(a.allocationId, a)
    return xml({ publicIp, domain: 'vpc', allocationId: a.allocationId, publicIpv4Pool: 'amazon', networkBorderGroup: this.w.opts.region })
  }

  describe (p: QueryParams): string {
    const ids = p.list('AllocationId')
    const ips = p.list('PublicIp')
    for (const id of ids) this.get(id)
    for (const ip of ips) {
      if (![...this.all.values()].some((a) => a.publicIp === ip)) throw new Ec2Error('InvalidAddress.NotFound', `Address '${ip}' not found.`)
    }
    const chosen = [...this.all.values()].filter((a) =>
      (ids.length === 0 && ips.length === 0) || ids.includes(a.allocationId) || ips.includes(a.publicIp))
    const matched = applyFilters(chosen, p.filters(), {
      'allocation-id': (a) => a.allocationId,
      'association-id': (a) => a.associationId,
      'instance-id': (a) => a.instanceId,
      'network-interface-id': (a) => a.eniId,
      'private-ip-address': (a) => a.privateIp,
      'public-ip': (a) => a.publicIp,
      domain: () => 'vpc'
    }, (a) => a.tags)
    return xml({ addressesSet: matched.map((a) => this.item(a)) })
  }

  private byPublicIp (ip: string): Address {
    const a = [...this.all.values()].find((x) => x.publicIp === ip)
    if (a === undefined) throw new Ec2Error('InvalidAddress.NotFound', `Address '${ip}' not found.`)
    return a
  }

  associate (p: QueryParams): string {
    const allocationId = p.get('AllocationId')
    const publicIp = p.get('PublicIp')
    if (allocationId === undefined && publicIp === undefined) throw new Ec2Error('MissingParameter', 'Either public IP or allocation id must be specified')
    const a = allocationId !== undefined ? this.get(allocationId) : this.byPublicIp(publicIp ?? '')
    const instanceId = p.get('InstanceId')
    const eniId = p.get('NetworkInterfaceId')
    let inst: Instance | undefined
    if (instanceId !== undefined) inst = this.w.instances.visible(instanceId)
    else if (eniId !== undefined) inst = [...this.w.instances.all.values()].find((i) => i.eniId === eniId && i.state !== 'terminated')
    else throw new Ec2Error('MissingParameter', 'Either instance ID or network interface id must be specified')
    if (inst === undefined) throw new Ec2Error('InvalidNetworkInterfaceID.NotFound', `The networkInterface ID '${eniId ?? ''}' does not exist`)
    if (inst.state !== 'running') throw new Ec2Error('IncorrectInstanceState', `The instance '${inst.id}' is not in a valid state for this operation.`)
    if (a.instanceId === inst.id && a.associationId !== undefined) return xml({ return: true, associationId: a.associationId })
    if (a.associationId !== undefined && p.bool('AllowReassociation') !== true) {
      throw new Ec2Error('Resource.AlreadyAssociated', `resource ${a.allocationId} is already associated with associate-id ${a.associationId}`)
    }
    // The instance's primary address can carry one Elastic IP: a previous one is replaced.
    for (const other of this.all.values()) if (other !== a && other.instanceId === inst.id) this.clear(other)
    Object.assign(a, { associationId: this.w.ids.next('eipassoc'), instanceId: inst.id, privateIp: inst.privateIp, eniId: inst.eniId })
    return xml({ return: true, associationId: a.associationId })
  }

  private clear (a: Address): void {
    delete a.associationId
    delete a.instanceId
    delete a.privateIp
    delete a.eniId
  }

  disassociate (p: QueryParams): string {
    const associationId = p.get('AssociationId')
    const publicIp = p.get('PublicIp')
    if (associationId === undefined && publicIp === undefined) throw new Ec2Error('MissingParameter', 'Either public IP or association id must be specified')
    const a = associationId !== undefined
      ? [...this.all.values()].find((x) => x.associationId === associationId)
      : this.byPublicIp(publicIp ?? '')
    if (a === undefined) throw new Ec2Error('InvalidAssociationID.NotFound', `The association ID '${associationId ?? ''}' does not exist`)
    this.clear(a)
    return xml({ return: true })
  }

  release (p: QueryParams): string {
    const allocationId = p.get('AllocationId')
    const a = allocationId !== undefined ? this.get(allocationId) : this.byPublicIp(p.req('PublicIp'))
    if (a.associationId !== undefined) throw new Ec2Error('InvalidIPAddress.InUse', `The address with allocation id [${a.allocationId}] is in use.`)
    this.all.delete(a.allocationId)
    this.w.catalog.releasePublicIp(a.publicIp)
    return xml({ return: true })
  }

  onInstanceTerminated (instanceId: string): void {
    for (const a of this.all.values()) if (a.instanceId === instanceId) this.clear(a)
  }
}
