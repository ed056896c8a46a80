// EBS volumes that follow a stateful service. The leader creates (tagged, in the VM's zone),
// attaches and detaches — never with Force: a forced detach of a mounted filesystem loses data, so
// a volume still "busy" (mounted) past the deadline is an error naming it (case 08). The node
// finds the disk by volume id, formats it only when blkid finds nothing, and mounts it (case 07).
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import {
  AttachVolumeCommand, CreateVolumeCommand, DescribeVolumesCommand, DetachVolumeCommand, type Volume, type VolumeType
} from '@aws-sdk/client-ec2'
import { Ec2ProviderError, awsCodeOf } from './errors.js'
import type { DiskOps } from './disk.js'
import { TAG, clusterFilter, describeInstance, fence, tagList, waitInstanceState, type Ctx } from './instances.js'
import { deriveToken } from './launch.js'

export interface VolumeSettings {
  /** Size of a new volume in GiB (a number, or per volume). @default 8 */
  sizeGb?: number | ((name: string, service: string) => number)
  /** @default 'gp3' */
  type?: string
  /** Encrypted at rest with the account's default EBS key (or kmsKeyId). @default true */
  encrypted?: boolean
  kmsKeyId?: string
}

/** Device names offered to AttachVolume; the node finds the disk by volume id whatever it shows up as. */
export const DEVICE_NAMES = 'fghijklmnop'.split('').map(c => `/dev/sd${c}`)

const VOLUME_NAME = /^[a-z][a-z0-9-]{0,62}$/

export class Volumes {
  constructor (private readonly ctx: Ctx, private readonly s: VolumeSettings = {}) {}

  /** The cluster's volume `name` (by tags), or undefined. Several (should not happen): the attached one, else the oldest. */
  async find (name: string): Promise<Volume | undefined> {
    checkName(name)
    const out = await this.ctx.api.send(new DescribeVolumesCommand({
      Filters: [clusterFilter(this.ctx), { Name: `tag:${TAG.volume}`, Values: [name] }]
    }), { what: `DescribeVolumes for volume ${name}` })
    const vols = (out.Volumes ?? []).filter(v => v.State !== 'deleting' && v.State !== 'deleted')
    if (vols.length > 1) this.ctx.logger.error({ volume: name, ids: vols.map(v => v.VolumeId) }, 'several volumes carry this name; using the attached or oldest one — delete the others')
    return vols.sort((a, b) => ((b.Attachments?.length ?? 0) - (a.Attachments?.length ?? 0)) || ((a.CreateTime?.getTime() ?? 0) - (b.CreateTime?.getTime() ?? 0)))[0]
  }

  async attachment (name: string): Promise<string | null> {
    return (await this.find(name))?.Attachments?.[0]?.InstanceId ?? null
  }

  async zone (name: string): Promise<string | undefined> {
    return (await this.find(name))?.AvailabilityZone
  }

  async attach (name: string, service: string, vmId: string): Promise<void> {
    const what = `attach volume ${name} to ${vmId}`
    let inst = await describeInstance(this.ctx, vmId, what)
    if (inst === undefined) throw new Ec2ProviderError('EC2_BAD_REQUEST', `${what}: no instance ${vmId}; attach it to a running VM`)
    if (inst.State?.Name === 'pending') inst = await waitInstanceState(this.ctx, vmId, ['running'], this.ctx.timeouts.runningMs, what)
    if (inst.State?.Name !== 'running') throw new Ec2ProviderError('EC2_BAD_REQUEST', `${what}: ${vmId} is ${inst.State?.Name ?? 'gone'}; attach it to a running VM`)
    const zone = inst.Placement?.AvailabilityZone ?? ''
    let vol = await this.find(name) ?? await this.create(name, service, zone)
    const id = vol.VolumeId ?? ''
    if (vol.AvailabilityZone !== zone) {
      throw new Ec2ProviderError('EC2_ZONE_MISMATCH', `${what}: volume ${name} (${id}) lives in ${vol.AvailabilityZone ?? '?'}, ${vmId} in ${zone}; a volume can only move within its zone (launch the VM there)`)
    }
    if (vol.State === 'creating') vol = await this.waitVolume(name, id, v => v.State === 'available', this.ctx.timeouts.volumeCreateMs, 'available')
    const att = vol.Attachments?.[0]
    if (att !== undefined && att.InstanceId !== vmId) {
      throw new Ec2ProviderError('EC2_BUSY', `${what}: volume ${name} (${id}) is ${att.State ?? 'attached'} to ${att.InstanceId ?? '?'}; detach it there first (never forced)`)
    }
    if (att === undefined) {
      const used = new Set((inst.BlockDeviceMappings ?? []).map(m => m.DeviceName?.replace('/dev/xvd', '/dev/sd')))
      const device = DEVICE_NAMES.find(d => !used.has(d))
      if (device === undefined) throw new Ec2ProviderError('EC2_BAD_REQUEST', `${what}: ${vmId} has no free device name (${DEVICE_NAMES[0]!}…${DEVICE_NAMES.at(-1)!})`)
      fence(this.ctx, what)
      try {
        await this.ctx.api.send(new AttachVolumeCommand({ VolumeId: id, InstanceId: vmId, Device: device }), { what: `AttachVolume ${name} (${id}) to ${vmId} at ${device}`, mutating: true })
      } catch (err) {
        // A lost answer retried, or a race with another call: fine if it is now attached here.
        if (awsCodeOf(err) !== 'VolumeInUse' || (await this.find(name))?.Attachments?.[0]?.InstanceId !== vmId) throw err
      }
      this.ctx.logger.info({ volume: name, id, vm: vmId, device }, 'volume attaching')
    }
    await this.waitVolume(name, id, v => v.Attachments?.some(a => a.InstanceId === vmId && a.State === 'attached') === true, this.ctx.timeouts.attachMs, `attached to ${vmId}`)
  }

  private async create (name: string, service: string, zone: string): Promise<Volume> {
    const size = typeof this.s.sizeGb === 'function' ? this.s.sizeGb(name, service) : this.s.sizeGb ?? 8
    const type = this.s.type ?? 'gp3'
    const encrypted = this.s.encrypted ?? true
    // The token holds every parameter, so a retry (lost answer) finds the first volume, never makes a second.
    const token = deriveToken(`wakame-${this.ctx.cluster}-volume-${name}`, `${zone}|${size}|${type}|${String(encrypted)}|${this.s.kmsKeyId ?? ''}`)
    const tags = { ...this.ctx.extraTags, [TAG.cluster]: this.ctx.cluster, [TAG.volume]: name, [TAG.service]: service, [TAG.name]: `wakame-${this.ctx.cluster}-${name}` }
    fence(this.ctx, `create volume ${name}`)
    const out = await this.ctx.api.send(new CreateVolumeCommand({
      AvailabilityZone: zone,
      Size: size,
      VolumeType: type as VolumeType,
      Encrypted: encrypted,
      ...(this.s.kmsKeyId !== undefined ? { KmsKeyId: this.s.kmsKeyId } : {}),
      TagSpecifications: [{ ResourceType: 'volume', Tags: tagList(tags) }],
      ClientToken: token
    }), { what: `CreateVolume ${name} in ${zone}`, mutating: true })
    this.ctx.logger.info({ volume: name, id: out.VolumeId, zone, sizeGb: size, type }, 'volume created')
    return { VolumeId: out.VolumeId, AvailabilityZone: out.AvailabilityZone ?? zone, State: out.State ?? 'creating', Attachments: [] }
  }

  async detach (name: string, vmId: string): Promise<void> {
    const what = `detach volume ${name} from ${vmId}`
    const vol = await this.find(name)
    const att = vol?.Attachments?.find(a => a.InstanceId === vmId)
    if (vol === undefined || att === undefined) return // not attached there: nothing to do
    const id = vol.VolumeId ?? ''
    if (att.State === 'attached' || att.State === 'attaching') {
      fence(this.ctx, what)
      try {
        // Never Force: a forced detach of a mounted filesystem loses writes.
        await this.ctx.api.send(new DetachVolumeCommand({ VolumeId: id, InstanceId: vmId }), { what: `DetachVolume ${name} (${id}) from ${vmId}`, mutating: true })
      } catch (err) {
        // Already detached (a lost answer, another leader): done if it is no longer here.
        if (!['IncorrectState', 'InvalidAttachment.NotFound'].includes(awsCodeOf(err))) throw err
        if ((await this.find(name))?.Attachments?.some(a => a.InstanceId === vmId) === true) throw err
      }
      this.ctx.logger.info({ volume: name, id, vm: vmId }, 'volume detaching')
    }
    let last: string | undefined
    await this.waitVolume(name, id, v => {
      last = v.Attachments?.find(a => a.InstanceId === vmId)?.State
      return last === undefined && v.State === 'available'
    }, this.ctx.timeouts.detachMs, 'available', () =>
      new Ec2ProviderError('EC2_TIMEOUT', `volume ${name} (${id}) is still ${last ?? 'in use'} on ${vmId} after ${Math.round(this.ctx.timeouts.detachMs / 1000)} s: its filesystem is probably still mounted there; unmount it on ${vmId} (wakame never force-detaches)`))
  }

  /** Polls the volume until `ok`; the timeout error names the volume. */
  private async waitVolume (name: string, id: string, ok: (v: Volume) => boolean, timeoutMs: number, state: string, onTimeout?: () => Error): Promise<Volume> {
    let seen: string | undefined
    return await this.ctx.api.waitFor(async () => {
      const out = await this.ctx.api.send(new DescribeVolumesCommand({ VolumeIds: [id] }), { what: `DescribeVolumes ${name} (${id})`, transientCodes: ['InvalidVolume.NotFound'] })
      const v = out.Volumes?.[0]
      seen = v === undefined ? undefined : `${v.State ?? '?'}${v.Attachments?.[0]?.State !== undefined ? `/${v.Attachments[0].State}` : ''}`
      return v !== undefined && ok(v) ? v : undefined
    }, {
      timeoutMs,
      pollMs: this.ctx.pollMs,
      onTimeout: onTimeout ?? (() => new Ec2ProviderError('EC2_TIMEOUT', `volume ${name} (${id}) is still ${seen ?? 'not visible'} after ${Math.round(timeoutMs / 1000)} s, not ${state}; retried later`))
    })
  }
}

/** The node's side: mount an attached volume under `mountRoot/<name>`. */
export class Mounts {
  constructor (private readonly ctx: Ctx, private readonly volumes: Volumes, private readonly disk: DiskOps, readonly mountRoot: string) {}

  dir (name: string): string {
    checkName(name)
    return join(this.mountRoot, name)
  }

  async mount (name: string, vmId: string): Promise<string | undefined> {
    const dir = this.dir(name)
    const vol = await this.volumes.find(name)
    const att = vol?.Attachments?.find(a => a.InstanceId === vmId && a.State === 'attached')
    if (vol?.VolumeId === undefined || att === undefined) return undefined // not (yet) attached here
    if (this.disk.isMounted(dir)) return dir
    const id = vol.VolumeId
    const dev = await this.ctx.api.waitFor(async () => this.disk.findDevice(id, att.Device), {
      timeoutMs: this.ctx.timeouts.deviceMs,
      pollMs: Math.min(this.ctx.pollMs, 500),
      onTimeout: () => new Ec2ProviderError('EC2_DEVICE', `volume ${name} (${id}) is attached at ${att.Device ?? '?'} but no disk showed up within ${Math.round(this.ctx.timeouts.deviceMs / 1000)} s (looked for /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${id.replace('-', '')}, the NVMe serials and the xvd/sd names)`)
    })
    if (!await this.disk.hasFilesystem(dev)) {
      this.ctx.logger.info({ volume: name, id, dev }, 'no filesystem on the volume; creating one')
      await this.disk.format(dev, `wakame-${name}`)
    }
    await this.disk.mount(dev, dir)
    this.ctx.logger.info({ volume: name, id, dev, dir }, 'volume mounted')
    return dir
  }

  async unmount (name: string): Promise<void> {
    const dir = this.dir(name)
    if (this.disk.isMounted(dir)) await this.disk.unmount(dir)
  }

  mounted (): string[] {
    let names: string[] = []
    try { names = readdirSync(this.mountRoot) } catch { return [] }
    return names.filter(n => VOLUME_NAME.test(n) && this.disk.isMounted(join(this.mountRoot, n))).sort()
  }
}

function checkName (name: string): void {
  if (!VOLUME_NAME.test(name)) throw new Ec2ProviderError('EC2_BAD_REQUEST', `bad volume name ${JSON.stringify(name)}: lower-case letters, digits and "-"`)
}
