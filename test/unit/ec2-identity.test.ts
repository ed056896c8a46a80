// What a node learns about itself and its peers: IMDSv2 identity (and failing fast off EC2),
// interruption notices, discovery by tag — against the fake's per-instance IMDS and endpoint.
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { FakeEc2Harness } from '../fake-ec2/testing.js'
import { waitFor } from '../fake-ec2/testing.js'
import { Ec2Api } from '../../src/providers/ec2/api.js'
import { discoverPeers } from '../../src/providers/ec2/discovery.js'
import { NotOnEc2Error, readIdentity, readNotices, watchNotices } from '../../src/providers/ec2/identity.js'
import { Ec2SettingsSchema, bootEc2 } from '../../src/providers/ec2/setup.js'
import { parseUserData, renderUserData } from '../../src/providers/ec2/userdata.js'
import { launchToken } from '../../src/core/cloud-plan.js'
import { silentLogger } from '../../src/util/log.js'
import { AMI, CLUSTER, PROFILE, SUBNET_B } from '../fixtures/ec2/world.js'

const h = new FakeEc2Harness()
const servers: Server[] = []
const sockets: Socket[] = []
afterEach(async () => {
  await h.cleanup()
  for (const s of sockets.splice(0)) s.destroy()
  await Promise.all(servers.splice(0).map(async s => await new Promise(resolve => s.close(resolve))))
})

async function listen (onConnection: (s: Socket) => void): Promise<number> {
  const srv = createServer(s => { sockets.push(s); onConnection(s) })
  servers.push(srv)
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
  return (srv.address() as { port: number }).port
}

describe('identity (IMDSv2)', () => {
  it('reads everything the provider needs, from a token-only IMDS', async () => {
    const fake = await h.start()
    const ud = renderUserData({ cluster: CLUSTER, bootstrap_expect: 3, psk: { ssm: '/wakame/demo/psk' }, admin_token: { file: '/etc/wakame/token' } })
    const inst = await fake.addRunningInstance({ imageId: AMI, instanceType: 'c5.xlarge', subnetId: SUBNET_B, iamInstanceProfileArn: PROFILE, userData: ud, httpTokens: 'required' })
    const id = await readIdentity({ endpoint: fake.imdsFor(inst.instanceId).endpoint })
    expect(id).toEqual({
      instanceId: inst.instanceId,
      amiId: AMI,
      instanceType: 'c5.xlarge',
      zone: 'us-east-1b',
      region: 'us-east-1',
      privateIp: inst.privateIp,
      subnetId: SUBNET_B,
      securityGroupIds: inst.securityGroupIds,
      vpcId: inst.vpcId,
      instanceProfileArn: PROFILE,
      userData: ud
    })
    expect(parseUserData(id.userData!)).toMatchObject({ cluster: CLUSTER, bootstrap_expect: 3, psk: { ssm: '/wakame/demo/psk' } })
    // Without profile, user-data or public IP: those are simply absent.
    const bare = await fake.addRunningInstance({})
    const b = await readIdentity({ endpoint: fake.imdsFor(bare.instanceId).endpoint })
    expect(b.instanceProfileArn).toBeUndefined()
    expect(b.userData).toBeUndefined()
    expect(b.publicIp).toBeUndefined()
  })

  it('off EC2 (nothing listening) fails fast with a message saying what to do', async () => {
    const port = await listen(() => {})
    servers.pop()!.close() // the port is now closed
    const t0 = Date.now()
    const err = await readIdentity({ endpoint: `http://127.0.0.1:${port}` }).catch((e: unknown) => e)
    expect(Date.now() - t0).toBeLessThan(5_000)
    expect(err).toBeInstanceOf(NotOnEc2Error)
    expect(String((err as Error).message)).toMatch(new RegExp(`^not on EC2 \\(no instance metadata service at http://127\\.0\\.0\\.1:${port}: .*\\): set provider: local, or run on an EC2 instance`))
  })

  it('a metadata address that accepts connections and never answers also fails within 5 s', async () => {
    const port = await listen(() => {}) // accepts, reads nothing, answers nothing
    const t0 = Date.now()
    await expect(readIdentity({ endpoint: `http://127.0.0.1:${port}` })).rejects.toBeInstanceOf(NotOnEc2Error)
    expect(Date.now() - t0).toBeLessThan(5_000)
  })
})

describe('notices', () => {
  it('a spot interruption or a retirement ends the node (reported once); a reboot does not', async () => {
    const fake = await h.start()
    const inst = await fake.addRunningInstance({})
    const imds = fake.imdsFor(inst.instanceId)
    expect(await readNotices(imds)).toEqual([])
    fake.setMaintenanceEvents(inst.instanceId, [{ Code: 'system-reboot', Description: 'scheduled reboot', EventId: 'instance-event-1', NotBefore: '21 Jan 2025 09:00:43 GMT', State: 'active' }])
    expect(await readNotices(imds)).toEqual([])

    const reasons: string[] = []
    const watcher = watchNotices({ ...imds, intervalMs: 20, onNotice: r => reasons.push(r), logger: silentLogger() })
    try {
      fake.triggerSpotInterruption(inst.instanceId, { action: 'terminate', inMs: 120_000 })
      await waitFor('the spot notice', () => reasons.length >= 1)
      expect(reasons[0]).toMatch(/^spot interruption: terminate at \d{4}-\d\d-\d\dT/)
      fake.setMaintenanceEvents(inst.instanceId, [{ Code: 'instance-retirement', Description: 'The instance is running on degraded hardware', EventId: 'instance-event-2', NotBefore: '21 Jan 2025 09:00:43 GMT', State: 'active' }])
      await waitFor('the retirement notice', () => reasons.length >= 2)
      expect(reasons[1]).toMatch(/^scheduled maintenance: instance-retirement not before 21 Jan 2025/)
      const polls = watcher.polls()
      await waitFor('three more polls', () => watcher.polls() >= polls + 3)
      expect(reasons).toHaveLength(2) // still up, reported once each
      expect(fake.calls()).toHaveLength(0) // IMDS only, no EC2 API call
    } finally {
      watcher.stop()
    }
  })
})

describe('discovery', () => {
  it('finds the running instances of the cluster by tag, every page, except this one', async () => {
    const fake = await h.start()
    const tag = { 'wakame:cluster': CLUSTER }
    const self = await fake.addRunningInstance({ tags: tag })
    const peers = await Promise.all(Array.from({ length: 7 }, async () => await fake.addRunningInstance({ tags: tag })))
    await fake.addRunningInstance({ tags: { 'wakame:cluster': 'other' } })
    await fake.addRunningInstance({})
    fake.terminateInstance(peers[6]!.instanceId)
    const client = h.client(fake, { maxAttempts: 1 })
    fake.faults.throttle('DescribeInstances', 2) // ridden out by the shared retry policy
    const found = await discoverPeers(client, CLUSTER, self, { meshPort: 7610 })
    expect(found).toEqual(peers.slice(0, 6).map(p => `${p.privateIp}:7610`).sort())
    const api = new Ec2Api({ client, logger: silentLogger() })
    expect(await discoverPeers(api, CLUSTER, self)).toEqual(found)
  })
})

describe('boot with provider: ec2', () => {
  it('reads identity and join settings, signs with the instance role, launches from its own image, discovers peers', async () => {
    const fake = await h.start()
    const ud = renderUserData({ cluster: CLUSTER, bootstrap_expect: 3, psk: { file: '/etc/wakame/psk' }, admin_token: { file: '/etc/wakame/token' } })
    const inst = await fake.addRunningInstance({ imageId: AMI, instanceType: 'm5.large', iamInstanceProfileArn: PROFILE, userData: ud, tags: { 'wakame:cluster': CLUSTER } })
    const peer = await fake.addRunningInstance({ tags: { 'wakame:cluster': CLUSTER } })
    const imds = fake.imdsFor(inst.instanceId).endpoint
    // The SDK's default credentials chain reads the role's credentials from this instance's IMDS.
    const saved = { ...process.env }
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) delete process.env[k]
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds
    process.env.AWS_CONFIG_FILE = '/nonexistent'
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent'
    try {
      const boot = await bootEc2({
        settings: Ec2SettingsSchema.parse({ endpoint: fake.endpoint, imds_endpoint: imds }),
        dataDir: '/tmp/wakame-test-unused', meshPort: 7610, psk: { file: '/etc/wakame/psk' }, adminToken: { file: '/etc/wakame/token' }, logger: silentLogger()
      })
      expect(boot.cluster).toBe(CLUSTER)
      expect(boot.join).toMatchObject({ cluster: CLUSTER, bootstrap_expect: 3 })
      expect(await boot.discover()).toEqual([`${peer.privateIp}:7610`])
      const vm = await boot.provider.launch({ token: launchToken(CLUSTER, 1, 'l-1'), decisionId: 'l-1', reason: 'test', bootstrap: [] })
      expect(fake.instance(vm.id)).toMatchObject({ imageId: AMI, instanceType: 'm5.large', iamInstanceProfileArn: PROFILE })
      expect(fake.calls('RunInstances')[0]?.caller).toBe(inst.instanceId)
      boot.provider.close()
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k]
      Object.assign(process.env, saved)
    }
  })

  it('the ec2 config section is strict', () => {
    expect(Ec2SettingsSchema.parse({})).toMatchObject({ max_launches_per_minute: 10, volume_type: 'gp3', volume_encrypted: true, tags: {} })
    expect(() => Ec2SettingsSchema.parse({ subnets: ['subnet-xyz'] })).toThrow(/subnet-0123456789abcdef0/)
    expect(() => Ec2SettingsSchema.parse({ tags: { 'wakame:cluster': 'x' } })).toThrow(/reserved/)
    expect(() => Ec2SettingsSchema.parse({ launch_template: {} })).toThrow(/id or its name/)
    expect(() => Ec2SettingsSchema.parse({ subnet: [] })).toThrow()
  })
})
