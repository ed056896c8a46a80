// A fake EC2 endpoint speaking the real EC2 Query API over HTTP, plus IMDSv2 per simulated instance.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo as NetAddress } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AddressStore } from './addresses.js'
import { adminRequest } from './admin.js'
import { Catalog } from './catalog.js'
import { realClock, type FakeClock } from './clock.js'
import { FaultController } from './faults.js'
import { InstanceStore } from './instances.js'
import { Ec2Error, IdGen, QueryParams, errorXml, ipRange, isoTime, newRequestId, responseXml } from './protocol.js'
import { VolumeStore } from './volumes.js'
import type {
  AddressInfo, CallRecord, FakeEc2Options, ForcedDetach, InstanceInfo, MaintenanceEvent, ResolvedOptions,
  RunningInstanceSpec, SecurityGroupSpec, SubnetSpec, VolumeInfo, World
} from './types.js'

export * from './types.js'
export { ManualClock, realClock, type FakeClock } from './clock.js'
export type { FaultController } from './faults.js'

export interface FakeEc2 {
  /** `http://127.0.0.1:<port>`: give it to `new EC2Client({ endpoint })`. */
  readonly endpoint: string
  readonly region: string
  readonly rootDir: string
  readonly clock: FakeClock
  /** Fault injection (also reachable over `POST /__fake/faults`). */
  readonly faults: FaultController
  /** Options for `new EC2Client(...)`: endpoint, region and static credentials (any work). */
  clientConfig: (credentials?: { accessKeyId: string, secretAccessKey: string, sessionToken?: string }) => {
    endpoint: string
    region: string
    credentials: { accessKeyId: string, secretAccessKey: string, sessionToken?: string }
  }
  /** The instance's IMDS endpoint (for `new MetadataService({ endpoint })` or AWS_EC2_METADATA_SERVICE_ENDPOINT). */
  imdsFor: (instanceId: string) => { endpoint: string }
  /** An instance already running (the operator's first node): visible at once, onBoot only with `boot: true`. */
  addRunningInstance: (spec?: RunningInstanceSpec) => Promise<InstanceInfo>
  instance: (instanceId: string) => InstanceInfo | undefined
  instances: () => InstanceInfo[]
  volume: (volumeId: string) => VolumeInfo | undefined
  volumes: () => VolumeInfo[]
  addresses: () => AddressInfo[]
  /** Terminates out of band (as when EC2 reclaims a spot instance). */
  terminateInstance: (instanceId: string, reason?: { code: string, message: string }) => void
  /** From now on the instance's IMDS answers spot/instance-action (404 before). */
  triggerSpotInterruption: (instanceId: string, o?: { action?: string, inMs?: number }) => void
  setMaintenanceEvents: (instanceId: string, events: MaintenanceEvent[]) => void
  /** While mounted, a DetachVolume of this volume stays "busy" (unless forced). */
  setMounted: (volumeId: string, mounted: boolean) => void
  /** Every EC2 call so far (optionally only one action). */
  calls: (action?: string) => CallRecord[]
  /** Calls of actions the fake does not implement (answered InvalidAction). */
  unknownActions: () => CallRecord[]
  /** Every DetachVolume that asked for Force. */
  forcedDetaches: () => ForcedDetach[]
  /** Failures of onBoot/onTerminate hooks, and fake bugs answered as InternalError. */
  hookErrors: () => Array<{ what: string, error: unknown }>
  /** Resolves when no hook or IMDS start/stop is pending. */
  settled: () => Promise<void>
  /** Stops the endpoint; runs onTerminate for every booted instance not yet terminated; closes every IMDS. */
  close: () => Promise<void>
}

const XEN = /^(t1|t2|m1|m2|m3|m4|c1|c3|c4|r3|r4|i2|i3|d2|x1|x1e|p2|p3|g2|g3|h1|f1)\./

function resolveOptions (o: FakeEc2Options): { opts: ResolvedOptions, ownsRoot: boolean } {
  const region = o.region ?? 'us-east-1'
  const subnets: SubnetSpec[] = o.subnets ?? [
    { subnetId: 'subnet-0a00000000000000a', vpcId: 'vpc-0a00000000000000a', availabilityZone: `${region}a`, cidrBlock: '127.0.1.0/24' },
    { subnetId: 'subnet-0b00000000000000b', vpcId: 'vpc-0a00000000000000a', availabilityZone: `${region}b`, cidrBlock: '127.0.2.0/24' }
  ]
  const vpcs = [...new Set(subnets.map((s) => s.vpcId))]
  const securityGroups: SecurityGroupSpec[] = o.securityGroups ??
    vpcs.map((vpcId, i) => ({ groupId: `sg-0def${(i + 1).toString(16).padStart(12, '0')}`, groupName: 'default', vpcId, description: 'default VPC security group' }))
  const rootDir = o.rootDir ?? mkdtempSync(join(tmpdir(), 'fake-ec2-'))
  return {
    ownsRoot: o.rootDir === undefined,
    opts: {
      host: o.host ?? '127.0.0.1',
      region,
      accountId: o.accountId ?? '123456789012',
      subnets,
      securityGroups,
      ...(o.images === undefined ? {} : { images: o.images }),
      publicIps: o.publicIps ?? ipRange('198.51.100', 10, 250),
      maxAddresses: o.maxAddresses ?? 5,
      bootDelayMs: o.bootDelayMs ?? 300,
      shutdownDelayMs: o.shutdownDelayMs ?? 100,
      volumeCreateDelayMs: o.volumeCreateDelayMs ?? 100,
      attachDelayMs: o.attachDelayMs ?? 100,
      detachDelayMs: o.detachDelayMs ?? 100,
      terminatedVisibleMs: o.terminatedVisibleMs ?? 3600_000,
      clientTokenRetentionMs: o.clientTokenRetentionMs ?? 24 * 3600_000,
      defaultHttpTokens: o.defaultHttpTokens ?? 'required',
      isXen: o.isXen ?? ((t) => XEN.test(t)),
      rootDir,
      devRootFor: o.devRootFor ?? ((id) => join(rootDir, id, 'dev')),
      ...(o.isMounted === undefined ? {} : { isMounted: o.isMounted }),
      imdsHost: o.imdsHost ?? '127.0.0.1',
      ...(o.onBoot === undefined ? {} : { onBoot: o.onBoot }),
      ...(o.onTerminate === undefined ? {} : { onTerminate: o.onTerminate })
    }
  }
}

type Handler = (p: QueryParams) => string | Promise<string>

export async function startFakeEc2 (options: FakeEc2Options = {}): Promise<FakeEc2> {
  const { opts, ownsRoot } = resolveOptions(options)
  const clock = options.clock ?? realClock
  const timers = new Set<unknown>()
  const pending = new Set<Promise<unknown>>()
  const hookErrors: Array<{ what: string, error: unknown }> = []
  const calls: CallRecord[] = []
  const unknown: CallRecord[] = []
  let closed = false

  const w = {
    opts,
    clock,
    ids: new IdGen(),
    faults: new FaultController(clock, options.notFoundWindowMs ?? 0),
    schedule: (ms: number, fn: () => void) => {
      const handle = clock.setTimeout(() => {
        timers.delete(handle)
        if (!closed) fn()
      }, ms)
      timers.add(handle)
    },
    track: (what: string, p: unknown) => {
      const tracked = Promise.resolve(p).catch((error: unknown) => { hookErrors.push({ what, error }) })
      pending.add(tracked)
      void tracked.finally(() => pending.delete(tracked))
    }
  } as unknown as World
  w.catalog = new Catalog(w, (i) => options.privateIps ?? ipRange(`127.0.${i + 1}`, 10, 250))
  w.instances = new InstanceStore(w)
  w.volumes = new VolumeStore(w)
  w.addresses = new AddressStore(w)

  const c = w.catalog
  const handlers: Record<string, Handler> = {
    RunInstances: async (p) => await w.instances.run(p),
    DescribeInstances: (p) => w.instances.describe(p),
    TerminateInstances: (p) => w.instances.terminateCall(p),
    CreateTags: (p) => c.createTags(p),
    DeleteTags: (p) => c.deleteTags(p),
    DescribeTags: (p) => c.describeTags(p),
    CreateVolume: (p) => w.volumes.create(p),
    DescribeVolumes: (p) => w.volumes.describe(p),
    AttachVolume: (p) => w.volumes.attach(p),
    DetachVolume: (p) => w.volumes.detach(p),
    DeleteVolume: (p) => w.volumes.deleteVolume(p),
    AllocateAddress: (p) => w.addresses.allocate(p),
    DescribeAddresses: (p) => w.addresses.describe(p),
    AssociateAddress: (p) => w.addresses.associate(p),
    DisassociateAddress: (p) => w.addresses.disassociate(p),
    ReleaseAddress: (p) => w.addresses.release(p),
    DescribeSubnets: (p) => c.describeSubnets(p),
    DescribeSecurityGroups: (p) => c.describeSecurityGroups(p),
    DescribeImages: (p) => c.describeImages(p),
    DescribeAvailabilityZones: (p) => c.describeAvailabilityZones(p)
  }

  async function ec2Call (req: IncomingMessage, res: ServerResponse, body: string): Promise<void> {
    const raw: Record<string, string> = {}
    for (const [k, v] of new URLSearchParams((req.url ?? '').split('?')[1] ?? '')) raw[k] = v
    if (req.method === 'POST') for (const [k, v] of new URLSearchParams(body)) raw[k] = v
    const action = raw.Action ?? ''
    const requestId = newRequestId()
    const auth = `${req.headers.authorization ?? ''} ${raw['X-Amz-Credential'] ?? ''}`
    const accessKeyId = /Credential=([^/\s,]+)\//.exec(auth)?.[1] ?? raw['X-Amz-Credential']?.split('/')[0]
    const caller = w.instances.callerOf(accessKeyId)
    const params = Object.fromEntries(Object.entries(raw).filter(([k]) => k !== 'Action' && k !== 'Version'))
    const record: CallRecord = {
      seq: calls.length + 1, action, params, ...(caller === undefined ? {} : { caller }),
      ...(accessKeyId === undefined ? {} : { accessKeyId }), at: clock.now(), status: 0, outcome: 'pending'
    }
    calls.push(record)
    let status = 200
    let payload: string
    try {
      if (accessKeyId === undefined) throw new Ec2Error('AuthFailure', 'AWS was not able to validate the provided access credentials', 401)
      if (action === '') throw new Ec2Error('MissingAction', 'The request must contain the parameter Action')
      if (raw.Version === undefined) throw new Ec2Error('MissingParameter', 'The request must contain the parameter Version')
      const handler = handlers[action]
      if (handler === undefined) {
        unknown.push(record)
        throw new Ec2Error('InvalidAction', `The action ${action} is not valid for this web service (fake-ec2 does not implement it).`)
      }
      await w.faults.before(action)
      if (raw.DryRun === 'true') throw new Ec2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412)
      const out = await handler(new QueryParams(raw))
      w.faults.after(action)
      payload = responseXml(action, requestId, out)
      record.outcome = 'ok'
    } catch (e) {
      let err: Ec2Error
      if (e instanceof Ec2Error) err = e
      else {
        hookErrors.push({ what: `fake-ec2 bug in ${action}`, error: e })
        err = new Ec2Error('InternalError', `fake-ec2 failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`, 500)
      }
      status = err.status
      payload = errorXml(err.code, err.message, requestId)
      record.outcome = err.code
      record.message = err.message
    }
    record.status = status
    if (res.destroyed) return
    res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': requestId, server: 'AmazonEC2' })
    res.end(payload)
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const path = (req.url ?? '/').split('?')[0] ?? '/'
      if (path.startsWith('/__fake/')) {
        const { status, json } = adminRequest(fake, req.method ?? 'GET', path, body)
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(JSON.stringify(json))
        return
      }
      ec2Call(req, res, body).catch((e: unknown) => {
        hookErrors.push({ what: 'fake-ec2 request handling', error: e })
        if (!res.headersSent) res.writeHead(500)
        res.end()
      })
    })
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port ?? 0, opts.host, () => { resolve() })
    })
  } catch (e) {
    if (ownsRoot) rmSync(opts.rootDir, { recursive: true, force: true })
    throw e
  }
  const endpoint = `http://${opts.host}:${(server.address() as NetAddress).port}`

  const settled = async (): Promise<void> => {
    while (pending.size > 0) await Promise.allSettled([...pending])
  }
  const byId = (id: string): InstanceInfo | undefined => {
    const inst = w.instances.all.get(id)
    return inst === undefined ? undefined : w.instances.info(inst)
  }

  const fake: FakeEc2 = {
    endpoint,
    region: opts.region,
    rootDir: opts.rootDir,
    clock,
    faults: w.faults,
    clientConfig: (credentials = { accessKeyId: 'AKIDFAKEEC2TEST00001', secretAccessKey: 'fake-secret' }) => ({ endpoint, region: opts.region, credentials }),
    imdsFor: (id) => {
      const inst = w.instances.mustGet(id)
      if (inst.imds === undefined) throw new Error(`fake-ec2: the IMDS of ${id} is not ready yet`)
      return { endpoint: inst.imds.endpoint }
    },
    addRunningInstance: async (spec = {}) => await w.instances.addRunning(spec),
    instance: byId,
    instances: () => [...w.instances.all.keys()].map((id) => byId(id)).filter((i): i is InstanceInfo => i !== undefined),
    volume: (id) => w.volumes.list().find((v) => v.volumeId === id),
    volumes: () => w.volumes.list(),
    addresses: () => w.addresses.list(),
    terminateInstance: (id, reason = { code: 'Server.SpotInstanceTermination', message: 'Server.SpotInstanceTermination: Spot instance termination' }) => {
      w.instances.terminate(w.instances.mustGet(id), reason, `Service initiated (${isoTime(clock.now())})`)
    },
    triggerSpotInterruption: (id, o = {}) => {
      const time = isoTime(clock.now() + (o.inMs ?? 120_000)).replace(/\.\d+Z$/, 'Z')
      w.instances.setSpotAction(id, o.action ?? 'terminate', time)
    },
    setMaintenanceEvents: (id, events) => { w.instances.setMaintenance(id, events) },
    setMounted: (id, mounted) => { w.volumes.setMounted(id, mounted) },
    calls: (action) => calls.filter((r) => action === undefined || r.action === action),
    unknownActions: () => [...unknown],
    forcedDetaches: () => [...w.volumes.forced],
    hookErrors: () => [...hookErrors],
    settled,
    close: async () => {
      if (closed) return
      closed = true
      for (const t of timers) clock.clearTimeout(t)
      timers.clear()
      await new Promise<void>((resolve) => {
        server.close(() => { resolve() })
        server.closeAllConnections()
      })
      await w.instances.closeAll()
      await settled()
      if (ownsRoot) rmSync(opts.rootDir, { recursive: true, force: true })
    }
  }
  return fake
}
