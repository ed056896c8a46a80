// The static network (subnets, security groups, images, zones), address pools and tagging.
import {
  Ec2Error, applyFilters, checkIdShape, isoTime, paginate, tagSet, xml, type QueryParams
} from './protocol.js'
import type { ImageSpec, SecurityGroupSpec, SubnetSpec, World } from './types.js'

export interface Taggable { id: string, type: string, tags: Map<string, string> }

const azId = (region: string, az: string, zones: string[]): string => {
  const short = region.split('-').map((p, i) => i === 1 ? p[0] : p).join('')
  return `${short}-az${zones.indexOf(az) + 1}`
}

export class Catalog {
  private readonly subnetTags = new Map<string, Map<string, string>>()
  private readonly groupTags = new Map<string, Map<string, string>>()
  private readonly used = new Set<string>()
  private readonly usedPublic = new Set<string>()

  constructor (private readonly w: World, private readonly defaultPool: (index: number) => string[]) {
    for (const s of w.opts.subnets) this.subnetTags.set(s.subnetId, new Map(Object.entries(s.tags ?? {})))
    for (const g of w.opts.securityGroups) this.groupTags.set(g.groupId, new Map())
  }

  get zones (): string[] { return [...new Set(this.w.opts.subnets.map((s) => s.availabilityZone))] }

  subnet (id: string): SubnetSpec {
    const s = this.w.opts.subnets.find((x) => x.subnetId === id)
    if (s === undefined) throw new Ec2Error('InvalidSubnetID.NotFound', `The subnet ID '${id}' does not exist`)
    return s
  }

  group (id: string, vpcId?: string): SecurityGroupSpec {
    if (!id.startsWith('sg-')) throw new Ec2Error('InvalidGroupId.Malformed', `Invalid id: "${id}" (expecting "sg-...")`)
    const g = this.w.opts.securityGroups.find((x) => x.groupId === id)
    if (g === undefined || (vpcId !== undefined && g.vpcId !== vpcId)) {
      throw new Ec2Error('InvalidGroup.NotFound', `The security group '${id}' does not exist${vpcId === undefined ? '' : ` in VPC '${vpcId}'`}`)
    }
    return g
  }

  defaultGroup (vpcId: string): SecurityGroupSpec | undefined {
    return this.w.opts.securityGroups.find((g) => g.vpcId === vpcId && g.groupName === 'default') ??
      this.w.opts.securityGroups.find((g) => g.vpcId === vpcId)
  }

  image (id: string): ImageSpec {
    checkIdShape(id, 'ami', 'InvalidAMIID.Malformed')
    const images = this.w.opts.images
    if (images === undefined) return { imageId: id, name: `fake-image-${id}` }
    const img = images.find((i) => i.imageId === id)
    if (img === undefined) throw new Ec2Error('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`)
    return img
  }

  pool (s: SubnetSpec): string[] {
    return s.privateIps ?? this.defaultPool(this.w.opts.subnets.indexOf(s))
  }

  /** Takes between `min` and `max` free private IPs in the subnet (or the requested one), as many as are free. */
  allocateIps (s: SubnetSpec, min: number, max: number, wanted?: string): string[] {
    if (wanted !== undefined) {
      if (max !== 1) throw new Ec2Error('InvalidParameterCombination', 'Cannot specify a private IP address when launching more than one instance')
      if (!this.pool(s).includes(wanted)) throw new Ec2Error('InvalidParameterValue', `Address ${wanted} does not fall within the subnet's address range`)
      if (this.used.has(wanted)) throw new Ec2Error('InvalidIPAddress.InUse', `Address ${wanted} is in use.`)
      this.used.add(wanted)
      return [wanted]
    }
    const free = this.pool(s).filter((ip) => !this.used.has(ip)).slice(0, max)
    if (free.length < min) throw new Ec2Error('InsufficientFreeAddressesInSubnet', `There are not enough free addresses in subnet '${s.subnetId}' to satisfy the requested number of instances.`)
    for (const ip of free) this.used.add(ip)
    return free
  }

  releaseIp (ip: string): void { this.used.delete(ip) }

  allocatePublicIp (): string | undefined {
    const ip = this.w.opts.publicIps.find((x) => !this.usedPublic.has(x))
    if (ip !== undefined) this.usedPublic.add(ip)
    return ip
  }

  releasePublicIp (ip: string): void { this.usedPublic.delete(ip) }

  // ---------- tagging across resource types ----------

  private taggables (): Taggable[] {
    return [
      ...this.w.instances.taggables(),
      ...this.w.volumes.taggables(),
      ...this.w.addresses.taggables(),
      ...[...this.subnetTags].map(([id, tags]) => ({ id, type: 'subnet', tags })),
      ...[...this.groupTags].map(([id, tags]) => ({ id, type: 'security-group', tags }))
    ]
  }

  private tagTarget (id: string): Map<string, string> {
    if (id.startsWith('i-')) return this.w.instances.visible(id).tags
    if (id.startsWith('vol-')) return this.w.volumes.get(id).tags
    if (id.startsWith('eipalloc-')) return this.w.addresses.get(id).tags
    if (id.startsWith('subnet-')) return this.subnetTags.get(this.subnet(id).subnetId) ?? new Map()
    if (id.startsWith('sg-')) return this.groupTags.get(this.group(id).groupId) ?? new Map()
    throw new Ec2Error('InvalidID', `The ID '${id}' is not valid`)
  }

  createTags (p: QueryParams): string {
    const targets = p.list('ResourceId').map((id) => this.tagTarget(id))
    if (targets.length === 0) throw new Ec2Error('MissingParameter', 'The request must contain the parameter resourceIdSet')
    const tags = p.tags()
    for (const t of targets) for (const [k, v] of tags) t.set(k, v)
    return xml({ return: true })
  }

  deleteTags (p: QueryParams): string {
    const targets = p.list('ResourceId').map((id) => this.tagTarget(id))
    const tags = p.structs('Tag').map((t) => [t.req('Key'), t.get('Value')] as const)
    for (const t of targets) {
      for (const [k, v] of tags) if (v === undefined || t.get(k) === v) t.delete(k)
    }
    return xml({ return: true })
  }

  describeTags (p: QueryParams): string {
    const entries = this.taggables().flatMap((r) => [...r.tags].map(([key, value]) => ({ resourceId: r.id, resourceType: r.type, key, value })))
    const matched = applyFilters(entries, p.filters(), {
      'resource-id': (e) => e.resourceId,
      'resource-type': (e) => e.resourceType,
      key: (e) => e.key,
      value: (e) => e.value
    }, () => new Map())
    const { page, nextToken } = paginate(matched, p, { min: 5, max: 1000 }, 'tags' + JSON.stringify(p.filters()))
    return xml({ tagSet: page, nextToken })
  }

  // ---------- describe calls ----------

  describeSubnets (p: QueryParams): string {
    const ids = p.list('SubnetId')
    const subnets = ids.length > 0 ? ids.map((id) => this.subnet(id)) : this.w.opts.subnets
    const matched = applyFilters(subnets, p.filters(), {
      'subnet-id': (s) => s.subnetId,
      'vpc-id': (s) => s.vpcId,
      'availability-zone': (s) => s.availabilityZone,
      'availability-zone-id': (s) => azId(this.w.opts.region, s.availabilityZone, this.zones),
      'cidr-block': (s) => s.cidrBlock,
      state: () => 'available',
      'default-for-az': () => false
    }, (s) => this.subnetTags.get(s.subnetId) ?? new Map())
    const { page, nextToken } = paginate(matched, p, { min: 5, max: 1000 }, 'subnets' + JSON.stringify([ids, p.filters()]))
    return xml({
      subnetSet: page.map((s) => ({
        subnetId: s.subnetId,
        subnetArn: `arn:aws:ec2:${this.w.opts.region}:${this.w.opts.accountId}:subnet/${s.subnetId}`,
        state: 'available',
        vpcId: s.vpcId,
        cidrBlock: s.cidrBlock,
        availableIpAddressCount: this.pool(s).filter((ip) => !this.used.has(ip)).length,
        availabilityZone: s.availabilityZone,
        availabilityZoneId: azId(this.w.opts.region, s.availabilityZone, this.zones),
        defaultForAz: false,
        mapPublicIpOnLaunch: false,
        ownerId: this.w.opts.accountId,
        tagSet: tagSet(this.subnetTags.get(s.subnetId) ?? new Map())
      })),
      nextToken
    })
  }

  describeSecurityGroups (p: QueryParams): string {
    const ids = p.list('GroupId')
    const names = p.list('GroupName')
    let groups = ids.length > 0 ? ids.map((id) => this.group(id)) : this.w.opts.securityGroups
    if (names.length > 0) {
      const missing = names.filter((n) => !groups.some((g) => g.groupName === n))
      if (missing.length > 0) throw new Ec2Error('InvalidGroup.NotFound', `The security group '${missing.join(', ')}' does not exist`)
      groups = groups.filter((g) => names.includes(g.groupName))
    }
    const matched = applyFilters(groups, p.filters(), {
      'group-id': (g) => g.groupId,
      'group-name': (g) => g.groupName,
      'vpc-id': (g) => g.vpcId,
      description: (g) => g.description ?? ''
    }, (g) => this.groupTags.get(g.groupId) ?? new Map())
    return xml({
      securityGroupInfo: matched.map((g) => ({
        ownerId: this.w.opts.accountId,
        groupId: g.groupId,
        groupName: g.groupName,
        groupDescription: g.description ?? g.groupName,
        vpcId: g.vpcId,
        ipPermissions: [],
        ipPermissionsEgress: [],
        tagSet: tagSet(this.groupTags.get(g.groupId) ?? new Map())
      }))
    })
  }

  describeImages (p: QueryParams): string {
    const ids = p.list('ImageId')
    const images = ids.length > 0 ? ids.map((id) => this.image(id)) : (this.w.opts.images ?? [])
    const matched = applyFilters(images, p.filters(), {
      'image-id': (i) => i.imageId,
      name: (i) => i.name,
      state: () => 'available',
      architecture: (i) => i.architecture ?? 'x86_64'
    }, () => new Map())
    return xml({
      imagesSet: matched.map((i) => ({
        imageId: i.imageId,
        imageLocation: `${this.w.opts.accountId}/${i.name}`,
        imageState: 'available',
        imageOwnerId: this.w.opts.accountId,
        creationDate: isoTime(Date.parse('2024-01-01T00:00:00Z')),
        isPublic: false,
        architecture: i.architecture ?? 'x86_64',
        imageType: 'machine',
        name: i.name,
        rootDeviceType: 'ebs',
        rootDeviceName: '/dev/xvda',
        blockDeviceMapping: [],
        virtualizationType: 'hvm',
        hypervisor: 'xen',
        enaSupport: true
      }))
    })
  }

  describeAvailabilityZones (p: QueryParams): string {
    const names = p.list('ZoneName')
    const unknown = names.filter((n) => !this.zones.includes(n))
    if (unknown.length > 0) throw new Ec2Error('InvalidParameterValue', `The zone '${unknown.join(', ')}' does not exist.`)
    const zones = names.length > 0 ? names : this.zones
    const region = this.w.opts.region
    const matched = applyFilters(zones, p.filters(), {
      'zone-name': (z) => z,
      'zone-id': (z) => azId(region, z, this.zones),
      'region-name': () => region,
      state: () => 'available'
    }, () => new Map())
    return xml({
      availabilityZoneInfo: matched.map((z) => ({
        zoneName: z,
        zoneState: 'available',
        regionName: region,
        zoneId: azId(region, z, this.zones),
        groupName: region,
        networkBorderGroup: region,
        zoneType: 'availability-zone',
        optInStatus: 'opt-in-not-required',
        messageSet: []
      }))
    })
  }

  azIdOf (az: string): string { return azId(this.w.opts.region, az, this.zones) }
}
