// The fake EC2 endpoint's IMDSv2 (through the real MetadataService) and Elastic IPs (through the real SDK).
import {
  AllocateAddressCommand, AssociateAddressCommand, DescribeAddressesCommand, DescribeInstancesCommand, DisassociateAddressCommand,
  ReleaseAddressCommand, RunInstancesCommand, type EC2Client
} from '@aws-sdk/client-ec2'
import { MetadataService } from '@aws-sdk/ec2-metadata-service'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { FakeEc2Harness, waitFor } from '../fake-ec2/testing.js'

const PROFILE = 'arn:aws:iam::123456789012:instance-profile/wakame-node'
const h = new FakeEc2Harness()
afterEach(async () => { await h.cleanup() })

const publicIpOf = async (ec2: EC2Client, id: string): Promise<string | undefined> =>
  (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0]?.PublicIpAddress

describe('IMDSv2', () => {
  it('requires a token (IMDSv1 refused) and answers every metadata path through the real MetadataService', async () => {
    const fake = await h.start({ bootDelayMs: 10 })
    const ec2 = h.client(fake)
    const userData = '#cloud-config\nwakame: { cluster: demo }\n'
    const out = await ec2.send(new RunInstancesCommand({
      ImageId: 'ami-0123456789abcdef0', InstanceType: 'c5.large', MinCount: 1, MaxCount: 1, SubnetId: 'subnet-0b00000000000000b',
      IamInstanceProfile: { Arn: PROFILE }, UserData: Buffer.from(userData).toString('base64'), MetadataOptions: { HttpTokens: 'required' }
    }))
    const inst = out.Instances?.[0]
    const id = inst?.InstanceId ?? ''
    const mac = inst?.NetworkInterfaces?.[0]?.MacAddress ?? ''
    const { endpoint } = fake.imdsFor(id)

    expect((await fetch(`${endpoint}/latest/meta-data/instance-id`)).status).toBe(401)
    expect((await fetch(`${endpoint}/latest/meta-data/instance-id`, { headers: { 'x-aws-ec2-metadata-token': 'forged' } })).status).toBe(401)
    expect((await fetch(`${endpoint}/latest/api/token`, { method: 'PUT' })).status).toBe(400)
    expect((await fetch(`${endpoint}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21601' } })).status).toBe(400)
    const v1 = new MetadataService({ endpoint, disableFetchToken: true, ec2MetadataV1Disabled: false, retries: 0 })
    await expect(v1.request('/latest/meta-data/instance-id', {})).rejects.toMatchObject({ $metadata: { httpStatusCode: 401 } })

    const md = new MetadataService({ endpoint, ec2MetadataV1Disabled: true, retries: 0 })
    const get = async (path: string): Promise<string> => await md.request(`/latest/meta-data/${path}`, {})
    expect(await get('instance-id')).toBe(id)
    expect(await get('ami-id')).toBe('ami-0123456789abcdef0')
    expect(await get('instance-type')).toBe('c5.large')
    expect(await get('placement/availability-zone')).toBe('us-east-1b')
    expect(await get('placement/region')).toBe('us-east-1')
    expect(await get('local-ipv4')).toBe('127.0.2.10')
    expect(await get('mac')).toBe(mac)
    await expect(get('public-ipv4')).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } })
    expect(await get(`network/interfaces/macs/${mac}/subnet-id`)).toBe('subnet-0b00000000000000b')
    expect(await get(`network/interfaces/macs/${mac}/security-group-ids`)).toBe('sg-0def000000000001')
    expect(await get(`network/interfaces/macs/${mac}/vpc-id`)).toBe('vpc-0a00000000000000a')
    expect(await get('network/interfaces/macs/')).toBe(`${mac}/`)
    expect(JSON.parse(await get('iam/info'))).toMatchObject({ Code: 'Success', InstanceProfileArn: PROFILE })
    expect(await md.request('/latest/user-data', {})).toBe(userData)
    expect(JSON.parse(await md.request('/latest/dynamic/instance-identity/document', {}))).toMatchObject({ instanceId: id, region: 'us-east-1', availabilityZone: 'us-east-1b' })
    expect((await get('')).split('\n')).toEqual(expect.arrayContaining(['instance-id', 'placement/', 'network/', 'iam/', 'events/']))

    await expect(get('spot/instance-action')).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } })
    expect(JSON.parse(await get('events/maintenance/scheduled'))).toEqual([])
    fake.triggerSpotInterruption(id)
    const notice = JSON.parse(await get('spot/instance-action')) as { action: string, time: string }
    expect(notice.action).toBe('terminate')
    expect(Date.parse(notice.time) - Date.now()).toBeGreaterThan(100_000)
    const event = { Code: 'system-reboot', Description: 'scheduled reboot', EventId: 'instance-event-0d59937288b749b32', NotBefore: '21 Jan 2026 09:00:43 GMT', State: 'active' }
    fake.setMaintenanceEvents(id, [event])
    expect(JSON.parse(await get('events/maintenance/scheduled'))).toEqual([event])
  })

  it('hands out role credentials that identify the calling instance; HttpTokens optional lets IMDSv1 through', async () => {
    const fake = await h.start()
    const inst = await fake.addRunningInstance({ iamInstanceProfileArn: PROFILE })
    const md = new MetadataService({ endpoint: inst.imdsEndpoint, ec2MetadataV1Disabled: true, retries: 0 })
    const role = (await md.request('/latest/meta-data/iam/security-credentials/', {})).trim()
    expect(role).toBe('wakame-node')
    const creds = JSON.parse(await md.request(`/latest/meta-data/iam/security-credentials/${role}`, {})) as Record<string, string>
    expect(creds).toMatchObject({ Code: 'Success', Type: 'AWS-HMAC', AccessKeyId: inst.accessKeyId })
    const ec2 = h.client(fake, { credentials: { accessKeyId: creds.AccessKeyId ?? '', secretAccessKey: creds.SecretAccessKey ?? '', sessionToken: creds.Token ?? '' } })
    await ec2.send(new DescribeInstancesCommand({ InstanceIds: [inst.instanceId] }))
    expect(fake.calls('DescribeInstances').map((c) => c.caller)).toEqual([inst.instanceId])

    const lax = await fake.addRunningInstance({ httpTokens: 'optional' })
    const res = await fetch(`${lax.imdsEndpoint}/latest/meta-data/instance-id`)
    expect(res.status).toBe(200)
    expect(await res.text()).toBe(lax.instanceId)
    expect((await fetch(`${lax.imdsEndpoint}/latest/meta-data/iam/info`)).status).toBe(404)
  })

  it('a separate process configured only by environment (as a daemon on the instance) reaches the fake with the role credentials', async () => {
    const fake = await h.start()
    const inst = await fake.addRunningInstance({ iamInstanceProfileArn: PROFILE })
    const script = `import { EC2Client, DescribeInstancesCommand } from '@aws-sdk/client-ec2'
      const out = await new EC2Client({}).send(new DescribeInstancesCommand({ InstanceIds: [process.env.INSTANCE_ID] }))
      console.log(out.Reservations[0].Instances[0].PrivateIpAddress)`
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: '/nonexistent',
      INSTANCE_ID: inst.instanceId,
      AWS_REGION: fake.region,
      AWS_ENDPOINT_URL_EC2: fake.endpoint,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: inst.imdsEndpoint,
      AWS_EC2_METADATA_V1_DISABLED: 'true',
      AWS_CONFIG_FILE: '/nonexistent',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent'
    }
    const { stdout } = await promisify(execFile)(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], { env, cwd: process.cwd() })
    expect(stdout.trim()).toBe(inst.privateIp)
    expect(fake.calls().map((c) => [c.action, c.caller, c.outcome])).toEqual([['DescribeInstances', inst.instanceId, 'ok']])
  })
})

describe('Elastic IPs', () => {
  it('associate; reassociation refused unless AllowReassociation; disassociate, release; IMDS shows the public address', async () => {
    const fake = await h.start({ shutdownDelayMs: 10 })
    const ec2 = h.client(fake, { maxAttempts: 1 })
    const a = await fake.addRunningInstance()
    const b = await fake.addRunningInstance()
    const alloc = await ec2.send(new AllocateAddressCommand({ Domain: 'vpc', TagSpecifications: [{ ResourceType: 'elastic-ip', Tags: [{ Key: 'wakame:eip', Value: 'lb' }] }] }))
    expect(alloc).toMatchObject({ Domain: 'vpc', PublicIp: '198.51.100.10' })
    const AllocationId = alloc.AllocationId ?? ''
    expect(AllocationId).toMatch(/^eipalloc-0[0-9a-f]{16}$/)

    const first = await ec2.send(new AssociateAddressCommand({ AllocationId, InstanceId: a.instanceId }))
    expect(first.AssociationId).toMatch(/^eipassoc-/)
    expect(await publicIpOf(ec2, a.instanceId)).toBe('198.51.100.10')
    const md = new MetadataService({ endpoint: a.imdsEndpoint, ec2MetadataV1Disabled: true, retries: 0 })
    expect(await md.request('/latest/meta-data/public-ipv4', {})).toBe('198.51.100.10')

    await expect(ec2.send(new AssociateAddressCommand({ AllocationId, InstanceId: b.instanceId }))).rejects.toMatchObject({ name: 'Resource.AlreadyAssociated' })
    await expect(ec2.send(new AssociateAddressCommand({ AllocationId, InstanceId: b.instanceId, AllowReassociation: false }))).rejects.toMatchObject({ name: 'Resource.AlreadyAssociated' })
    const second = await ec2.send(new AssociateAddressCommand({ AllocationId, InstanceId: b.instanceId, AllowReassociation: true }))
    expect(second.AssociationId).not.toBe(first.AssociationId)
    const described = await ec2.send(new DescribeAddressesCommand({ Filters: [{ Name: 'tag:wakame:eip', Values: ['lb'] }] }))
    expect(described.Addresses).toEqual([{
      AllocationId, AssociationId: second.AssociationId, Domain: 'vpc', InstanceId: b.instanceId, PublicIp: '198.51.100.10', PrivateIpAddress: b.privateIp,
      NetworkInterfaceId: b.networkInterfaceId, NetworkInterfaceOwnerId: '123456789012', PublicIpv4Pool: 'amazon', NetworkBorderGroup: 'us-east-1',
      Tags: [{ Key: 'wakame:eip', Value: 'lb' }]
    }])
    expect((await ec2.send(new DescribeAddressesCommand({ PublicIps: ['198.51.100.10'] }))).Addresses?.[0]?.InstanceId).toBe(b.instanceId)
    await expect(ec2.send(new DescribeAddressesCommand({ PublicIps: ['203.0.113.1'] }))).rejects.toMatchObject({ name: 'InvalidAddress.NotFound' })
    expect(await publicIpOf(ec2, a.instanceId)).toBeUndefined()
    await expect(md.request('/latest/meta-data/public-ipv4', {})).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } })

    await expect(ec2.send(new ReleaseAddressCommand({ AllocationId }))).rejects.toMatchObject({ name: 'InvalidIPAddress.InUse' })
    await expect(ec2.send(new DisassociateAddressCommand({ AssociationId: first.AssociationId }))).rejects.toMatchObject({ name: 'InvalidAssociationID.NotFound' })
    await ec2.send(new DisassociateAddressCommand({ AssociationId: second.AssociationId }))
    await ec2.send(new ReleaseAddressCommand({ AllocationId }))
    await expect(ec2.send(new DescribeAddressesCommand({ AllocationIds: [AllocationId] }))).rejects.toMatchObject({ name: 'InvalidAllocationID.NotFound' })

    // A pending instance cannot take an address; a terminated one loses it; the quota is EC2's default of 5.
    const pending = (await ec2.send(new RunInstancesCommand({ ImageId: 'ami-0123456789abcdef0', MinCount: 1, MaxCount: 1 }))).Instances?.[0]?.InstanceId ?? ''
    const again = (await ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }))).AllocationId ?? ''
    await expect(ec2.send(new AssociateAddressCommand({ AllocationId: again, InstanceId: pending }))).rejects.toMatchObject({ name: 'IncorrectInstanceState' })
    await ec2.send(new AssociateAddressCommand({ AllocationId: again, InstanceId: b.instanceId }))
    fake.terminateInstance(b.instanceId)
    await waitFor('disassociated by termination', () => fake.addresses().every((x) => x.instanceId === undefined))
    for (let i = 0; i < 4; i++) await ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }))
    await expect(ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }))).rejects.toMatchObject({ name: 'AddressLimitExceeded' })
  })
})
