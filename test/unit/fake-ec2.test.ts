// The fake EC2 endpoint, driven by the real AWS SDK: instances, idempotency, eventual consistency, faults.
import {
  CreateTagsCommand, DeleteTagsCommand, DescribeAvailabilityZonesCommand, DescribeImagesCommand, DescribeInstancesCommand,
  DescribeKeyPairsCommand, DescribeSecurityGroupsCommand, DescribeSubnetsCommand, DescribeTagsCommand, RunInstancesCommand,
  TerminateInstancesCommand, paginateDescribeInstances, type EC2Client, type Filter, type Instance, type RunInstancesCommandInput
} from '@aws-sdk/client-ec2'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock, type InstanceInfo } from '../fake-ec2/server.js'
import { FakeEc2Harness, waitFor } from '../fake-ec2/testing.js'

const SUBNET_A = 'subnet-0a00000000000000a'
const SUBNET_B = 'subnet-0b00000000000000b'
const AMI = 'ami-0123456789abcdef0'
const PROFILE = 'arn:aws:iam::123456789012:instance-profile/wakame-node'

const h = new FakeEc2Harness()
afterEach(async () => { await h.cleanup() })

const run = (over: Partial<RunInstancesCommandInput> = {}): RunInstancesCommand =>
  new RunInstancesCommand({ ImageId: AMI, InstanceType: 'm5.large', MinCount: 1, MaxCount: 1, ...over })

async function describeOne (ec2: EC2Client, id: string): Promise<Instance> {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))
  const inst = out.Reservations?.[0]?.Instances?.[0]
  if (inst === undefined) throw new Error(`no ${id}`)
  return inst
}

async function ids (ec2: EC2Client, Filters: Filter[]): Promise<string[]> {
  const out = await ec2.send(new DescribeInstancesCommand({ Filters }))
  return (out.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map((i) => i.InstanceId ?? ''))
}

describe('instances', () => {
  it('RunInstances: pending, then running after the boot delay; the instance carries what was asked; onBoot runs', async () => {
    const booted: InstanceInfo[] = []
    const fake = await h.start({ bootDelayMs: 50, onBoot: (i) => { booted.push(i) } })
    const ec2 = h.client(fake)
    const userData = '#!/bin/sh\necho hello\n'
    const out = await ec2.send(run({
      SubnetId: SUBNET_B,
      SecurityGroupIds: ['sg-0def000000000001'],
      IamInstanceProfile: { Arn: PROFILE },
      MetadataOptions: { HttpTokens: 'required' },
      UserData: Buffer.from(userData).toString('base64'),
      ClientToken: 'launch-1',
      TagSpecifications: [
        { ResourceType: 'instance', Tags: [{ Key: 'wakame:cluster', Value: 'demo' }, { Key: 'Name', Value: 'node-2 <&"\'>' }] },
        { ResourceType: 'volume', Tags: [{ Key: 'wakame:cluster', Value: 'demo' }] }
      ]
    }))
    expect(out.ReservationId).toMatch(/^r-0[0-9a-f]{16}$/)
    const inst = out.Instances?.[0]
    expect(inst).toMatchObject({
      State: { Name: 'pending', Code: 0 },
      ImageId: AMI,
      InstanceType: 'm5.large',
      SubnetId: SUBNET_B,
      VpcId: 'vpc-0a00000000000000a',
      PrivateIpAddress: '127.0.2.10',
      Placement: { AvailabilityZone: 'us-east-1b' },
      SecurityGroups: [{ GroupId: 'sg-0def000000000001', GroupName: 'default' }],
      IamInstanceProfile: { Arn: PROFILE },
      MetadataOptions: { HttpTokens: 'required' },
      ClientToken: 'launch-1'
    })
    expect(inst?.InstanceId).toMatch(/^i-0[0-9a-f]{16}$/)
    expect(inst?.LaunchTime).toBeInstanceOf(Date)
    expect(inst?.Tags).toEqual(expect.arrayContaining([{ Key: 'wakame:cluster', Value: 'demo' }, { Key: 'Name', Value: 'node-2 <&"\'>' }]))
    expect(inst?.NetworkInterfaces?.[0]).toMatchObject({ PrivateIpAddress: '127.0.2.10', SubnetId: SUBNET_B, Groups: [{ GroupId: 'sg-0def000000000001' }] })
    const id = inst?.InstanceId ?? ''
    expect((await describeOne(ec2, id)).State?.Name).toBe('pending')

    const running = await waitFor('running', async () => { const i = await describeOne(ec2, id); return i.State?.Name === 'running' && i })
    expect(running.State?.Code).toBe(16)
    expect(running.BlockDeviceMappings?.[0]).toMatchObject({ DeviceName: '/dev/xvda', Ebs: { Status: 'attached', DeleteOnTermination: true } })
    await waitFor('onBoot', () => booted.length === 1)
    expect(booted[0]).toMatchObject({ instanceId: id, privateIp: '127.0.2.10', availabilityZone: 'us-east-1b', userData, hypervisor: 'nitro', state: 'running' })
    expect(booted[0]?.imdsEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    // The volume tag specification went to the root volume.
    expect(fake.volumes()).toMatchObject([{ root: true, state: 'in-use', tags: { 'wakame:cluster': 'demo' }, attachment: { instanceId: id, device: '/dev/xvda' } }])
    // The call log has the flattened parameters as the SDK sent them.
    expect(fake.calls('RunInstances')[0]?.params).toMatchObject({ 'TagSpecification.1.Tag.1.Key': 'wakame:cluster', 'SecurityGroupId.1': 'sg-0def000000000001', ClientToken: 'launch-1' })
  })

  it('ClientToken: the same token and parameters answer the original instance (even terminated); other parameters, IdempotentParameterMismatch', async () => {
    const fake = await h.start({ bootDelayMs: 10, shutdownDelayMs: 10 })
    const ec2 = h.client(fake)
    const a = await ec2.send(run({ ClientToken: 'tok-1' }))
    const b = await ec2.send(run({ ClientToken: 'tok-1' }))
    const id = a.Instances?.[0]?.InstanceId ?? ''
    expect(b.ReservationId).toBe(a.ReservationId)
    expect(b.Instances?.map((i) => i.InstanceId)).toEqual([id])
    expect(fake.instances()).toHaveLength(1)

    await expect(ec2.send(run({ ClientToken: 'tok-1', InstanceType: 'm5.xlarge' })))
      .rejects.toMatchObject({ name: 'IdempotentParameterMismatch', $metadata: { httpStatusCode: 400 } })

    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }))
    await waitFor('terminated', () => fake.instance(id)?.state === 'terminated')
    const c = await ec2.send(run({ ClientToken: 'tok-1' }))
    expect(c.Instances?.[0]).toMatchObject({ InstanceId: id, State: { Name: 'terminated' } })
    expect(fake.instances()).toHaveLength(1)

    // Without a token the SDK makes one per call: two calls, two instances.
    await ec2.send(run())
    await ec2.send(run())
    expect(fake.instances()).toHaveLength(3)
    // MaxCount > 1: one reservation (the terminated instance's .10 was reused above).
    const two = await ec2.send(run({ MaxCount: 2 }))
    expect(two.Instances?.map((i) => [i.AmiLaunchIndex, i.PrivateIpAddress])).toEqual([[0, '127.0.1.12'], [1, '127.0.1.13']])
  })

  it('a RunInstances whose answer is lost (500 after it ran) is retried by the SDK with the same token: one instance', async () => {
    const fake = await h.start({ bootDelayMs: 10 })
    const ec2 = h.client(fake)
    fake.faults.internalError('RunInstances', 1, { afterExecute: true })
    const out = await ec2.send(run())
    expect(out.$metadata.attempts).toBe(2)
    expect(fake.instances().map((i) => i.instanceId)).toEqual([out.Instances?.[0]?.InstanceId])
    const calls = fake.calls('RunInstances')
    expect(calls.map((c) => c.outcome)).toEqual(['InternalError', 'ok'])
    expect(calls[0]?.params.ClientToken).toBe(calls[1]?.params.ClientToken)
  })

  it('eventual consistency: a new id answers InvalidInstanceID.NotFound during the window (manual clock); tokens expire after retention', async () => {
    const clock = new ManualClock()
    const fake = await h.start({ clock, notFoundWindowMs: 20_000, bootDelayMs: 300, shutdownDelayMs: 100, clientTokenRetentionMs: 60_000 })
    const ec2 = h.client(fake, { maxAttempts: 1 })
    const out = await ec2.send(run({ ClientToken: 'adopt-me', TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'wakame:cluster', Value: 'demo' }] }] }))
    const id = out.Instances?.[0]?.InstanceId ?? ''
    expect(out.Instances?.[0]?.LaunchTime?.toISOString()).toBe('2025-01-01T00:00:00.000Z')
    const notFound = { name: 'InvalidInstanceID.NotFound', message: `The instance ID '${id}' does not exist` }
    await expect(ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).rejects.toMatchObject(notFound)
    await expect(ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'k', Value: 'v' }] }))).rejects.toMatchObject(notFound)
    await expect(ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }))).rejects.toMatchObject(notFound)
    expect(await ids(ec2, [{ Name: 'tag:wakame:cluster', Values: ['demo'] }])).toEqual([])
    // The same token finds it even while it is not visible (how a rerun adopts it).
    expect((await ec2.send(run({ ClientToken: 'adopt-me', TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'wakame:cluster', Value: 'demo' }] }] }))).Instances?.[0]?.InstanceId).toBe(id)
    clock.advance(19_999)
    await expect(ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).rejects.toMatchObject(notFound)
    clock.advance(1)
    expect((await describeOne(ec2, id)).State?.Name).toBe('running')
    expect(await ids(ec2, [{ Name: 'tag:wakame:cluster', Values: ['demo'] }])).toEqual([id])
    await expect(ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-nothex'] }))).rejects.toMatchObject({ name: 'InvalidInstanceID.Malformed' })

    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }))
    clock.advance(100)
    await fake.settled()
    expect(fake.instance(id)?.state).toBe('terminated')
    clock.advance(60_001) // past the token's retention: the same token launches anew
    const again = await ec2.send(run({ ClientToken: 'adopt-me', TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'wakame:cluster', Value: 'demo' }] }] }))
    expect(again.Instances?.[0]?.InstanceId).not.toBe(id)
  })

  it('TerminateInstances: shutting-down, then terminated after onTerminate; the address and IMDS are released', async () => {
    const terminated: string[] = []
    const fake = await h.start({ bootDelayMs: 10, shutdownDelayMs: 30, onTerminate: async (i) => { terminated.push(i.instanceId) } })
    const ec2 = h.client(fake)
    const id = (await ec2.send(run())).Instances?.[0]?.InstanceId ?? ''
    await waitFor('running', () => fake.instance(id)?.state === 'running')
    const imds = fake.imdsFor(id).endpoint
    const t = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }))
    expect(t.TerminatingInstances).toEqual([{ InstanceId: id, PreviousState: { Name: 'running', Code: 16 }, CurrentState: { Name: 'shutting-down', Code: 32 } }])
    const gone = await waitFor('terminated', async () => { const i = await describeOne(ec2, id); return i.State?.Name === 'terminated' && i })
    expect(gone).toMatchObject({ StateReason: { Code: 'Client.UserInitiatedShutdown' }, State: { Code: 48 } })
    expect(gone.PrivateIpAddress).toBeUndefined()
    expect(terminated).toEqual([id])
    expect(await ids(ec2, [{ Name: 'instance-state-name', Values: ['terminated'] }])).toEqual([id])
    await fake.settled()
    await expect(fetch(`${imds}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })).rejects.toThrow()
    // Its private address is free again.
    expect((await ec2.send(run())).Instances?.[0]?.PrivateIpAddress).toBe('127.0.1.10')
    await expect(ec2.send(new TerminateInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })))
      .rejects.toMatchObject({ name: 'InvalidInstanceID.NotFound' })
    expect(fake.hookErrors()).toEqual([])
  })

  it('close() runs onTerminate for every booted instance still alive (so daemons started by onBoot stop)', async () => {
    const stopped: string[] = []
    const fake = await h.start({ bootDelayMs: 10, onBoot: () => {}, onTerminate: (i) => { stopped.push(i.instanceId) } })
    const first = await fake.addRunningInstance()
    const ec2 = h.client(fake)
    const launched = (await ec2.send(run())).Instances?.[0]?.InstanceId ?? ''
    await waitFor('running', () => fake.instance(launched)?.state === 'running')
    await fake.close()
    expect(stopped.sort()).toEqual([first.instanceId, launched].sort())
  })
})

describe('faults', () => {
  it('throttling: with maxAttempts 1 the SDK surfaces RequestLimitExceeded (503); its default retry gets through 2 throttles', async () => {
    const fake = await h.start()
    const once = h.client(fake, { maxAttempts: 1 })
    fake.faults.throttle('DescribeInstances', 1)
    await expect(once.send(new DescribeInstancesCommand({}))).rejects.toMatchObject({ name: 'RequestLimitExceeded', $metadata: { httpStatusCode: 503 } })
    await once.send(new DescribeInstancesCommand({}))

    const retrying = h.client(fake)
    fake.faults.throttle('DescribeInstances', 2)
    fake.faults.throttle('DescribeSubnets', 5)
    const out = await retrying.send(new DescribeInstancesCommand({}))
    expect(out.$metadata.attempts).toBe(3)
    expect(fake.calls('DescribeInstances').map((c) => c.outcome)).toEqual(['RequestLimitExceeded', 'ok', 'RequestLimitExceeded', 'RequestLimitExceeded', 'ok'])
    fake.faults.clear()
    await once.send(new DescribeSubnetsCommand({}))

    // A token bucket shared by all actions: a burst of 2, then throttled.
    fake.faults.rateLimit('*', { burst: 2, perSecond: 0.01 })
    await once.send(new DescribeSubnetsCommand({}))
    await once.send(new DescribeInstancesCommand({}))
    await expect(once.send(new DescribeSubnetsCommand({}))).rejects.toMatchObject({ name: 'RequestLimitExceeded' })
  })

  it('delays answers on the fake clock, for the chosen action only', async () => {
    const clock = new ManualClock()
    const fake = await h.start({ clock })
    const ec2 = h.client(fake, { maxAttempts: 1 })
    fake.faults.delay('DescribeSubnets', 5_000)
    let answered = false
    const slow = ec2.send(new DescribeSubnetsCommand({})).then((r) => { answered = true; return r })
    await waitFor('the call to reach the fake', () => fake.calls('DescribeSubnets').length === 1)
    await ec2.send(new DescribeInstancesCommand({}))
    expect(answered).toBe(false)
    expect(clock.advanceToNext()).toBe(true)
    expect(clock.now()).toBe(Date.parse('2025-01-01T00:00:05.000Z'))
    expect((await slow).Subnets).toHaveLength(2)
    expect(clock.advanceToNext()).toBe(false)
  })

  it('InsufficientInstanceCapacity in one subnet or AZ; nothing is launched', async () => {
    const fake = await h.start({ bootDelayMs: 10 })
    const ec2 = h.client(fake, { maxAttempts: 1 })
    fake.faults.insufficientCapacity(1, { subnetId: SUBNET_A })
    await expect(ec2.send(run({ SubnetId: SUBNET_A }))).rejects.toMatchObject({
      name: 'InsufficientInstanceCapacity', $metadata: { httpStatusCode: 500 }, message: expect.stringContaining('(us-east-1a)')
    })
    expect(fake.instances()).toEqual([])
    expect((await ec2.send(run({ SubnetId: SUBNET_B }))).Instances?.[0]?.Placement?.AvailabilityZone).toBe('us-east-1b')
    expect((await ec2.send(run({ SubnetId: SUBNET_A }))).Instances?.[0]?.Placement?.AvailabilityZone).toBe('us-east-1a')
    fake.faults.insufficientCapacity(-1, { availabilityZone: 'us-east-1b' })
    await expect(ec2.send(run({ NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: SUBNET_B }] }))).rejects.toMatchObject({ name: 'InsufficientInstanceCapacity' })
    await expect(ec2.send(run({ SubnetId: SUBNET_B }))).rejects.toMatchObject({ name: 'InsufficientInstanceCapacity' })
    expect(fake.instances()).toHaveLength(2)
  })

  it('unknown actions answer InvalidAction and are counted; unsigned calls AuthFailure; the admin endpoint drives faults', async () => {
    const fake = await h.start()
    const ec2 = h.client(fake, { maxAttempts: 1 })
    await expect(ec2.send(new DescribeKeyPairsCommand({}))).rejects.toMatchObject({ name: 'InvalidAction', message: expect.stringContaining('DescribeKeyPairs') })
    expect(fake.unknownActions().map((c) => c.action)).toEqual(['DescribeKeyPairs'])

    const unsigned = await fetch(fake.endpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'Action=DescribeInstances&Version=2016-11-15' })
    expect(unsigned.status).toBe(401)
    expect(await unsigned.text()).toContain('<Code>AuthFailure</Code>')

    const post = async (body: unknown): Promise<Response> => await fetch(`${fake.endpoint}/__fake/faults`, { method: 'POST', body: JSON.stringify(body) })
    expect((await post([{ op: 'throttle', action: 'DescribeSubnets', count: 1 }, { op: 'notFoundWindow', ms: 5 }])).status).toBe(200)
    expect(fake.faults.notFoundWindowMs).toBe(5)
    await expect(ec2.send(new DescribeSubnetsCommand({}))).rejects.toMatchObject({ name: 'RequestLimitExceeded' })
    await ec2.send(new DescribeSubnetsCommand({}))
    const bad = await post({ op: 'explode' })
    expect(bad.status).toBe(400)
    expect(await bad.json()).toEqual({ error: 'unknown op "explode"' })
    const calls = await (await fetch(`${fake.endpoint}/__fake/calls`)).json() as Array<{ action: string, outcome: string }>
    expect(calls.filter((c) => c.action === 'DescribeSubnets').map((c) => c.outcome)).toEqual(['RequestLimitExceeded', 'ok'])
  })
})

describe('describe calls', () => {
  it('DescribeInstances pages with MaxResults/NextToken (the SDK paginator too) and checks its limits', async () => {
    const fake = await h.start()
    const all: string[] = []
    for (let i = 0; i < 7; i++) all.push((await fake.addRunningInstance({ tags: { 'wakame:cluster': 'demo' } })).instanceId)
    const ec2 = h.client(fake, { maxAttempts: 1 })
    const count = (o: { Reservations?: Array<{ Instances?: unknown[] }> }): number => (o.Reservations ?? []).reduce((n, r) => n + (r.Instances?.length ?? 0), 0)
    const p1 = await ec2.send(new DescribeInstancesCommand({ MaxResults: 5 }))
    expect(count(p1)).toBe(5)
    expect(p1.NextToken).toBeTruthy()
    const p2 = await ec2.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: p1.NextToken }))
    expect(count(p2)).toBe(2)
    expect(p2.NextToken).toBeUndefined()

    const seen: string[] = []
    for await (const page of paginateDescribeInstances({ client: ec2, pageSize: 5 }, { Filters: [{ Name: 'tag:wakame:cluster', Values: ['demo'] }] })) {
      seen.push(...(page.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map((i) => i.InstanceId ?? '')))
    }
    expect(seen).toEqual(all)

    await expect(ec2.send(new DescribeInstancesCommand({ MaxResults: 3 }))).rejects.toMatchObject({ name: 'InvalidParameterValue' })
    await expect(ec2.send(new DescribeInstancesCommand({ MaxResults: 5, InstanceIds: [all[0] ?? ''] }))).rejects.toMatchObject({ name: 'InvalidParameterCombination' })
    await expect(ec2.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: 'garbage' }))).rejects.toMatchObject({ name: 'InvalidPaginationToken' })
    await expect(ec2.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: p1.NextToken, Filters: [{ Name: 'instance-state-name', Values: ['running'] }] })))
      .rejects.toMatchObject({ name: 'InvalidPaginationToken' })
  })

  it('DescribeInstances filters: tag:K, tag-key, instance-state-name, private-ip-address, wildcards, AND/OR', async () => {
    const fake = await h.start()
    const a = await fake.addRunningInstance({ tags: { 'wakame:cluster': 'demo', role: 'db' } })
    const b = await fake.addRunningInstance({ tags: { 'wakame:cluster': 'other' } })
    const c = await fake.addRunningInstance({ subnetId: SUBNET_B, privateIp: '127.0.2.77', tags: { 'wakame:cluster': 'demo' } })
    const ec2 = h.client(fake, { maxAttempts: 1 })
    expect(await ids(ec2, [{ Name: 'tag:wakame:cluster', Values: ['demo'] }])).toEqual([a.instanceId, c.instanceId])
    expect(await ids(ec2, [{ Name: 'tag:wakame:cluster', Values: ['demo', 'other'] }])).toHaveLength(3)
    expect(await ids(ec2, [{ Name: 'tag:wakame:cluster', Values: ['d?m*'] }])).toEqual([a.instanceId, c.instanceId])
    expect(await ids(ec2, [{ Name: 'tag-key', Values: ['role'] }])).toEqual([a.instanceId])
    expect(await ids(ec2, [{ Name: 'instance-state-name', Values: ['pending', 'running'] }])).toHaveLength(3)
    expect(await ids(ec2, [{ Name: 'instance-state-name', Values: ['pending'] }])).toEqual([])
    expect(await ids(ec2, [{ Name: 'private-ip-address', Values: ['127.0.2.77'] }])).toEqual([c.instanceId])
    expect(await ids(ec2, [{ Name: 'tag:wakame:cluster', Values: ['demo'] }, { Name: 'availability-zone', Values: ['us-east-1b'] }])).toEqual([c.instanceId])
    expect(await ids(ec2, [{ Name: 'instance-id', Values: [b.instanceId] }])).toEqual([b.instanceId])
    await expect(ids(ec2, [{ Name: 'flavour', Values: ['x'] }])).rejects.toMatchObject({ name: 'InvalidParameterValue', message: "The filter 'flavour' is invalid" })
  })

  it('subnets, security groups, zones, images; CreateTags / DescribeTags / DeleteTags', async () => {
    const fake = await h.start({ images: [{ imageId: AMI, name: 'wakame-node-1' }] })
    const ec2 = h.client(fake, { maxAttempts: 1 })
    const subnets = await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'availability-zone', Values: ['us-east-1b'] }] }))
    expect(subnets.Subnets).toMatchObject([{ SubnetId: SUBNET_B, VpcId: 'vpc-0a00000000000000a', CidrBlock: '127.0.2.0/24', AvailabilityZoneId: 'use1-az2', AvailableIpAddressCount: 241 }])
    await expect(ec2.send(new DescribeSubnetsCommand({ SubnetIds: ['subnet-0ffffffffffffffff'] }))).rejects.toMatchObject({ name: 'InvalidSubnetID.NotFound' })
    expect((await ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups).toMatchObject([{ GroupId: 'sg-0def000000000001', GroupName: 'default' }])
    const zones = await ec2.send(new DescribeAvailabilityZonesCommand({}))
    expect(zones.AvailabilityZones?.map((z) => [z.ZoneName, z.ZoneId, z.State])).toEqual([['us-east-1a', 'use1-az1', 'available'], ['us-east-1b', 'use1-az2', 'available']])
    expect((await ec2.send(new DescribeImagesCommand({ ImageIds: [AMI] }))).Images).toMatchObject([{ ImageId: AMI, Name: 'wakame-node-1', State: 'available' }])
    await expect(ec2.send(run({ ImageId: 'ami-0fffffffffffffff0' }))).rejects.toMatchObject({ name: 'InvalidAMIID.NotFound' })

    const i = await fake.addRunningInstance()
    await ec2.send(new CreateTagsCommand({ Resources: [i.instanceId, SUBNET_A], Tags: [{ Key: 'wakame:cluster', Value: 'demo' }, { Key: 'x', Value: '1' }] }))
    const tags = await ec2.send(new DescribeTagsCommand({ Filters: [{ Name: 'key', Values: ['wakame:cluster'] }] }))
    expect(tags.Tags).toEqual([
      { ResourceId: i.instanceId, ResourceType: 'instance', Key: 'wakame:cluster', Value: 'demo' },
      { ResourceId: SUBNET_A, ResourceType: 'subnet', Key: 'wakame:cluster', Value: 'demo' }
    ])
    await ec2.send(new DeleteTagsCommand({ Resources: [i.instanceId], Tags: [{ Key: 'x' }] }))
    expect(fake.instance(i.instanceId)?.tags).toEqual({ 'wakame:cluster': 'demo' })
    await expect(ec2.send(new CreateTagsCommand({ Resources: [i.instanceId], Tags: [{ Key: 'aws:reserved', Value: '1' }] }))).rejects.toMatchObject({ name: 'InvalidParameterValue' })
  })
})
