// The EC2 provider against the fake EC2 endpoint (real SDK, real Query protocol): launches, their
// idempotency, eventual consistency (case 05), throttling (case 06), capacity, terminate.
// Time is the fake's manual clock: the provider's waits and backoff advance it.
import { RunInstancesCommand } from '@aws-sdk/client-ec2'
import { afterEach, describe, expect, it } from 'vitest'
import { realClock } from '../fake-ec2/server.js'
import { FakeEc2Harness } from '../fake-ec2/testing.js'
import { realClock as realApiClock } from '../../src/providers/ec2/api.js'
import { Ec2ProviderError } from '../../src/providers/ec2/errors.js'
import { deriveToken, launchOrder } from '../../src/providers/ec2/launch.js'
import { parseUserData } from '../../src/providers/ec2/userdata.js'
import { launchToken } from '../../src/core/cloud-plan.js'
import { AMI, CLUSTER, PROFILE, SUBNET_A, SUBNET_B, taggedLive, userData, world } from '../fixtures/ec2/world.js'

const h = new FakeEc2Harness()
afterEach(async () => { await h.cleanup() })

const req = (id: string, over: Record<string, unknown> = {}) => ({ token: launchToken(CLUSTER, 3, id), decisionId: id, reason: 'min_nodes', bootstrap: ['127.0.1.10:7610'], ...over })

describe('launch', () => {
  it('sends every parameter: own AMI, IMDSv2 required, tags on create, base64 user-data, ClientToken = the decision token', async () => {
    const w = await world(h)
    const vm = await w.provider.launch(req('l-1'))
    expect(vm).toMatchObject({ state: 'pending', launch: 'l-1', zone: 'us-east-1a' })
    expect(vm.id).toMatch(/^i-/)
    expect(vm.ip).toBe(w.fake.instance(vm.id)?.privateIp)
    const calls = w.fake.calls('RunInstances')
    expect(calls).toHaveLength(1)
    const p = calls[0]!.params
    expect(p).toMatchObject({
      ImageId: AMI, // the node's own image (from IMDS), not configured
      InstanceType: 'm5.large',
      MinCount: '1',
      MaxCount: '1',
      SubnetId: SUBNET_A,
      'SecurityGroupId.1': w.self.securityGroupIds[0],
      'IamInstanceProfile.Arn': PROFILE,
      'MetadataOptions.HttpTokens': 'required',
      'MetadataOptions.HttpEndpoint': 'enabled',
      ClientToken: launchToken(CLUSTER, 3, 'l-1'),
      'TagSpecification.1.ResourceType': 'instance'
    })
    const inst = w.fake.instance(vm.id)!
    expect(inst.tags).toEqual({ 'wakame:cluster': CLUSTER, 'wakame:launch': 'l-1', Name: `wakame-${CLUSTER}` })
    expect(inst.httpTokens).toBe('required')
    expect(parseUserData(Buffer.from(p.UserData!, 'base64').toString('utf8'))).toEqual({
      version: 1, cluster: CLUSTER, bootstrap: ['127.0.1.10:7610'], bootstrap_expect: 0, psk: { file: '/etc/wakame/psk' }, admin_token: { file: '/etc/wakame/token' }, launch: 'l-1'
    })
    // Tagged at creation: no CreateTags afterwards, root volume tagged too.
    expect(w.fake.calls('CreateTags')).toHaveLength(0)
    expect(w.fake.volumes().find(v => v.attachment?.instanceId === vm.id)?.tags).toMatchObject({ 'wakame:cluster': CLUSTER })
    expect((await w.provider.list()).map(v => v.id).sort()).toEqual(taggedLive(w.fake))
  })

  it('the same token twice, and from a new leader, makes one instance; an answer lost after the launch is retried with the same token', async () => {
    const w = await w0()
    const a = await w.provider.launch(req('l-1'))
    const b = await w.provider.launch(req('l-1'))
    const c = await w.make().launch(req('l-1'))
    expect([b.id, c.id]).toEqual([a.id, a.id])
    w.fake.faults.internalError('RunInstances', 1, { afterExecute: true })
    const d = await w.provider.launch(req('l-2'))
    const runs = w.fake.calls('RunInstances').filter(r => r.params.ClientToken === launchToken(CLUSTER, 3, 'l-2'))
    expect(runs.map(r => r.outcome)).toEqual(['InternalError', 'ok'])
    expect(taggedLive(w.fake)).toEqual([w.first.instanceId, a.id, d.id].sort())
  })

  it('changed parameters: a token already used by someone else gets a derived token and no error; our live instance is adopted, not doubled', async () => {
    const w = await w0()
    // A cluster of the same name, earlier, used this token with other parameters (and no tag of ours).
    const token = launchToken(CLUSTER, 3, 'l-1')
    await w.client.send(new RunInstancesCommand({ ImageId: 'ami-0fffffffffffffff0', InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, ClientToken: token }))
    const vm = await w.provider.launch(req('l-1'))
    const runs = w.fake.calls('RunInstances').slice(1)
    expect(runs.map(r => r.outcome)).toEqual(['IdempotentParameterMismatch', 'ok'])
    expect(runs[1]!.params.ClientToken).not.toBe(token)
    expect(runs[1]!.params.ClientToken!.length).toBeLessThanOrEqual(64)
    expect(w.fake.instance(vm.id)?.tags['wakame:launch']).toBe('l-1')
    // Again (another leader, same changed request): the derived token is the same, nothing new.
    expect((await w.make().launch(req('l-1'))).id).toBe(vm.id)

    // A new leader on another image redoes a launch while the first VM is not visible yet (case 05):
    // the token is known with other parameters, the VM it made shows up, and is adopted.
    w.fake.faults.setNotFoundWindow(20_000)
    const first = await w.provider.launch(req('l-2'))
    const upgraded = w.make({ self: { ...w.self, amiId: 'ami-0eeeeeeeeeeeeeee0' } })
    expect((await upgraded.launch(req('l-2'))).id).toBe(first.id)
    expect(taggedLive(w.fake)).toEqual([w.first.instanceId, vm.id, first.id].sort())
  })

  it('case 05: NotFound for 20 s after RunInstances is "not visible yet"; a failed first attempt and a rerun give exactly the instances asked for', async () => {
    const w = await world(h, { fake: { notFoundWindowMs: 20_000 }, provider: { retry: { maxAttempts: 3, baseMs: 200, maxMs: 5_000 } } })
    const a = await w.provider.launch(req('l-1'))
    // A follow-up call during the window waits for the instance instead of failing or calling it unknown.
    const t0 = w.clock.now()
    await w.provider.attachVolume('db', 'db', a.id)
    expect(w.clock.now() - t0).toBeGreaterThanOrEqual(20_000)
    expect(w.fake.calls('DescribeInstances').some(c => c.outcome === 'InvalidInstanceID.NotFound')).toBe(true)

    // The first attempt at l-2 and l-3 fails: each answer is lost every time (the instances exist).
    w.fake.faults.internalError('RunInstances', 6, { afterExecute: true })
    const failed = await Promise.allSettled([w.provider.launch(req('l-2')), w.provider.launch(req('l-3'))])
    expect(failed.map(f => f.status)).toEqual(['rejected', 'rejected'])
    expect(failed.map(f => ((f as PromiseRejectedResult).reason as Ec2ProviderError).retryable)).toEqual([true, true])
    expect(w.fake.instances().filter(i => i.tags['wakame:cluster'] === CLUSTER)).toHaveLength(4) // first + 3
    // The rerun, by a new leader while they are still invisible, adopts them by token.
    const rerun = w.make()
    const again = await Promise.all(['l-1', 'l-2', 'l-3'].map(async id => await rerun.launch(req(id))))
    w.clock.advance(20_000)
    const listed = (await rerun.list()).filter(v => v.id !== w.first.instanceId).map(v => v.id).sort()
    expect(listed).toEqual(again.map(v => v.id).sort())
    expect(listed).toHaveLength(3)
    expect((await rerun.list()).map(v => v.id).sort()).toEqual(taggedLive(w.fake)) // none untracked
  })

  it('case 06: ten throttled answers in a row are ridden out with exponential backoff and jitter; nothing left untracked', async () => {
    const w = await w0()
    w.fake.faults.throttle('DescribeInstances', 10)
    const vms = []
    for (let i = 1; i <= 5; i++) vms.push(await w.provider.launch(req(`l-${i}`)))
    const described = w.fake.calls('DescribeInstances')
    expect(described.slice(0, 10).every(c => c.outcome === 'RequestLimitExceeded')).toBe(true)
    // The pauses grow (full jitter below a doubling cap of 200 ms · 2^n, at most 5 s).
    const pauses = w.time.slept.slice(0, 10)
    pauses.forEach((ms, n) => expect(ms).toBeLessThanOrEqual(Math.min(5_000, 200 * 2 ** n)))
    expect(Math.max(...pauses.slice(5))).toBeGreaterThan(Math.max(...pauses.slice(0, 3)))
    expect((await w.provider.list()).map(v => v.id).sort()).toEqual(taggedLive(w.fake))

    // The same during shutdown.
    w.fake.faults.throttle('DescribeInstances', 10)
    for (const vm of vms) await w.provider.terminate(vm.id, { ip: vm.ip })
    expect(taggedLive(w.fake)).toEqual([w.first.instanceId])
  })

  it('one shared rate limit keeps a burst of launches under the account limit (no RequestLimitExceeded at all)', async () => {
    // Real time here: with the manual clock, waiters advance time while requests are in flight.
    // The account's margin over ours (5 calls) absorbs up to 0.5 s of request latency jitter.
    const w = await world(h, { fake: { clock: realClock }, provider: { clock: realApiClock, rateLimit: { burst: 5, perSecond: 10 } } })
    w.fake.faults.rateLimit('*', { burst: 10, perSecond: 10 })
    const launchAll = async (p: typeof w.provider, from: number): Promise<string[]> =>
      (await Promise.all(Array.from({ length: 8 }, async (_x, i) => await p.launch(req(`l-${from + i}`))))).map(v => v.id)
    expect(new Set(await launchAll(w.provider, 1)).size).toBe(8)
    expect(w.fake.calls().filter(c => c.outcome === 'RequestLimitExceeded')).toEqual([])
    // Without it (a limit above the account's), the same burst is throttled — and still completes.
    w.fake.faults.rateLimit('*', { burst: 10, perSecond: 10 }) // the account's bucket full again
    const greedy = w.make({ clock: realApiClock, rateLimit: { burst: 100, perSecond: 100 }, retry: { maxAttempts: 12, baseMs: 50, maxMs: 1_000 } })
    expect(new Set(await launchAll(greedy, 11)).size).toBe(8)
    expect(w.fake.calls().filter(c => c.outcome === 'RequestLimitExceeded').length).toBeGreaterThan(0)
  })

  it('capacity: InsufficientInstanceCapacity in one subnet lands in the next with a derived token; all full is definitive', async () => {
    const w = await world(h, { provider: { launch: { instanceType: 'm5.large', subnetIds: [SUBNET_A, SUBNET_B], userData } } })
    const order = launchOrder('l-1', [SUBNET_A, SUBNET_B])
    w.fake.faults.insufficientCapacity(1, { subnetId: order[0] })
    const vm = await w.provider.launch(req('l-1'))
    expect(w.fake.instance(vm.id)?.subnetId).toBe(order[1])
    const runs = w.fake.calls('RunInstances')
    expect(runs.map(r => [r.params.SubnetId, r.outcome])).toEqual([[order[0], 'InsufficientInstanceCapacity'], [order[1], 'ok']])
    expect(runs[0]!.params.ClientToken).toBe(req('l-1').token)
    expect(runs[1]!.params.ClientToken).toBe(deriveToken(req('l-1').token, `subnet:${order[1]!}`))
    // A rerun by a new leader, capacity back everywhere: its first subnet's token made nothing, but
    // the tag lookup finds the instance before any launch.
    expect((await w.make().launch(req('l-1'))).id).toBe(vm.id)

    // Zones restrict the subnets.
    const inB = await w.provider.launch(req('l-2', { zones: ['us-east-1b'] }))
    expect(w.fake.instance(inB.id)?.subnetId).toBe(SUBNET_B)
    await expect(w.provider.launch(req('l-3', { zones: ['us-east-1c'] }))).rejects.toMatchObject({ code: 'EC2_NO_SUBNET', retryable: false })

    w.fake.faults.insufficientCapacity(2)
    const err = await w.provider.launch(req('l-4')).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Ec2ProviderError)
    expect(err).toMatchObject({ code: 'EC2_NO_CAPACITY', retryable: false })
    expect(String((err as Error).message)).toMatch(/subnet-0a.*subnet-0b|subnet-0b.*subnet-0a/)
  })

  it('spend guard: more than maxLaunchesPerMinute distinct launches is a retryable "launch rate limit"; retries of one are free', async () => {
    const w = await world(h, { provider: { maxLaunchesPerMinute: 2 } })
    await w.provider.launch(req('l-1'))
    await w.provider.launch(req('l-2'))
    await expect(w.provider.launch(req('l-3'))).rejects.toMatchObject({ code: 'EC2_LAUNCH_RATE', retryable: true, message: expect.stringMatching(/launch rate limit/) })
    await w.provider.launch(req('l-2')) // adopted, not counted
    w.clock.advance(60_000)
    await w.provider.launch(req('l-3'))
    expect(w.fake.calls('RunInstances').filter(c => c.outcome === 'ok')).toHaveLength(3)
  })

  it('list pages through DescribeInstances and shows only this cluster\'s live instances', async () => {
    const w = await world(h, { provider: { pageSize: 5 } })
    for (let i = 1; i <= 7; i++) await w.provider.launch(req(`l-${i}`))
    await w.fake.addRunningInstance({ tags: { 'wakame:cluster': 'other' } })
    w.clock.advance(1_000)
    const list = await w.provider.list()
    expect(list).toHaveLength(8)
    expect(list.filter(v => v.launch !== undefined)).toHaveLength(7)
    expect(list.every(v => v.state === 'running')).toBe(true)
    expect(w.fake.calls('DescribeInstances').filter(c => c.params.NextToken !== undefined).length).toBeGreaterThanOrEqual(1)
  })
})

describe('terminate', () => {
  it('re-reads the VM: refuses another address, a VM without our tag, and this node; gone or unknown is success', async () => {
    const w = await w0()
    const vm = await w.provider.launch(req('l-1'))
    await expect(w.provider.terminate(vm.id, { ip: '127.0.9.9' })).rejects.toMatchObject({ code: 'EC2_WRONG_VM', retryable: false })
    const stranger = await w.fake.addRunningInstance({ tags: { 'wakame:cluster': 'other' } })
    await expect(w.provider.terminate(stranger.instanceId)).rejects.toMatchObject({ code: 'EC2_NOT_OURS', retryable: false })
    const untagged = await w.fake.addRunningInstance({})
    await expect(w.provider.terminate(untagged.instanceId)).rejects.toMatchObject({ code: 'EC2_NOT_OURS' })
    await expect(w.provider.terminate(w.first.instanceId)).rejects.toMatchObject({ code: 'EC2_SELF', retryable: false })
    expect(w.fake.calls('TerminateInstances')).toHaveLength(0)

    await w.provider.terminate(vm.id, { ip: vm.ip })
    expect(['shutting-down', 'terminated']).toContain(w.fake.instance(vm.id)?.state)
    await w.provider.terminate(vm.id, { ip: vm.ip }) // again: success, no second call
    expect(w.fake.calls('TerminateInstances')).toHaveLength(1)
    await w.provider.terminate('i-0123456789abcdef0')
    await w.provider.terminate('vm-3')
    expect(w.fake.calls('TerminateInstances')).toHaveLength(1)
  })

  it('a VM launched a moment ago and not visible yet is waited for, not taken as unknown (case 05)', async () => {
    const w = await world(h, { fake: { notFoundWindowMs: 20_000 } })
    const vm = await w.provider.launch(req('l-1'))
    await w.provider.terminate(vm.id, { ip: vm.ip })
    expect(['shutting-down', 'terminated']).toContain(w.fake.instance(vm.id)?.state)
  })
})

async function w0 (): Promise<Awaited<ReturnType<typeof world>>> { return await world(h) }
