// The EC2 provider against moto in server mode: an independent implementation of the EC2 Query
// API, as a check of request shapes (the fake was written by us; moto was not). moto makes
// instances running at once and ignores ClientToken, so idempotency is tested on the fake only.
import {
  DescribeInstanceAttributeCommand, DescribeInstancesCommand, DescribeSubnetsCommand, EC2Client, RunInstancesCommand, type Instance
} from '@aws-sdk/client-ec2'
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generatePsk, loadPsk } from '../../src/mesh/keys.js'
import { materializeSecret, secretFileFor } from '../../src/providers/ec2/secrets.js'
import { launchToken } from '../../src/core/cloud-plan.js'
import { discoverPeers } from '../../src/providers/ec2/discovery.js'
import { Ec2Provider } from '../../src/providers/ec2/ec2-provider.js'
import type { Identity } from '../../src/providers/ec2/identity.js'
import { parseUserData } from '../../src/providers/ec2/userdata.js'
import { silentLogger } from '../../src/util/log.js'
import { motoMissing, startMoto, type Moto } from '../fixtures/ec2/moto.js'
import { userData } from '../fixtures/ec2/world.js'

const missing = motoMissing()
if (missing !== undefined) console.warn(`ec2-moto.test.ts skipped: ${missing}`)

const CLUSTER = 'demo'
const AMI = 'ami-0123456789abcdef0'
const PROFILE = 'arn:aws:iam::123456789012:instance-profile/wakame-node'
const req = (id: string, zones?: string[]) => ({ token: launchToken(CLUSTER, 1, id), decisionId: id, reason: 'moto', bootstrap: ['172.31.0.4:7610'], ...(zones ? { zones } : {}) })

describe.skipIf(missing !== undefined)('EC2 provider against moto', () => {
  let moto: Moto
  let ec2: EC2Client
  let self: Identity
  let provider: Ec2Provider
  let subnets: Array<{ id: string, zone: string }>

  beforeAll(async () => {
    moto = await startMoto()
    ec2 = new EC2Client(moto.clientConfig)
    // moto checks that an instance profile exists.
    await moto.query('iam', { Action: 'CreateInstanceProfile', InstanceProfileName: 'wakame-node', Version: '2010-05-08' })
    const sn = (await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? []
    subnets = sn.map(s => ({ id: s.SubnetId!, zone: s.AvailabilityZone! })).sort((a, b) => a.zone.localeCompare(b.zone))
    // The operator's first node, booted by hand: the provider's identity comes from it.
    const first = (await ec2.send(new RunInstancesCommand({
      ImageId: AMI, InstanceType: 'm5.large', MinCount: 1, MaxCount: 1, SubnetId: subnets[0]!.id, IamInstanceProfile: { Arn: PROFILE },
      TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'wakame:cluster', Value: CLUSTER }] }]
    }))).Instances![0]!
    self = {
      instanceId: first.InstanceId!, amiId: AMI, instanceType: 'm5.large', zone: subnets[0]!.zone, region: 'us-east-1', privateIp: first.PrivateIpAddress!,
      subnetId: subnets[0]!.id, securityGroupIds: (first.SecurityGroups ?? first.NetworkInterfaces?.[0]?.Groups ?? []).map(g => g.GroupId!), vpcId: first.VpcId!, instanceProfileArn: PROFILE
    }
    provider = new Ec2Provider({
      client: new EC2Client(moto.clientConfig),
      cluster: CLUSTER,
      self,
      launch: { instanceType: 't3.small', subnetIds: [subnets[0]!.id, subnets[1]!.id], userData },
      pollMs: 50,
      // The default (20 at once, 5/s) is for a shared AWS account; moto has no budget to protect.
      rateLimit: { burst: 100, perSecond: 100 },
      logger: silentLogger()
    })
  }, 60_000)

  afterAll(async () => {
    provider?.close()
    ec2?.destroy()
    await moto?.stop()
  })

  async function describe1 (id: string): Promise<Instance> {
    return (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations![0]!.Instances![0]!
  }

  it('launch: own AMI, type, subnet, groups, profile, IMDSv2 required, tags and user-data as moto read them', async () => {
    const vm = await provider.launch(req('l-1', [subnets[1]!.zone]))
    expect(vm).toMatchObject({ launch: 'l-1', zone: subnets[1]!.zone })
    const i = await describe1(vm.id)
    expect(i).toMatchObject({
      ImageId: AMI,
      InstanceType: 't3.small',
      SubnetId: subnets[1]!.id,
      IamInstanceProfile: { Arn: PROFILE },
      MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
      PrivateIpAddress: vm.ip
    })
    expect(i.Tags).toEqual(expect.arrayContaining([{ Key: 'wakame:cluster', Value: CLUSTER }, { Key: 'wakame:launch', Value: 'l-1' }, { Key: 'Name', Value: `wakame-${CLUSTER}` }]))
    expect((i.SecurityGroups ?? i.NetworkInterfaces?.[0]?.Groups ?? []).map(g => g.GroupId)).toEqual(self.securityGroupIds)
    const ud = await ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: vm.id, Attribute: 'userData' }))
    expect(parseUserData(Buffer.from(ud.UserData?.Value ?? '', 'base64').toString('utf8'))).toMatchObject({ cluster: CLUSTER, launch: 'l-1', bootstrap: ['172.31.0.4:7610'] })
  })

  it('list and discovery by the cluster tag', async () => {
    const other = (await ec2.send(new RunInstancesCommand({ ImageId: AMI, MinCount: 1, MaxCount: 1, TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'wakame:cluster', Value: 'other' }] }] }))).Instances![0]!
    const b = await provider.launch(req('l-2'))
    const list = await provider.list()
    expect(list.map(v => v.id)).toEqual(expect.arrayContaining([self.instanceId, b.id]))
    expect(list.map(v => v.id)).not.toContain(other.InstanceId)
    expect(list.find(v => v.id === b.id)).toMatchObject({ launch: 'l-2', ip: b.ip })
    const peers = await discoverPeers(new EC2Client(moto.clientConfig), CLUSTER, self)
    expect(peers).toContain(`${b.ip}:7610`)
    expect(peers).not.toContain(`${self.privateIp}:7610`)
  })

  it('terminate: refuses another address, terminates ours and waits for it', async () => {
    const vm = await provider.launch(req('l-3'))
    await expect(provider.terminate(vm.id, { ip: '10.9.9.9' })).rejects.toMatchObject({ code: 'EC2_WRONG_VM' })
    await provider.terminate(vm.id, { ip: vm.ip })
    expect(['shutting-down', 'terminated']).toContain((await describe1(vm.id)).State?.Name)
    expect((await provider.list()).map(v => v.id)).not.toContain(vm.id)
    await provider.terminate(vm.id, { ip: vm.ip })
  })

  it('volumes: created in the VM\'s zone, attached, read back, detached', async () => {
    const vm = await provider.launch(req('l-4', [subnets[1]!.zone]))
    await provider.attachVolume('db', 'db', vm.id)
    expect(await provider.volumeAttachment('db')).toBe(vm.id)
    expect(await provider.volumeZone('db')).toBe(subnets[1]!.zone)
    await provider.attachVolume('db', 'db', vm.id)
    const vm2 = await provider.launch(req('l-5', [subnets[1]!.zone]))
    await expect(provider.attachVolume('db', 'db', vm2.id)).rejects.toMatchObject({ code: 'EC2_BUSY' })
    await provider.detachVolume('db', vm.id)
    expect(await provider.volumeAttachment('db')).toBeNull()
    await provider.attachVolume('db', 'db', vm2.id)
    expect(await provider.volumeAttachment('db')).toBe(vm2.id)
  })

  it('addresses: allocated with tags, associated, moved, read back', async () => {
    const a = await provider.launch(req('l-6'))
    const b = await provider.launch(req('l-7'))
    await provider.associateAddress('lb', a.id)
    expect(await provider.addressAssociation('lb')).toBe(a.id)
    const ip = await provider.addressIp('lb')
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
    await provider.associateAddress('lb', b.id)
    expect(await provider.addressAssociation('lb')).toBe(b.id)
    expect(await provider.addressIp('lb')).toBe(ip)
  })
})

describe.skipIf(missing !== undefined)('secrets named in user-data, from SSM Parameter Store (moto)', () => {
  let moto: Moto
  beforeAll(async () => { moto = await startMoto() })
  afterAll(async () => { await moto?.stop() })

  it('an {ssm} reference is fetched (decrypted) into a 0600 file; a missing parameter names itself and the fix', async () => {
    const psk = generatePsk()
    const ssm = new SSMClient(moto.clientConfig)
    await ssm.send(new PutParameterCommand({ Name: '/wakame/demo/psk', Type: 'SecureString', Value: psk }))
    ssm.destroy()
    const dir = mkdtempSync(join(tmpdir(), 'wakame-ssm-'))
    try {
      const path = secretFileFor({ ssm: '/wakame/demo/psk' }, dir, 'psk')
      expect(path).toBe(join(dir, 'secrets', 'psk.key'))
      await materializeSecret({ ssm: '/wakame/demo/psk' }, path, moto.clientConfig)
      expect(readFileSync(path, 'utf8')).toBe(psk)
      expect(statSync(path).mode & 0o777).toBe(0o600)
      expect(loadPsk(path)).toHaveLength(32)
      const err = await materializeSecret({ ssm: '/wakame/demo/nope' }, join(dir, 'x'), moto.clientConfig).catch((e: Error) => e)
      expect(String(err)).toMatch(/\/wakame\/demo\/nope.*ParameterNotFound.*put-parameter/)
      expect(String(err)).not.toContain(psk.split('\n')[2]!)
      // A {file} reference is used as it is: nothing fetched, nothing written.
      expect(secretFileFor({ file: '/etc/wakame/psk' }, dir, 'psk')).toBe('/etc/wakame/psk')
      await materializeSecret({ file: '/etc/wakame/psk' }, '/etc/wakame/psk', moto.clientConfig)
    } finally { rmSync(dir, { recursive: true, force: true }) }
  })
})
