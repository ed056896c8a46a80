// EBS volumes and Elastic IPs of the EC2 provider against the fake EC2 endpoint: created in the
// VM's zone, found by NVMe serial and by Xen name (case 07), formatted only when empty, detached
// without Force and only once unmounted (case 08); addresses allocated, associated, moved.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { FakeEc2Harness } from '../fake-ec2/testing.js'
import { launchToken } from '../../src/core/cloud-plan.js'
import { DirDiskOps } from '../../src/providers/ec2/disk.js'
import type { Ec2Provider } from '../../src/providers/ec2/ec2-provider.js'
import { CLUSTER, SUBNET_A, SUBNET_B, userData, world, type World } from '../fixtures/ec2/world.js'

const h = new FakeEc2Harness()
const dirs: string[] = []
afterEach(async () => {
  await h.cleanup()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const req = (id: string, instanceType: string, zone: string) => ({ token: launchToken(CLUSTER, 1, id), decisionId: id, reason: 'test', bootstrap: [], instanceType, zones: [zone] })

/** The leader, plus the provider each node uses for its own side, with its disks as directories. */
async function setup (): Promise<{ w: World, leader: Ec2Provider, node: (vmId: string) => { p: Ec2Provider, disk: DirDiskOps, root: string } }> {
  const roots: string[] = []
  const w = await world(h, {
    fake: { detachDelayMs: 100, isMounted: (v) => roots.some(r => DirDiskOps.mountedData(r, v.dataDir)) },
    provider: { timeouts: { detachMs: 10_000 }, launch: { instanceType: 'm5.large', subnetIds: [SUBNET_A, SUBNET_B], userData } }
  })
  const node = (vmId: string): { p: Ec2Provider, disk: DirDiskOps, root: string } => {
    const root = mkdtempSync(join(tmpdir(), 'wakame-ec2-mnt-'))
    dirs.push(root)
    roots.push(root)
    const disk = new DirDiskOps(w.fake.instance(vmId)!.devRoot)
    return { p: w.make({ disk, mountRoot: root }), disk, root }
  }
  return { w, leader: w.provider, node }
}

describe('volumes', () => {
  it('follow the service: created in the VM\'s zone, found by NVMe serial and Xen name, formatted once, detached only unmounted, never forced', async () => {
    const { w, leader, node } = await setup()
    const nitro = await leader.launch(req('l-1', 'm5.large', 'us-east-1b'))
    const xen = await leader.launch(req('l-2', 't2.micro', 'us-east-1b'))
    const other = await leader.launch(req('l-3', 'm5.large', 'us-east-1a'))
    expect(w.fake.instance(xen.id)?.hypervisor).toBe('xen')

    // Created on first use, in the zone of the VM (which is still pending: the attach waits for running).
    await leader.attachVolume('db', 'db', nitro.id)
    const create = w.fake.calls('CreateVolume')
    expect(create).toHaveLength(1)
    expect(create[0]!.params).toMatchObject({ AvailabilityZone: 'us-east-1b', VolumeType: 'gp3', Size: '8', Encrypted: 'true', 'TagSpecification.1.ResourceType': 'volume' })
    const vol = w.fake.volumes().find(v => v.tags['wakame:volume'] === 'db')!
    expect(vol.tags).toMatchObject({ 'wakame:cluster': CLUSTER, 'wakame:volume': 'db', 'wakame:service': 'db' })
    expect(w.fake.calls('CreateTags')).toHaveLength(0)
    expect(w.fake.calls('AttachVolume')[0]!.params).toMatchObject({ VolumeId: vol.volumeId, InstanceId: nitro.id, Device: '/dev/sdf' })
    expect(await leader.volumeAttachment('db')).toBe(nitro.id)
    expect(await leader.volumeZone('db')).toBe('us-east-1b')
    await leader.attachVolume('db', 'db', nitro.id) // already there: nothing more
    expect(w.fake.calls('AttachVolume')).toHaveLength(1)

    // Nitro: the disk is found by the volume id (NVMe serial), not under /dev/sdf; empty, so formatted.
    const n1 = node(nitro.id)
    const dir = await n1.p.mountVolume('db', nitro.id)
    expect(dir).toBe(join(n1.root, 'db'))
    expect(n1.disk.formatted).toEqual([join(w.fake.instance(nitro.id)!.devRoot, 'disk', 'by-id', `nvme-Amazon_Elastic_Block_Store_${vol.volumeId.replace('-', '')}`)])
    writeFileSync(join(dir!, 'table'), 'rows')
    expect(n1.p.mountedVolumes(nitro.id)).toEqual(['db'])
    expect(await n1.p.mountVolume('db', nitro.id)).toBe(dir) // idempotent

    // Attached elsewhere: a retryable refusal, never a takeover.
    await expect(leader.attachVolume('db', 'db', xen.id)).rejects.toMatchObject({ code: 'EC2_BUSY', retryable: true })

    // Case 08: a detach while the filesystem is still mounted stays busy and times out naming the volume.
    const err = await leader.detachVolume('db', nitro.id).catch((e: unknown) => e as Error)
    expect(err).toMatchObject({ code: 'EC2_TIMEOUT', retryable: true })
    expect(err?.message).toMatch(new RegExp(`volume db \\(${vol.volumeId}\\) is still busy on ${nitro.id}.*unmount`))
    expect(w.fake.volume(vol.volumeId)?.attachment?.state).toBe('busy')
    // Unmounted, the (repeated) detach completes.
    await n1.p.unmountVolume('db', nitro.id)
    expect(n1.p.mountedVolumes(nitro.id)).toEqual([])
    await leader.detachVolume('db', nitro.id)
    expect(w.fake.volume(vol.volumeId)?.state).toBe('available')
    expect(await leader.volumeAttachment('db')).toBeNull()
    await leader.detachVolume('db', nitro.id) // not attached there: success
    expect(w.fake.calls('DetachVolume').every(c => c.params.Force === undefined)).toBe(true)
    expect(w.fake.forcedDetaches()).toEqual([])

    // Xen: found as /dev/xvdf; it has a filesystem now, so it is not formatted again and the data is there.
    await leader.attachVolume('db', 'db', xen.id)
    const n2 = node(xen.id)
    const dir2 = await n2.p.mountVolume('db', xen.id)
    expect(n2.disk.formatted).toEqual([])
    expect(readFileSync(join(dir2!, 'table'), 'utf8')).toBe('rows')
    expect(await n1.p.mountVolume('db', nitro.id)).toBeUndefined() // not attached there

    // Another zone: definitive, the service can only move within the volume's zone.
    await expect(leader.attachVolume('db', 'db', other.id)).rejects.toMatchObject({ code: 'EC2_ZONE_MISMATCH', retryable: false })
    // A new leader finds the volume by its tags.
    expect(await w.make().volumeAttachment('db')).toBe(xen.id)
    expect(w.fake.volumes().filter(v => v.tags['wakame:volume'] === 'db')).toHaveLength(1)
  })

  it('a lost CreateVolume answer is retried with the same ClientToken: one volume', async () => {
    const { w, leader } = await setup()
    const vm = await leader.launch(req('l-1', 'm5.large', 'us-east-1a'))
    w.fake.faults.internalError('CreateVolume', 1, { afterExecute: true })
    await leader.attachVolume('data', 'db', vm.id)
    expect(w.fake.calls('CreateVolume').map(c => c.outcome)).toEqual(['InternalError', 'ok'])
    expect(w.fake.volumes().filter(v => v.tags['wakame:volume'] === 'data')).toHaveLength(1)
  })

  it('the node waits for the device with a deadline and names the volume when it never shows up (case 07)', async () => {
    const { w, leader } = await setup()
    const vm = await leader.launch(req('l-1', 'm5.large', 'us-east-1a'))
    await leader.attachVolume('db', 'db', vm.id)
    // A disk view that never shows the device (as if the node looked in the wrong place).
    const empty = mkdtempSync(join(tmpdir(), 'wakame-ec2-dev-'))
    dirs.push(empty)
    const p = w.make({ disk: new DirDiskOps(empty), mountRoot: join(empty, 'mnt'), timeouts: { deviceMs: 5_000 } })
    const id = w.fake.volumes().find(v => v.tags['wakame:volume'] === 'db')!.volumeId
    await expect(p.mountVolume('db', vm.id)).rejects.toThrow(new RegExp(`volume db \\(${id}\\) is attached at /dev/sdf but no disk showed up within 5 s`))
    expect(existsSync(join(empty, 'mnt', 'db'))).toBe(false)
  })
})

describe('addresses', () => {
  it('allocated on first use (tagged), associated without reassociation, moved with it, read back', async () => {
    const { w, leader } = await setup()
    const a = await leader.launch(req('l-1', 'm5.large', 'us-east-1a'))
    const b = await leader.launch(req('l-2', 'm5.large', 'us-east-1b'))
    await leader.associateAddress('lb', a.id)
    expect(w.fake.calls('AllocateAddress')[0]!.params).toMatchObject({ Domain: 'vpc', 'TagSpecification.1.ResourceType': 'elastic-ip' })
    const addr = w.fake.addresses()[0]!
    expect(addr.tags).toMatchObject({ 'wakame:cluster': CLUSTER, 'wakame:address': 'lb' })
    const first = w.fake.calls('AssociateAddress')
    expect(first).toHaveLength(1)
    expect(first[0]!.params).toMatchObject({ AllocationId: addr.allocationId, InstanceId: a.id })
    expect(first[0]!.params.AllowReassociation).toBeUndefined()
    expect(await leader.addressAssociation('lb')).toBe(a.id)
    expect(await leader.addressIp('lb')).toBe(addr.publicIp)

    await leader.associateAddress('lb', a.id) // already there: no call
    expect(w.fake.calls('AssociateAddress')).toHaveLength(1)

    await leader.associateAddress('lb', b.id) // moving: reassociation allowed
    expect(w.fake.calls('AssociateAddress')[1]!.params).toMatchObject({ InstanceId: b.id, AllowReassociation: 'true' })
    expect(await w.make().addressAssociation('lb')).toBe(b.id)
    expect(w.fake.calls('AllocateAddress')).toHaveLength(1)
    expect(await leader.addressAssociation('other')).toBeNull()
    expect(await leader.addressIp('other')).toBeUndefined()
  })
})
