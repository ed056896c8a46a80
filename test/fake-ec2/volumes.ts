// EBS volumes: create, attach (device files on the instance), detach (busy while mounted), delete.
import { lstatSync, mkdirSync, rmSync, symlinkSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import {
  Ec2Error, applyFilters, checkIdShape, invalidValue, notExist, paginate, tagSet, xml,
  type QueryParams, type XmlRecord
} from './protocol.js'
import type { Taggable } from './catalog.js'
import type { Instance } from './instances.js'
import type { AttachmentStateName, ForcedDetach, VolumeInfo, VolumeStateName, World } from './types.js'

interface Attachment {
  instanceId: string
  device: string
  status: AttachmentStateName
  attachTime: number
  deleteOnTermination: boolean
  /** Files created under the instance's devRoot (relative), once attached. */
  files: string[]
  deviceFile?: string
  force?: boolean
}

interface Volume {
  id: string
  az: string
  size: number
  type: string
  iops?: number
  state: VolumeStateName
  tags: Map<string, string>
  createTime: number
  root: boolean
  dataDir: string
  clientToken?: string
  fingerprint?: string
  attachment?: Attachment
}

const DEVICE = /^\/dev\/(sd[b-z]|xvd[b-z]|xvd[a-z][a-z])$/

export class VolumeStore {
  private readonly all = new Map<string, Volume>()
  private readonly mounted = new Set<string>()
  readonly forced: ForcedDetach[] = []

  constructor (private readonly w: World) {}

  get (id: string): Volume {
    checkIdShape(id, 'vol', 'InvalidVolumeID.Malformed')
    const v = this.all.get(id)
    if (v === undefined) throw new Ec2Error('InvalidVolume.NotFound', `The volume '${id}' does not exist.`)
    return v
  }

  info (v: Volume): VolumeInfo {
    const a = v.attachment
    return {
      volumeId: v.id,
      availabilityZone: v.az,
      size: v.size,
      volumeType: v.type,
      state: v.state,
      tags: Object.fromEntries(v.tags),
      root: v.root,
      dataDir: v.dataDir,
      mounted: this.mounted.has(v.id),
      ...(a === undefined
        ? {}
        : { attachment: { instanceId: a.instanceId, device: a.device, state: a.status, ...(a.deviceFile === undefined ? {} : { deviceFile: a.deviceFile }) } })
    }
  }

  list (): VolumeInfo[] { return [...this.all.values()].map((v) => this.info(v)) }

  taggables (): Taggable[] { return [...this.all.values()].map((v) => ({ id: v.id, type: 'volume', tags: v.tags })) }

  setMounted (id: string, mounted: boolean): void {
    if (!this.all.has(id)) throw new Error(`fake-ec2: no volume ${id}`)
    if (mounted) this.mounted.add(id)
    else this.mounted.delete(id)
  }

  private isMounted (v: Volume): boolean {
    return this.mounted.has(v.id) || (this.w.opts.isMounted?.(this.info(v)) ?? false)
  }

  private newVolume (o: { az: string, size: number, type: string, tags: Map<string, string>, root: boolean, state: VolumeStateName }): Volume {
    const id = this.w.ids.next('vol')
    const v: Volume = { id, ...o, createTime: this.w.clock.now(), dataDir: join(this.w.opts.rootDir, 'volumes', id) }
    mkdirSync(v.dataDir, { recursive: true })
    this.all.set(id, v)
    return v
  }

  /** The root volume RunInstances creates (no device files: it stands for nvme0n1 / xvda). */
  createRoot (inst: Instance, tags: Array<[string, string]>): void {
    const v = this.newVolume({ az: inst.subnet.availabilityZone, size: 8, type: 'gp3', tags: new Map(tags), root: true, state: 'in-use' })
    v.attachment = { instanceId: inst.id, device: '/dev/xvda', status: 'attached', attachTime: this.w.clock.now(), deleteOnTermination: true, files: [] }
  }

  mappingsFor (instanceId: string): XmlRecord[] {
    return [...this.all.values()].filter((v) => v.attachment?.instanceId === instanceId).map((v) => ({
      deviceName: v.attachment?.device,
      ebs: { volumeId: v.id, status: v.attachment?.status, attachTime: new Date(v.attachment?.attachTime ?? 0), deleteOnTermination: v.attachment?.deleteOnTermination }
    }))
  }

  private item (v: Volume): XmlRecord {
    const a = v.attachment
    return {
      volumeId: v.id,
      size: v.size,
      snapshotId: '',
      availabilityZone: v.az,
      status: v.state,
      createTime: new Date(v.createTime),
      attachmentSet: a === undefined
        ? []
        : [{ volumeId: v.id, instanceId: a.instanceId, device: a.device, status: a.status, attachTime: new Date(a.attachTime), deleteOnTermination: a.deleteOnTermination }],
      volumeType: v.type,
      iops: v.iops,
      encrypted: false,
      multiAttachEnabled: false,
      tagSet: tagSet(v.tags)
    }
  }

  create (p: QueryParams): string {
    const az = p.req('AvailabilityZone')
    if (!this.w.catalog.zones.includes(az)) throw invalidValue(`Invalid availability zone: [${az}]`)
    const size = p.int('Size')
    if (size === undefined) throw new Ec2Error('MissingParameter', 'The request must contain the parameter size or snapshotId')
    if (size < 1 || size > 16384) throw invalidValue(`Volume of ${size}GiB is out of the allowed range`)
    const type = p.get('VolumeType') ?? 'gp2'
    if (!['gp2', 'gp3', 'io1', 'io2', 'st1', 'sc1', 'standard'].includes(type)) throw invalidValue(`Value (${type}) for parameter volumeType is invalid.`)
    const token = p.get('ClientToken')
    const fingerprint = p.fingerprint(['ClientToken'])
    if (token !== undefined) {
      const prior = [...this.all.values()].find((v) => v.clientToken === token)
      if (prior !== undefined) {
        if (prior.fingerprint !== fingerprint) {
          throw new Ec2Error('IdempotentParameterMismatch', 'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).')
        }
        return xml(this.item(prior))
      }
    }
    const v = this.newVolume({ az, size, type, tags: new Map(p.tagSpecs(['volume']).get('volume') ?? []), root: false, state: 'creating' })
    const iops = p.int('Iops')
    if (iops !== undefined) v.iops = iops
    if (token !== undefined) Object.assign(v, { clientToken: token, fingerprint })
    this.w.schedule(this.w.opts.volumeCreateDelayMs, () => { if (v.state === 'creating') v.state = 'available' })
    return xml(this.item(v))
  }

  describe (p: QueryParams): string {
    const ids = p.list('VolumeId')
    if (ids.length > 0 && p.get('MaxResults') !== undefined) {
      throw new Ec2Error('InvalidParameterCombination', 'The parameter volumeSet cannot be used with the parameter maxResults')
    }
    for (const id of ids) checkIdShape(id, 'vol', 'InvalidVolumeID.Malformed')
    const missing = ids.filter((id) => !this.all.has(id))
    if (missing.length > 0) throw notExist('volume', 'InvalidVolume.NotFound', missing)
    const vols = ids.length > 0 ? [...new Set(ids)].map((id) => this.get(id)) : [...this.all.values()]
    const filters = p.filters()
    const matched = applyFilters(vols, filters, {
      'volume-id': (v) => v.id,
      status: (v) => v.state,
      size: (v) => v.size,
      'volume-type': (v) => v.type,
      'availability-zone': (v) => v.az,
      'attachment.instance-id': (v) => v.attachment?.instanceId,
      'attachment.device': (v) => v.attachment?.device,
      'attachment.status': (v) => v.attachment?.status,
      'attachment.delete-on-termination': (v) => v.attachment?.deleteOnTermination
    }, (v) => v.tags)
    const { page, nextToken } = paginate(matched, p, { min: 5, max: 500 }, 'volumes' + JSON.stringify(filters))
    return xml({ volumeSet: page.map((v) => this.item(v)), nextToken })
  }

  attach (p: QueryParams): string {
    const device = p.req('Device')
    const inst = this.w.instances.visible(p.req('InstanceId'))
    const v = this.get(p.req('VolumeId'))
    if (!DEVICE.test(device)) throw invalidValue(`Value (${device}) for parameter device is invalid. ${device} is not a valid EBS device name.`)
    if (v.attachment !== undefined) throw new Ec2Error('VolumeInUse', `${v.id} is already attached to an instance`)
    if (v.state !== 'available') throw new Ec2Error('IncorrectState', `${v.id} is not 'available'.`)
    if (inst.state !== 'running') throw new Ec2Error('IncorrectState', `Instance '${inst.id}' is not 'running'.`)
    if (v.az !== inst.subnet.availabilityZone) {
      throw new Ec2Error('InvalidVolume.ZoneMismatch', `The volume '${v.id}' is not in the same availability zone as instance '${inst.id}'`)
    }
    const taken = [...this.all.values()].some((o) => o.attachment?.instanceId === inst.id && o.attachment.device === device)
    if (taken) throw invalidValue(`Attachment point ${device} is already in use`)
    const a: Attachment = { instanceId: inst.id, device, status: 'attaching', attachTime: this.w.clock.now(), deleteOnTermination: false, files: [] }
    v.attachment = a
    v.state = 'in-use'
    this.w.schedule(this.w.opts.attachDelayMs, () => {
      if (v.attachment !== a || a.status !== 'attaching') return
      this.createDeviceFiles(inst, v, a)
      a.status = 'attached'
    })
    return xml(this.attachmentXml(v, a))
  }

  private attachmentXml (v: Volume, a: Attachment): XmlRecord {
    return { volumeId: v.id, instanceId: a.instanceId, device: a.device, status: a.status, attachTime: new Date(a.attachTime), deleteOnTermination: a.deleteOnTermination }
  }

  /** Nitro: `nvmeNn1` + `disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…`; Xen: `xvdX` for /dev/sdX. Both point at the data. */
  private createDeviceFiles (inst: Instance, v: Volume, a: Attachment): void {
    const dev = inst.devRoot
    mkdirSync(dev, { recursive: true })
    if (inst.hypervisor === 'xen') {
      const name = a.device.replace(/^\/dev\/(sd|xvd)/, 'xvd')
      symlinkSync(v.dataDir, join(dev, name))
      a.files = [name]
      a.deviceFile = join(dev, name)
      return
    }
    let n = 1
    while (existsOrLink(join(dev, `nvme${n}n1`))) n++
    const name = `nvme${n}n1`
    const byId = join('disk', 'by-id', `nvme-Amazon_Elastic_Block_Store_${v.id.replace('-', '')}`)
    mkdirSync(join(dev, 'disk', 'by-id'), { recursive: true })
    symlinkSync(v.dataDir, join(dev, name))
    if (existsOrLink(join(dev, byId))) unlinkSync(join(dev, byId))
    symlinkSync(join('..', '..', name), join(dev, byId))
    a.files = [byId, name]
    a.deviceFile = join(dev, name)
  }

  private removeDeviceFiles (a: Attachment): void {
    const inst = this.w.instances.all.get(a.instanceId)
    if (inst === undefined) return
    for (const f of a.files) {
      const path = join(inst.devRoot, f)
      if (existsOrLink(path)) unlinkSync(path)
    }
    a.files = []
  }

  detach (p: QueryParams): string {
    const v = this.get(p.req('VolumeId'))
    const a = v.attachment
    if (a === undefined) throw new Ec2Error('IncorrectState', `Volume '${v.id}' is in the '${v.state}' state.`)
    const instanceId = p.get('InstanceId')
    const device = p.get('Device')
    if ((instanceId !== undefined && instanceId !== a.instanceId) || (device !== undefined && device !== a.device)) {
      throw new Ec2Error('InvalidAttachment.NotFound', `Volume '${v.id}' is not attached to '${instanceId ?? device ?? ''}' at the given device.`)
    }
    const force = p.bool('Force') === true
    if (force) {
      this.forced.push({ volumeId: v.id, instanceId: a.instanceId, at: this.w.clock.now() })
      a.force = true
    }
    if (v.root) throw new Ec2Error('OperationNotPermitted', `Unable to detach root volume '${v.id}' from instance '${a.instanceId}'`)
    if (a.status === 'attaching') throw new Ec2Error('IncorrectState', `Volume '${v.id}' is still attaching.`)
    if (a.status === 'attached') {
      a.status = 'detaching'
      this.w.schedule(this.w.opts.detachDelayMs, () => { this.progressDetach(v, a) })
    }
    return xml(this.attachmentXml(v, a))
  }

  /** While the filesystem is mounted the attachment stays "busy" (re-checked every detachDelayMs), unless forced. */
  private progressDetach (v: Volume, a: Attachment): void {
    if (v.attachment !== a) return
    if (a.force !== true && this.isMounted(v)) {
      a.status = 'busy'
      this.w.schedule(this.w.opts.detachDelayMs, () => { this.progressDetach(v, a) })
      return
    }
    this.removeDeviceFiles(a)
    v.attachment = undefined
    v.state = 'available'
  }

  deleteVolume (p: QueryParams): string {
    const v = this.get(p.req('VolumeId'))
    if (v.attachment !== undefined) throw new Ec2Error('VolumeInUse', `Volume ${v.id} is currently attached to ${v.attachment.instanceId}`)
    if (v.state !== 'available') throw new Ec2Error('IncorrectState', `The volume '${v.id}' is '${v.state}'.`)
    this.remove(v)
    return xml({ return: true })
  }

  private remove (v: Volume): void {
    this.all.delete(v.id)
    this.mounted.delete(v.id)
    rmSync(v.dataDir, { recursive: true, force: true })
  }

  /** On termination: device files go, delete-on-termination volumes are deleted, the others become available. */
  onInstanceTerminated (instanceId: string): void {
    for (const v of [...this.all.values()]) {
      const a = v.attachment
      if (a?.instanceId !== instanceId) continue
      this.removeDeviceFiles(a)
      v.attachment = undefined
      if (a.deleteOnTermination) this.remove(v)
      else v.state = 'available'
    }
  }
}

function existsOrLink (path: string): boolean {
  try {
    lstatSync(path)
    return true
  } catch {
    return false
  }
}
