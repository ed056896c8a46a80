// The EC2 provider end to end: real daemons with `provider: ec2`, each on its own simulated
// instance of the fake EC2 endpoint (its own IMDSv2 identity on 127.0.50.x / 127.0.51.x, two
// zones). The operator boots the first instance with wakame user-data; `launch_cluster` makes the
// leader launch VMs through RunInstances, and the fake "boots" each as a daemon process that finds
// the cluster by tag. The db's EBS volume and the lb's Elastic IP follow `migrate_service`.
// Every daemon is its own process group, killed when the fake terminates its instance and again in
// afterAll, whatever happened.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client } from '../../src/cli/client.js'
import type { StatusReport } from '../../src/core/status.js'
import { generatePsk, generateToken } from '../../src/mesh/keys.js'
import { renderUserData } from '../../src/providers/ec2/userdata.js'
import { startFakeEc2, type FakeEc2, type InstanceInfo } from '../fake-ec2/server.js'
import { BUNDLE, EXAMPLE_SPEC, kill, settled } from '../helpers/cluster.js'

const CLUSTER = 'ec2e2e'
const SUBNETS = [
  { subnetId: 'subnet-0e00000000000000a', vpcId: 'vpc-0e00000000000000a', availabilityZone: 'us-east-1a', cidrBlock: '127.0.50.0/24' },
  { subnetId: 'subnet-0e00000000000000b', vpcId: 'vpc-0e00000000000000a', availabilityZone: 'us-east-1b', cidrBlock: '127.0.51.0/24' }
]

describe('the example web cluster on the EC2 provider (fake EC2 endpoint, real daemons)', () => {
  let fake: FakeEc2
  let dir: string
  let tokenFile: string
  let first: InstanceInfo
  /** Process groups of the daemons the fake booted, by instance id. */
  const daemons = new Map<string, number>()

  const api = (inst: InstanceInfo) => `http://${inst.privateIp}:7600`
  const status = async (node = api(first)) => await new Client({ node, tokenFile }).status()
  const waitFor = async (what: string, pred: (s: StatusReport) => boolean, timeoutMs = 90_000): Promise<StatusReport> => {
    const deadline = Date.now() + timeoutMs
    let last: StatusReport | undefined
    while (Date.now() < deadline) {
      try { last = await status(); if (pred(last)) return last } catch {}
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last?.services.map(s => [s.name, s.instances.map(i => `${i.id}:${i.state}@${i.node}`)]))} nodes ${JSON.stringify(last?.nodes.map(n => `${n.id}:${n.status}`))}`)
  }
  const cli = async (...args: string[]) => await new Promise<{ code: number, out: string }>(resolve => {
    const p = spawn(process.execPath, [BUNDLE, '--node', api(first), '--token-file', tokenFile, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (d: Buffer) => { out += d.toString() })
    p.stderr.on('data', (d: Buffer) => { out += d.toString() })
    p.on('close', code => resolve({ code: code ?? 1, out }))
  })
  const nodeOf = (s: StatusReport, service: string) => s.services.find(v => v.name === service)!.instances[0]!.node!
  const instanceOf = (s: StatusReport, service: string) => s.services.find(v => v.name === service)!.instances[0]!
  const lbUrl = (s: StatusReport) => { const i = instanceOf(s, 'lb'); return `http://${i.ip}:${i.port}` }

  /** What the AMI's boot does on a fake instance: start `wakame agent` with provider ec2. */
  const boot = (inst: InstanceInfo): void => {
    const home = join(dir, inst.instanceId)
    mkdirSync(home, { recursive: true })
    const config = join(home, 'agent.yaml')
    writeFileSync(config, JSON.stringify({
      provider: 'ec2',
      ec2: { endpoint: fake.endpoint, imds_endpoint: inst.imdsEndpoint, disk_dir: inst.devRoot },
      data_dir: join(home, 'data'),
      log_level: 'info'
    }))
    const log = openSync(join(home, 'agent.log'), 'a')
    // No static credentials: the SDK's default chain gets the instance role's from its IMDS.
    const env: NodeJS.ProcessEnv = { ...process.env, AWS_EC2_METADATA_SERVICE_ENDPOINT: inst.imdsEndpoint, AWS_EC2_METADATA_V1_DISABLED: 'true' }
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) delete env[k]
    const child = spawn(process.execPath, [BUNDLE, 'agent', '--config', config], { detached: true, stdio: ['ignore', log, log], env })
    child.unref()
    daemons.set(inst.instanceId, child.pid!)
  }
  const shutdown = async (inst: InstanceInfo): Promise<void> => {
    const pgid = daemons.get(inst.instanceId)
    if (pgid === undefined) return
    kill(-pgid, 'SIGTERM')
    const deadline = Date.now() + 5_000
    while (Date.now() < deadline) {
      try { process.kill(-pgid, 0) } catch { daemons.delete(inst.instanceId); return }
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    kill(-pgid, 'SIGKILL')
    daemons.delete(inst.instanceId)
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wakame-ec2-e2e-'))
    const pskFile = join(dir, 'psk.key')
    tokenFile = join(dir, 'admin.token')
    writeFileSync(pskFile, generatePsk(), { mode: 0o600 })
    writeFileSync(tokenFile, `${generateToken()}\n`, { mode: 0o600 })
    fake = await startFakeEc2({ subnets: SUBNETS, rootDir: join(dir, 'ec2'), bootDelayMs: 300, onBoot: boot, onTerminate: shutdown })
    // The operator's first instance, booted from the AMI with wakame user-data (secrets by file).
    first = await fake.addRunningInstance({
      boot: true,
      subnetId: SUBNETS[0]!.subnetId,
      iamInstanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/wakame-node',
      tags: { 'wakame:cluster': CLUSTER },
      userData: renderUserData({ cluster: CLUSTER, bootstrap_expect: 1, psk: { file: pskFile }, admin_token: { file: tokenFile }, spec: EXAMPLE_SPEC })
    })
    await waitFor('the first node to lead', s => s.leader === first.instanceId, 30_000)
  }, 60_000)

  afterAll(async () => {
    await fake?.close().catch(() => {})
    for (const pgid of daemons.values()) kill(-pgid, 'SIGKILL')
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('launch_cluster: VMs launched by RunInstances (own AMI, IMDSv2, tags, ClientToken) join by tag; the db gets its volume, the lb its address', async () => {
    const r = await cli('launch_cluster', '--timeout', '150')
    expect(r.code, r.out).toBe(0)
    const s = await waitFor('all ONLINE on 3 nodes', x => settled(x) && x.nodes.filter(n => n.status === 'alive').length >= 3)
    expect(s.leader).toBe(first.instanceId)
    const runs = fake.calls('RunInstances').filter(c => c.outcome === 'ok')
    expect(runs.length).toBeGreaterThanOrEqual(2)
    for (const c of runs) {
      expect(c.params).toMatchObject({ ImageId: first.imageId, 'MetadataOptions.HttpTokens': 'required', 'TagSpecification.1.ResourceType': 'instance' })
      expect(c.params.ClientToken).toMatch(/\S/)
      // Signed with the first node's instance-role credentials (from its IMDS), not static keys.
      expect(c.caller).toBe(first.instanceId)
    }
    // Exactly one instance per launch decision, all tagged, all running a daemon that joined.
    const tagged = fake.instances().filter(i => i.tags['wakame:cluster'] === CLUSTER && i.state === 'running')
    expect(new Set(tagged.map(i => i.tags['wakame:launch'] ?? 'first')).size).toBe(tagged.length)
    expect(s.nodes.map(n => n.id).sort()).toEqual(expect.arrayContaining(tagged.map(i => i.instanceId)))

    const db = nodeOf(s, 'db')
    const vol = fake.volumes().find(v => v.tags['wakame:volume'] === 'db-data')
    expect(vol?.attachment?.instanceId).toBe(db)
    const eip = fake.addresses().find(a => a.tags['wakame:address'] === 'lb-ip')
    expect(eip?.instanceId).toBe(nodeOf(s, 'lb'))

    expect((await fetch(new URL('/api/kv/answer', lbUrl(s)), { method: 'PUT', body: '42' })).status).toBeLessThan(300)
    expect(await (await fetch(new URL('/api/kv/answer', lbUrl(s)))).text()).toBe('42')
  })

  it('migrate_service db: its EBS volume is detached, attached to the new node (same zone) and the data is there', async () => {
    const s0 = await waitFor('settled', settled)
    const db = instanceOf(s0, 'db')
    const zoneOf = (id: string) => fake.instance(id)!.availabilityZone
    const r = await cli('migrate_service', db.id, '--timeout', '120')
    expect(r.code, r.out).toBe(0)
    const s = await waitFor('db moved', x => settled(x) && nodeOf(x, 'db') !== db.node)
    const to = nodeOf(s, 'db')
    expect(zoneOf(to)).toBe(zoneOf(db.node!))
    const vol = fake.volumes().find(v => v.tags['wakame:volume'] === 'db-data')!
    expect(vol.attachment?.instanceId).toBe(to)
    expect(fake.forcedDetaches()).toEqual([])
    expect(fake.volumes().filter(v => v.tags['wakame:volume'] === 'db-data')).toHaveLength(1)
    expect(await (await fetch(new URL('/api/kv/answer', lbUrl(s)))).text()).toBe('42')
  })

  it('migrate_service lb: the Elastic IP is associated with the lb\'s new node', async () => {
    const s0 = await waitFor('settled', settled)
    const lb = instanceOf(s0, 'lb')
    const r = await cli('migrate_service', lb.id, '--timeout', '120')
    expect(r.code, r.out).toBe(0)
    const s = await waitFor('lb moved', x => settled(x) && nodeOf(x, 'lb') !== lb.node)
    const deadline = Date.now() + 20_000
    let eip = fake.addresses().find(a => a.tags['wakame:address'] === 'lb-ip')
    while (eip?.instanceId !== nodeOf(s, 'lb') && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 100))
      eip = fake.addresses().find(a => a.tags['wakame:address'] === 'lb-ip')
    }
    expect(eip?.instanceId).toBe(nodeOf(s, 'lb'))
    expect(fake.addresses().filter(a => a.tags['wakame:address'] === 'lb-ip')).toHaveLength(1)
    expect((await fetch(new URL('/api', lbUrl(s)))).status).toBe(200)
  })

  it('a spot interruption notice in IMDS: the node drains, its instances move, it is terminated and replaced', async () => {
    const s0 = await waitFor('settled', settled)
    const busy = new Set(s0.services.flatMap(v => v.instances.map(i => i.node!)))
    const victim = s0.nodes.map(n => n.id).find(id => id !== s0.leader && busy.has(id))
    expect(victim, JSON.stringify(s0.nodes.map(n => n.id))).toBeDefined()
    const launchesBefore = fake.calls('RunInstances').filter(c => c.outcome === 'ok').length
    fake.triggerSpotInterruption(victim!)
    const s = await waitFor('victim drained, terminated and replaced', x => settled(x) &&
      !x.services.some(v => v.instances.some(i => i.node === victim)) &&
      ['shutting-down', 'terminated'].includes(fake.instance(victim!)!.state) &&
      x.nodes.filter(n => n.status === 'alive' && n.id !== victim).length >= 3, 120_000)
    expect(fake.calls('RunInstances').filter(c => c.outcome === 'ok').length).toBeGreaterThan(launchesBefore)
    expect(fake.calls('TerminateInstances').some(c => c.params['InstanceId.1'] === victim)).toBe(true)
    expect(await (await fetch(new URL('/api/kv/answer', lbUrl(s)))).text()).toBe('42')
  })

  it('every instance the cluster launched is known to it (no untracked VM), and none was launched twice', () => {
    const tagged = fake.instances().filter(i => i.tags['wakame:cluster'] === CLUSTER && i.state !== 'terminated')
    const byLaunch = new Map<string, number>()
    for (const i of tagged) if (i.tags['wakame:launch']) byLaunch.set(i.tags['wakame:launch'], (byLaunch.get(i.tags['wakame:launch']) ?? 0) + 1)
    expect([...byLaunch.values()].every(n => n === 1)).toBe(true)
    const log = readFileSync(join(dir, first.instanceId, 'agent.log'), 'utf8')
    expect(log).not.toMatch(/"level":(50|60)/)
  })
})
