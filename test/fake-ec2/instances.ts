// Instances: RunInstances (ClientToken idempotency, eventual consistency), DescribeInstances, TerminateInstances.
import { startImds, type ImdsServer } from './imds.js'
import { instanceItem, reservationXml, stateXml } from './instance-xml.js'
import {
  Ec2Error, applyFilters, checkIdShape, invalidValue, notExist, paginate, xml, type QueryParams
} from './protocol.js'
import type { Taggable } from './catalog.js'
import type { InstanceInfo, InstanceStateName, MaintenanceEvent, RunningInstanceSpec, SubnetSpec, World } from './types.js'

export interface Instance {
  id: string
  reservationId: string
  imageId: string
  instanceType: string
  state: InstanceStateName
  hypervisor: 'nitro' | 'xen'
  subnet: SubnetSpec
  groupIds: string[]
  profileArn?: string
  httpTokens: 'required' | 'optional'
  metadataTags: boolean
  userData?: Buffer
  tags: Map<string, string>
  launchTime: number
  clientToken?: string
  keyName?: string
  launchIndex: number
  privateIp: string
  ephemeralPublicIp?: string
  mac: string
  eniId: string
  eniAttachmentId: string
  devRoot: string
  visibleAt: number
  terminatedAt?: number
  booted: boolean
  terminateHooked?: boolean
  reason: string
  stateReason?: { code: string, message: string }
  accessKeyId?: string
  imds?: ImdsServer
  imdsReady: Promise<void>
  spotAction?: { action: string, time: string }
  maintenance: MaintenanceEvent[]
}

interface TokenRecord { fingerprint: string, reservationId: string, instanceIds: string[] }

const PROFILE_ARN = /^arn:aws[\w-]*:iam::\d{12}:instance-profile\/[\w+=,.@/-]+$/

export class InstanceStore {
  readonly all = new Map<string, Instance>()
  private readonly tokens = new Map<string, TokenRecord>()
  private readonly accessKeys = new Map<string, string>()

  constructor (private readonly w: World) {}

  /** Known and not yet forgotten (terminated instances stay visible for a while), visible or not. */
  get (id: string): Instance | undefined {
    const inst = this.all.get(id)
    if (inst?.terminatedAt !== undefined && this.w.clock.now() - inst.terminatedAt > this.w.opts.terminatedVisibleMs) return undefined
    return inst
  }

  isVisible (id: string): boolean {
    const inst = this.get(id)
    return inst !== undefined && this.w.clock.now() >= inst.visibleAt
  }

  /** The instance as API calls see it: NotFound while not yet visible (eventual consistency). */
  visible (id: string): Instance {
    checkIdShape(id, 'i', 'InvalidInstanceID.Malformed')
    const inst = this.get(id)
    if (inst === undefined || !this.isVisible(id)) throw notExist('instance', 'InvalidInstanceID.NotFound', [id])
    return inst
  }

  callerOf (accessKeyId: string | undefined): string | undefined {
    return accessKeyId === undefined ? undefined : this.accessKeys.get(accessKeyId)
  }

  publicIpOf (inst: Instance): string | undefined {
    if (inst.state === 'terminated') return undefined
    return this.w.addresses.publicIpOf(inst.id) ?? inst.ephemeralPublicIp
  }

  info (inst: Instance): InstanceInfo {
    const publicIp = this.publicIpOf(inst)
    return {
      instanceId: inst.id,
      reservationId: inst.reservationId,
      imageId: inst.imageId,
      instanceType: inst.instanceType,
      state: inst.state,
      hypervisor: inst.hypervisor,
      subnetId: inst.subnet.subnetId,
      vpcId: inst.subnet.vpcId,
      availabilityZone: inst.subnet.availabilityZone,
      privateIp: inst.privateIp,
      ...(publicIp === undefined ? {} : { publicIp }),
      macAddress: inst.mac,
      networkInterfaceId: inst.eniId,
      securityGroupIds: [...inst.groupIds],
      ...(inst.profileArn === undefined ? {} : { iamInstanceProfileArn: inst.profileArn }),
      httpTokens: inst.httpTokens,
      ...(inst.userData === undefined ? {} : { userData: inst.userData.toString('utf8') }),
      tags: Object.fromEntries(inst.tags),
      launchTime: new Date(inst.launchTime),
      ...(inst.clientToken === undefined ? {} : { clientToken: inst.clientToken }),
      devRoot: inst.devRoot,
      imdsEndpoint: inst.imds?.endpoint ?? '',
      ...(inst.accessKeyId === undefined ? {} : { accessKeyId: inst.accessKeyId })
    }
  }

  taggables (): Taggable[] {
    return [...this.all.values()].filter((i) => this.isVisible(i.id)).map((i) => ({ id: i.id, type: 'instance', tags: i.tags }))
  }

  private create (o: Omit<Instance, 'hypervisor' | 'mac' | 'eniId' | 'eniAttachmentId' | 'devRoot' | 'imdsReady' | 'maintenance' | 'reason' | 'booted' | 'launchTime'>, volumeTags: Array<[string, string]>): Instance {
    const inst: Instance = {
      ...o,
      hypervisor: this.w.opts.isXen(o.instanceType) ? 'xen' : 'nitro',
      mac: this.w.ids.mac(),
      eniId: this.w.ids.next('eni'),
      eniAttachmentId: this.w.ids.next('eni-attach'),
      devRoot: this.w.opts.devRootFor(o.id),
      launchTime: this.w.clock.now(),
      booted: false,
      reason: '',
      maintenance: [],
      imdsReady: Promise.resolve()
    }
    if (inst.profileArn !== undefined) {
      inst.accessKeyId = `ASIA${inst.id.slice(2).toUpperCase().padStart(16, '0').slice(-16)}`
      this.accessKeys.set(inst.accessKeyId, inst.id)
    }
    this.all.set(inst.id, inst)
    this.w.volumes.createRoot(inst, volumeTags)
    inst.imdsReady = startImds(this.w, inst).then((server) => {
      inst.imds = server
      if (inst.state === 'terminated') void server.close()
    })
    this.w.track(`IMDS of ${inst.id}`, inst.imdsReady)
    return inst
  }

  private boot (inst: Instance): void {
    if (inst.state === 'pending') inst.state = 'running'
    if (inst.state !== 'running' || inst.booted) return
    inst.booted = true
    const onBoot = this.w.opts.onBoot
    if (onBoot !== undefined) this.w.track(`onBoot(${inst.id})`, inst.imdsReady.then(() => onBoot(this.info(inst))))
  }

  private tokenRecord (token: string): TokenRecord | undefined {
    const rec = this.tokens.get(token)
    if (rec === undefined) return undefined
    const ends = rec.instanceIds.map((id) => this.all.get(id)?.terminatedAt)
    if (ends.every((t) => t !== undefined && this.w.clock.now() - t > this.w.opts.clientTokenRetentionMs)) {
      this.tokens.delete(token)
      return undefined
    }
    return rec
  }

  async run (p: QueryParams): Promise<string> {
    const imageId = p.req('ImageId')
    const min = p.int('MinCount')
    const max = p.int('MaxCount')
    if (min === undefined) throw new Ec2Error('MissingParameter', 'The request must contain the parameter MinCount')
    if (max === undefined) throw new Ec2Error('MissingParameter', 'The request must contain the parameter MaxCount')
    if (min < 1 || max < min) throw invalidValue(`Invalid MinCount/MaxCount: ${min}/${max}`)
    const token = p.get('ClientToken')
    if (token !== undefined) {
      const prior = this.tokenRecord(token)
      if (prior !== undefined) {
        if (prior.fingerprint !== p.fingerprint(['ClientToken'])) {
          throw new Ec2Error('IdempotentParameterMismatch', 'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).')
        }
        const insts = prior.instanceIds.map((id) => this.all.get(id)).filter((i): i is Instance => i !== undefined)
        await Promise.all(insts.map(async (i) => await i.imdsReady))
        return reservationXml(this.w, prior.reservationId, insts)
      }
    }
    const image = this.w.catalog.image(imageId)
    const instanceType = p.get('InstanceType') ?? 'm1.small'
    const nis = p.structs('NetworkInterface')
    if (nis.length > 1) throw invalidValue('fake-ec2 supports a single network interface per instance')
    const ni = nis[0]
    if (ni !== undefined && p.get('SubnetId') !== undefined) {
      throw new Ec2Error('InvalidParameterCombination', 'Network interfaces and an instance-level subnet ID may not be specified on the same request')
    }
    if (ni !== undefined && (p.list('SecurityGroupId').length > 0 || p.list('SecurityGroup').length > 0)) {
      throw new Ec2Error('InvalidParameterCombination', 'Network interfaces and an instance-level security groups may not be specified on the same request')
    }
    const wantedAz = p.get('Placement.AvailabilityZone')
    const subnetId = ni?.get('SubnetId') ?? p.get('SubnetId')
    const subnet = subnetId !== undefined
      ? this.w.catalog.subnet(subnetId)
      : this.w.opts.subnets.find((s) => wantedAz === undefined || s.availabilityZone === wantedAz)
    if (subnet === undefined) throw invalidValue(`Invalid availability zone: [${wantedAz ?? ''}]`)
    if (wantedAz !== undefined && wantedAz !== subnet.availabilityZone) {
      throw invalidValue(`The subnet '${subnet.subnetId}' is in ${subnet.availabilityZone}, not in the requested zone ${wantedAz}`)
    }
    const groupIds = [
      ...(ni?.list('SecurityGroupId') ?? p.list('SecurityGroupId')),
      ...p.list('SecurityGroup').map((name) => {
        const g = this.w.opts.securityGroups.find((x) => x.groupName === name && x.vpcId === subnet.vpcId)
        if (g === undefined) throw new Ec2Error('InvalidGroup.NotFound', `The security group '${name}' does not exist in VPC '${subnet.vpcId}'`)
        return g.groupId
      })
    ]
    for (const g of groupIds) this.w.catalog.group(g, subnet.vpcId)
    if (groupIds.length === 0) {
      const dflt = this.w.catalog.defaultGroup(subnet.vpcId)
      if (dflt !== undefined) groupIds.push(dflt.groupId)
    }
    const b64 = p.get('UserData')
    let userData: Buffer | undefined
    if (b64 !== undefined) {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw invalidValue('Invalid BASE64 encoding of user data.')
      userData = Buffer.from(b64, 'base64')
      if (userData.length > 16384) throw invalidValue('User data is limited to 16384 bytes')
    }
    const tagSpecs = p.tagSpecs(['instance', 'volume', 'network-interface'])
    const prof = p.sub('IamInstanceProfile')
    const profName = prof.get('Name')
    const profileArn = prof.get('Arn') ?? (profName === undefined ? undefined : `arn:aws:iam::${this.w.opts.accountId}:instance-profile/${profName}`)
    if (profileArn !== undefined && !PROFILE_ARN.test(profileArn)) throw invalidValue(`Value (${profileArn}) for parameter iamInstanceProfile.arn is invalid.`)
    const httpTokens = p.get('MetadataOptions.HttpTokens') ?? this.w.opts.defaultHttpTokens
    if (httpTokens !== 'required' && httpTokens !== 'optional') throw invalidValue(`Invalid value '${httpTokens}' for HttpTokens`)
    const associatePublic = ni?.bool('AssociatePublicIpAddress') === true

    // Capacity, then addresses: all checks are done before anything is created.
    this.w.faults.capacity(instanceType, subnet.subnetId, subnet.availabilityZone, this.w.catalog.zones.filter((z) => z !== subnet.availabilityZone))
    const ips = this.w.catalog.allocateIps(subnet, min, max, ni?.get('PrivateIpAddress') ?? p.get('PrivateIpAddress'))
    const reservationId = this.w.ids.next('r')
    const now = this.w.clock.now()
    const insts = ips.map((privateIp, launchIndex) => {
      const publicIp = associatePublic ? this.w.catalog.allocatePublicIp() : undefined
      const inst = this.create({
        id: this.w.ids.next('i'),
        reservationId,
        imageId: image.imageId,
        instanceType,
        state: 'pending',
        subnet,
        groupIds,
        ...(profileArn === undefined ? {} : { profileArn }),
        httpTokens,
        metadataTags: p.get('MetadataOptions.InstanceMetadataTags') === 'enabled',
        ...(userData === undefined ? {} : { userData }),
        tags: new Map(tagSpecs.get('instance') ?? []),
        ...(token === undefined ? {} : { clientToken: token }),
        ...(p.get('KeyName') === undefined ? {} : { keyName: p.get('KeyName') }),
        launchIndex,
        privateIp,
        ...(publicIp === undefined ? {} : { ephemeralPublicIp: publicIp }),
        visibleAt: now + this.w.faults.notFoundWindowMs
      }, tagSpecs.get('volume') ?? [])
      this.w.schedule(this.w.opts.bootDelayMs, () => { this.boot(inst) })
      return inst
    })
    if (token !== undefined) this.tokens.set(token, { fingerprint: p.fingerprint(['ClientToken']), reservationId, instanceIds: insts.map((i) => i.id) })
    await Promise.all(insts.map(async (i) => await i.imdsReady))
    return reservationXml(this.w, reservationId, insts)
  }

  /** An instance already running, as if the operator had booted it (visible at once). */
  async addRunning (spec: RunningInstanceSpec): Promise<InstanceInfo> {
    const subnet = spec.subnetId === undefined ? this.w.opts.subnets[0] : this.w.catalog.subnet(spec.subnetId)
    if (subnet === undefined) throw new Error('fake-ec2: no subnet configured')
    const id = spec.instanceId ?? this.w.ids.next('i')
    checkIdShape(id, 'i', 'InvalidInstanceID.Malformed')
    if (this.all.has(id)) throw new Error(`fake-ec2: instance ${id} already exists`)
    const groupIds = spec.securityGroupIds ?? [this.w.catalog.defaultGroup(subnet.vpcId)?.groupId].filter((g): g is string => g !== undefined)
    for (const g of groupIds) this.w.catalog.group(g, subnet.vpcId)
    const [privateIp] = this.w.catalog.allocateIps(subnet, 1, 1, spec.privateIp)
    const inst = this.create({
      id,
      reservationId: this.w.ids.next('r'),
      imageId: spec.imageId ?? 'ami-0000000000000000a',
      instanceType: spec.instanceType ?? 'm5.large',
      state: 'running',
      subnet,
      groupIds,
      ...(spec.iamInstanceProfileArn === undefined ? {} : { profileArn: spec.iamInstanceProfileArn }),
      httpTokens: spec.httpTokens ?? this.w.opts.defaultHttpTokens,
      metadataTags: false,
      ...(spec.userData === undefined ? {} : { userData: Buffer.from(spec.userData, 'utf8') }),
      tags: new Map(Object.entries(spec.tags ?? {})),
      launchIndex: 0,
      privateIp: privateIp ?? '',
      visibleAt: this.w.clock.now()
    }, [])
    await inst.imdsReady
    if (spec.boot === true) this.boot(inst)
    else inst.booted = true
    return this.info(inst)
  }

  describe (p: QueryParams): string {
    const ids = p.list('InstanceId')
    const filters = p.filters()
    if (ids.length > 0 && p.get('MaxResults') !== undefined) {
      throw new Ec2Error('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults')
    }
    let insts: Instance[]
    if (ids.length > 0) {
      for (const id of ids) checkIdShape(id, 'i', 'InvalidInstanceID.Malformed')
      const missing = ids.filter((id) => !this.isVisible(id))
      if (missing.length > 0) throw notExist('instance', 'InvalidInstanceID.NotFound', missing)
      insts = [...new Set(ids)].map((id) => this.all.get(id)).filter((i): i is Instance => i !== undefined)
    } else {
      insts = [...this.all.values()].filter((i) => this.isVisible(i.id))
    }
    const matched = applyFilters(insts, filters, {
      'instance-id': (i) => i.id,
      'instance-state-name': (i) => i.state,
      'instance-state-code': (i) => stateXml(i.state).code,
      'instance-type': (i) => i.instanceType,
      'image-id': (i) => i.imageId,
      'private-ip-address': (i) => i.state === 'terminated' ? undefined : i.privateIp,
      'ip-address': (i) => this.publicIpOf(i),
      'subnet-id': (i) => i.subnet.subnetId,
      'vpc-id': (i) => i.subnet.vpcId,
      'availability-zone': (i) => i.subnet.availabilityZone,
      'client-token': (i) => i.clientToken,
      'reservation-id': (i) => i.reservationId,
      'iam-instance-profile.arn': (i) => i.profileArn,
      'instance.group-id': (i) => i.groupIds,
      'key-name': (i) => i.keyName
    }, (i) => i.tags)
    const { page, nextToken } = paginate(matched, p, { min: 5, max: 1000 }, 'instances' + JSON.stringify(filters))
    const groups = new Map<string, Instance[]>()
    for (const i of page) groups.set(i.reservationId, [...(groups.get(i.reservationId) ?? []), i])
    return xml({
      reservationSet: [...groups].map(([reservationId, list]) => ({
        reservationId,
        ownerId: this.w.opts.accountId,
        groupSet: [],
        instancesSet: list.map((i) => instanceItem(this.w, i))
      })),
      nextToken
    })
  }

  terminateCall (p: QueryParams): string {
    const ids = p.list('InstanceId')
    if (ids.length === 0) throw new Ec2Error('MissingParameter', 'The request must contain the parameter InstanceId')
    for (const id of ids) checkIdShape(id, 'i', 'InvalidInstanceID.Malformed')
    const missing = ids.filter((id) => !this.isVisible(id))
    if (missing.length > 0) throw notExist('instance', 'InvalidInstanceID.NotFound', missing)
    const when = new Date(this.w.clock.now()).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' GMT')
    return xml({
      instancesSet: ids.map((id) => {
        const inst = this.visible(id)
        const previousState = stateXml(inst.state)
        this.terminate(inst, { code: 'Client.UserInitiatedShutdown', message: 'Client.UserInitiatedShutdown: User initiated shutdown' }, `User initiated (${when})`)
        return { instanceId: id, currentState: stateXml(inst.state), previousState }
      })
    })
  }

  /** pending/running -> shutting-down; `onTerminate` runs; terminated after the delay and the hook. */
  terminate (inst: Instance, stateReason: { code: string, message: string }, reason: string): void {
    if (inst.state === 'shutting-down' || inst.state === 'terminated') return
    inst.state = 'shutting-down'
    inst.stateReason = stateReason
    inst.reason = reason
    const hookP = this.runTerminateHook(inst)
    let hookDone = false
    let delayDone = false
    const finish = (): void => {
      if (!hookDone || !delayDone || inst.state === 'terminated') return
      inst.state = 'terminated'
      inst.terminatedAt = this.w.clock.now()
      this.w.volumes.onInstanceTerminated(inst.id)
      this.w.addresses.onInstanceTerminated(inst.id)
      this.w.catalog.releaseIp(inst.privateIp)
      if (inst.ephemeralPublicIp !== undefined) this.w.catalog.releasePublicIp(inst.ephemeralPublicIp)
      if (inst.imds !== undefined) this.w.track(`closing IMDS of ${inst.id}`, inst.imds.close())
    }
    hookP.then(() => { hookDone = true; finish() }, () => { hookDone = true; finish() })
    this.w.schedule(this.w.opts.shutdownDelayMs, () => { delayDone = true; finish() })
  }

  /** onTerminate, once, for an instance that was booted. */
  runTerminateHook (inst: Instance): Promise<void> {
    const hook = this.w.opts.onTerminate
    const p = (async () => {
      if (!inst.booted || inst.terminateHooked === true || hook === undefined) return
      inst.terminateHooked = true
      await hook(this.info(inst))
    })()
    this.w.track(`onTerminate(${inst.id})`, p)
    return p
  }

  setSpotAction (id: string, action: string, time: string): void { this.mustGet(id).spotAction = { action, time } }
  setMaintenance (id: string, events: MaintenanceEvent[]): void { this.mustGet(id).maintenance = events }

  mustGet (id: string): Instance {
    const inst = this.all.get(id)
    if (inst === undefined) throw new Error(`fake-ec2: no instance ${id}`)
    return inst
  }

  /** When the fake closes: onTerminate for every booted instance still alive, then the IMDS servers stop. */
  async closeAll (): Promise<void> {
    await Promise.allSettled([...this.all.values()].filter((i) => i.state !== 'terminated').map(async (i) => { await this.runTerminateHook(i) }))
    await Promise.all([...this.all.values()].map(async (i) => { await i.imdsReady.catch(() => {}); await i.imds?.close() }))
  }
}
