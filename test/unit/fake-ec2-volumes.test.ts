// The fake EC2 endpoint's EBS volumes, driven by the real AWS SDK (manual clock: no waiting).
import { existsSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  AttachVolumeCommand, CreateVolumeCommand, DeleteVolumeCommand, DescribeVolumesCommand, DetachVolumeCommand,
  TerminateInstancesCommand, type EC2Client, type Volume
} from '@aws-sdk/client-ec2'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock, type FakeEc2 } from '../fake-ec2/server.js'
import { FakeEc2Harness } from '../fake-ec2/testing.js'

const h = new FakeEc2Harness()
afterEach(async () => { await h.cleanup() })

const STEP = 20
const byIdName = (volumeId: string): string => `nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`

async function setup (): Promise<{ fake: FakeEc2, ec2: EC2Client, clock: ManualClock }> {
  const clock = new ManualClock()
  const fake = await h.start({ clock, volumeCreateDelayMs: STEP, attachDelayMs: STEP, detachDelayMs: STEP, shutdownDelayMs: STEP })
  return { fake, ec2: h.client(fake, { maxAttempts: 1 }), clock }
}

async function volume (ec2: EC2Client, id: string): Promise<Volume> {
  const v = (await ec2.send(new DescribeVolumesCommand({ VolumeIds: [id] }))).Volumes?.[0]
  if (v === undefined) throw new Error(`no ${id}`)
  return v
}

async function newVolume (ec2: EC2Client, clock: ManualClock, az = 'us-east-1a'): Promise<string> {
  const id = (await ec2.send(new CreateVolumeCommand({ AvailabilityZone: az, Size: 10, VolumeType: 'gp3' }))).VolumeId ?? ''
  clock.advance(STEP)
  return id
}

describe('volumes', () => {
  it('attach on Nitro (by-id link to nvme1n1), detach stays busy while mounted, the data moves to a Xen instance as xvdg', async () => {
    const { fake, ec2, clock } = await setup()
    const nitro = await fake.addRunningInstance({ instanceType: 'm5.large' })
    const xen = await fake.addRunningInstance({ instanceType: 't2.micro' })
    const created = await ec2.send(new CreateVolumeCommand({
      AvailabilityZone: 'us-east-1a', Size: 10, VolumeType: 'gp3', TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: 'wakame:volume', Value: 'db' }] }]
    }))
    expect(created).toMatchObject({ State: 'creating', Size: 10, VolumeType: 'gp3', AvailabilityZone: 'us-east-1a', Tags: [{ Key: 'wakame:volume', Value: 'db' }] })
    const id = created.VolumeId ?? ''
    expect(id).toMatch(/^vol-0[0-9a-f]{16}$/)
    await expect(ec2.send(new AttachVolumeCommand({ VolumeId: id, InstanceId: nitro.instanceId, Device: '/dev/sdf' }))).rejects.toMatchObject({ name: 'IncorrectState' })
    clock.advance(STEP)
    expect((await volume(ec2, id)).State).toBe('available')

    const att = await ec2.send(new AttachVolumeCommand({ VolumeId: id, InstanceId: nitro.instanceId, Device: '/dev/sdf' }))
    expect(att).toMatchObject({ State: 'attaching', Device: '/dev/sdf', InstanceId: nitro.instanceId, VolumeId: id })
    const byId = join(nitro.devRoot, 'disk', 'by-id', byIdName(id))
    expect(existsSync(byId)).toBe(false)
    clock.advance(STEP)
    expect(await volume(ec2, id)).toMatchObject({ State: 'in-use', Attachments: [{ State: 'attached', InstanceId: nitro.instanceId, Device: '/dev/sdf' }] })
    expect(readlinkSync(byId)).toBe(join('..', '..', 'nvme1n1'))
    const dataDir = fake.volume(id)?.dataDir ?? ''
    expect(realpathSync(byId)).toBe(realpathSync(dataDir))
    expect(existsSync(join(nitro.devRoot, 'sdf'))).toBe(false) // Nitro: nothing under the requested name
    writeFileSync(join(byId, 'table'), 'rows')
    const attachedHere = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [nitro.instanceId] }, { Name: 'tag:wakame:volume', Values: ['db'] }] }))
    expect(attachedHere.Volumes?.map((v) => v.VolumeId)).toEqual([id])

    fake.setMounted(id, true)
    expect((await ec2.send(new DetachVolumeCommand({ VolumeId: id, InstanceId: nitro.instanceId }))).State).toBe('detaching')
    clock.advance(10_000)
    expect(await volume(ec2, id)).toMatchObject({ State: 'in-use', Attachments: [{ State: 'busy' }] })
    expect(existsSync(byId)).toBe(true)
    fake.setMounted(id, false)
    clock.advance(STEP)
    expect(await volume(ec2, id)).toMatchObject({ State: 'available', Attachments: [] })
    expect(existsSync(byId)).toBe(false)
    expect(existsSync(join(nitro.devRoot, 'nvme1n1'))).toBe(false)

    await ec2.send(new AttachVolumeCommand({ VolumeId: id, InstanceId: xen.instanceId, Device: '/dev/sdg' }))
    clock.advance(STEP)
    expect(xen.hypervisor).toBe('xen')
    expect(readFileSync(join(xen.devRoot, 'xvdg', 'table'), 'utf8')).toBe('rows')
    expect(existsSync(join(xen.devRoot, 'disk', 'by-id', byIdName(id)))).toBe(false)
    expect(fake.volume(id)?.attachment).toMatchObject({ instanceId: xen.instanceId, state: 'attached', deviceFile: join(xen.devRoot, 'xvdg') })
    expect(fake.forcedDetaches()).toEqual([])
  })

  it('refuses what EC2 refuses: other zone, in use, taken or invalid device, detach of a free volume; Force is recorded', async () => {
    const { fake, ec2, clock } = await setup()
    const a = await fake.addRunningInstance()
    const b = await fake.addRunningInstance()
    const other = await fake.addRunningInstance({ subnetId: 'subnet-0b00000000000000b' })
    const v1 = await newVolume(ec2, clock)
    const v2 = await newVolume(ec2, clock)
    const attach = async (VolumeId: string, InstanceId: string, Device = '/dev/sdf'): Promise<unknown> =>
      await ec2.send(new AttachVolumeCommand({ VolumeId, InstanceId, Device }))

    await expect(attach(v1, other.instanceId)).rejects.toMatchObject({ name: 'InvalidVolume.ZoneMismatch' })
    await expect(attach(v1, a.instanceId, '/dev/foo')).rejects.toMatchObject({ name: 'InvalidParameterValue' })
    await expect(attach('vol-0123456789abcdef0', a.instanceId)).rejects.toMatchObject({ name: 'InvalidVolume.NotFound' })
    await expect(ec2.send(new DetachVolumeCommand({ VolumeId: v1 }))).rejects.toMatchObject({ name: 'IncorrectState' })
    await attach(v1, a.instanceId)
    await expect(attach(v1, b.instanceId)).rejects.toMatchObject({ name: 'VolumeInUse' })
    await expect(attach(v2, a.instanceId)).rejects.toMatchObject({ name: 'InvalidParameterValue', message: 'Attachment point /dev/sdf is already in use' })
    await attach(v2, a.instanceId, '/dev/sdg')
    clock.advance(STEP)
    expect(fake.volume(v2)?.attachment?.deviceFile).toBe(join(a.devRoot, 'nvme2n1'))
    await expect(ec2.send(new DetachVolumeCommand({ VolumeId: v1, InstanceId: b.instanceId }))).rejects.toMatchObject({ name: 'InvalidAttachment.NotFound' })
    await expect(ec2.send(new DeleteVolumeCommand({ VolumeId: v1 }))).rejects.toMatchObject({ name: 'VolumeInUse' })

    fake.setMounted(v1, true)
    await ec2.send(new DetachVolumeCommand({ VolumeId: v1, Force: true }))
    clock.advance(STEP)
    expect(fake.volume(v1)?.state).toBe('available')
    expect(fake.forcedDetaches()).toEqual([{ volumeId: v1, instanceId: a.instanceId, at: clock.now() - STEP }])
    await ec2.send(new DeleteVolumeCommand({ VolumeId: v1 }))
    await expect(volume(ec2, v1)).rejects.toMatchObject({ name: 'InvalidVolume.NotFound' })
  })

  it('CreateVolume ClientToken idempotency; termination frees data volumes and deletes the root volume', async () => {
    const { fake, ec2, clock } = await setup()
    const req = { AvailabilityZone: 'us-east-1a', Size: 5, ClientToken: 'vol-token' }
    const first = await ec2.send(new CreateVolumeCommand(req))
    expect((await ec2.send(new CreateVolumeCommand(req))).VolumeId).toBe(first.VolumeId)
    await expect(ec2.send(new CreateVolumeCommand({ ...req, Size: 6 }))).rejects.toMatchObject({ name: 'IdempotentParameterMismatch' })
    clock.advance(STEP)
    const id = first.VolumeId ?? ''
    expect((await volume(ec2, id)).VolumeType).toBe('gp2')

    const inst = await fake.addRunningInstance()
    await ec2.send(new AttachVolumeCommand({ VolumeId: id, InstanceId: inst.instanceId, Device: '/dev/sdf' }))
    clock.advance(STEP)
    expect(fake.volumes().filter((v) => v.attachment?.instanceId === inst.instanceId).map((v) => v.root).sort()).toEqual([false, true])
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [inst.instanceId] }))
    clock.advance(STEP)
    await fake.settled()
    expect(fake.instance(inst.instanceId)?.state).toBe('terminated')
    expect(fake.volumes().map((v) => [v.volumeId, v.state, v.root])).toEqual([[id, 'available', false]])
    expect(existsSync(join(inst.devRoot, 'disk', 'by-id', byIdName(id)))).toBe(false)
  })
})
