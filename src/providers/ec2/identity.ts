// What a node knows about itself, from the instance metadata service, IMDSv2 only (a session token
// first, no v1 fallback): a node configured with `HttpTokens: required` answers nothing else, and
// a token cannot be fetched through a misconfigured proxy. Off EC2 there is nothing at
// 169.254.169.254, and the read must fail within seconds with a message saying what to do.
import { MetadataService } from '@aws-sdk/ec2-metadata-service'
import { WakameError } from '../../util/errors.js'
import type { Logger } from '../../util/log.js'

export interface Identity {
  instanceId: string
  amiId: string
  instanceType: string
  zone: string
  region: string
  privateIp: string
  publicIp?: string
  subnetId: string
  securityGroupIds: string[]
  vpcId: string
  instanceProfileArn?: string
  /** The raw user-data (see userdata.ts), when the instance has any. */
  userData?: string
}

export interface ImdsOptions {
  /** The metadata service. @default AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254 */
  endpoint?: string
  /** Per-request connection and answer timeout. @default 1000 */
  timeoutMs?: number
  /** Retries of a failed request (not of a 404). @default 2 */
  retries?: number
  /** Pause between retries. @default 250 */
  backoffMs?: number
  /** The whole identity read gives up after this long, whatever happens. @default 4500 */
  deadlineMs?: number
}

export const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254'

/** There is no instance metadata service: this is not an EC2 instance (or IMDS is disabled). */
export class NotOnEc2Error extends WakameError {
  constructor (endpoint: string, detail: string) {
    super('NOT_ON_EC2', `not on EC2 (no instance metadata service at ${endpoint}: ${detail}): set provider: local, or run on an EC2 instance (with its metadata service enabled)`)
  }
}

function endpointOf (o: ImdsOptions): string {
  return o.endpoint ?? process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT ?? DEFAULT_IMDS_ENDPOINT
}

/**
 * A fresh client each time: after a failed token request the SDK's client disables token fetching
 * for good, and with v1 disabled it could never recover.
 */
function imdsClient (o: ImdsOptions): MetadataService {
  const backoff = o.backoffMs ?? 250
  return new MetadataService({
    endpoint: endpointOf(o),
    ec2MetadataV1Disabled: true,
    httpOptions: { timeout: o.timeoutMs ?? 1_000 },
    retries: o.retries ?? 2,
    backoff: () => backoff / 1000,
    // Tokens are cheap and short-lived is safer; the SDK fetches one per request anyway.
    tokenTtl: 300
  })
}

const statusOf = (err: unknown): number | undefined => (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode

/** One path under /latest/; undefined when IMDS answers 404 (no public IP, no profile, no user-data). */
async function get (md: MetadataService, path: string): Promise<string | undefined> {
  try {
    return await md.request(`/latest/${path}`, {})
  } catch (err) {
    if (statusOf(err) === 404) return undefined
    throw err
  }
}

async function must (md: MetadataService, path: string): Promise<string> {
  const v = await get(md, path)
  if (v === undefined || v.trim() === '') throw new WakameError('IMDS_INCOMPLETE', `the instance metadata service has no ${path}: is this a VPC instance?`)
  return v.trim()
}

async function withDeadline<T> (ms: number, p: Promise<T>, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(onTimeout()), ms) })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Reads this instance's identity. Off EC2: NotOnEc2Error within `deadlineMs`. */
export async function readIdentity (o: ImdsOptions = {}): Promise<Identity> {
  const endpoint = endpointOf(o)
  const md = imdsClient(o)
  const deadlineMs = o.deadlineMs ?? 4_500
  // The token request is the probe: nothing answers it off EC2.
  await withDeadline(deadlineMs, md.fetchMetadataToken(), () => new NotOnEc2Error(endpoint, `no answer within ${deadlineMs} ms`))
    .catch((err: unknown) => {
      if (err instanceof NotOnEc2Error) throw err
      // The SDK's wording, minus its internals: "connect ECONNREFUSED …", "… status code 403".
      const detail = String((err as Error)?.message ?? err).replace(/^Error fetching metadata token: /, '').replace(/^(Error|TimeoutError): /, '').replace(/\s*\[disableFetchToken\].*$/, '').replace(/\.$/, '')
      throw new NotOnEc2Error(endpoint, detail)
    })
  return await withDeadline(deadlineMs, readAll(md), () => new WakameError('IMDS_TIMEOUT', `the instance metadata service at ${endpoint} answered the token request but not the metadata within ${deadlineMs} ms; retry, or check the instance's metadata options`))
}

async function readAll (md: MetadataService): Promise<Identity> {
  const m = 'meta-data'
  const [instanceId, amiId, instanceType, zone, privateIp, mac] = await Promise.all(
    ['instance-id', 'ami-id', 'instance-type', 'placement/availability-zone', 'local-ipv4', 'mac'].map(async p => await must(md, `${m}/${p}`)))
  const nic = `${m}/network/interfaces/macs/${mac!}`
  const [region, publicIp, subnetId, groups, vpcId, iamInfo, userData] = await Promise.all([
    get(md, `${m}/placement/region`),
    get(md, `${m}/public-ipv4`),
    must(md, `${nic}/subnet-id`),
    must(md, `${nic}/security-group-ids`),
    must(md, `${nic}/vpc-id`),
    get(md, `${m}/iam/info`),
    get(md, 'user-data')
  ])
  let instanceProfileArn: string | undefined
  if (iamInfo !== undefined) {
    try {
      const arn = (JSON.parse(iamInfo) as { InstanceProfileArn?: unknown }).InstanceProfileArn
      if (typeof arn === 'string') instanceProfileArn = arn
    } catch {
      throw new WakameError('IMDS_INCOMPLETE', `meta-data/iam/info is not JSON: ${iamInfo.slice(0, 100)}`)
    }
  }
  return {
    instanceId: instanceId!,
    amiId: amiId!,
    instanceType: instanceType!,
    zone: zone!,
    // Older IMDS versions lack placement/region: the zone minus its letter is the region.
    region: region?.trim() || zone!.replace(/[a-z]$/, ''),
    privateIp: privateIp!,
    ...(publicIp !== undefined && publicIp.trim() !== '' ? { publicIp: publicIp.trim() } : {}),
    subnetId,
    securityGroupIds: groups.split('\n').map(s => s.trim()).filter(Boolean),
    vpcId,
    ...(instanceProfileArn !== undefined ? { instanceProfileArn } : {}),
    ...(userData !== undefined ? { userData } : {})
  }
}

export interface NoticeWatcherOptions extends ImdsOptions {
  /** How often both notices are read. A spot interruption gives 2 minutes' warning. @default 5000 */
  intervalMs?: number
  /**
   * Maintenance event codes that end the node (it is stopped or retired). Reboots come back, so by
   * default they only log.
   * @default ['instance-stop', 'instance-retirement']
   */
  endingEventCodes?: string[]
  /** Called once per distinct notice with a reason ("spot interruption: terminate at …"). */
  onNotice: (reason: string) => void
  logger?: Logger
}

/** Reads the notices once: the reasons this node is going away, if any. */
export async function readNotices (o: Omit<NoticeWatcherOptions, 'onNotice'>): Promise<string[]> {
  const md = imdsClient(o)
  const reasons: string[] = []
  const spot = await get(md, 'meta-data/spot/instance-action')
  if (spot !== undefined) {
    let detail = spot.trim()
    try {
      const a = JSON.parse(spot) as { action?: string, time?: string }
      detail = `${a.action ?? 'terminate'} at ${a.time ?? 'an unknown time'}`
    } catch {}
    reasons.push(`spot interruption: ${detail}`)
  }
  const scheduled = await get(md, 'meta-data/events/maintenance/scheduled')
  if (scheduled !== undefined && scheduled.trim() !== '') {
    const ending = new Set(o.endingEventCodes ?? ['instance-stop', 'instance-retirement'])
    let events: Array<{ Code?: string, Description?: string, NotBefore?: string, State?: string }> = []
    try { events = JSON.parse(scheduled) as typeof events } catch {}
    for (const e of Array.isArray(events) ? events : []) {
      if (e.State === 'completed' || e.State === 'canceled') continue
      if (e.Code !== undefined && ending.has(e.Code)) reasons.push(`scheduled maintenance: ${e.Code} not before ${e.NotBefore ?? '?'} (${e.Description ?? ''})`)
      else o.logger?.info({ event: e }, 'scheduled maintenance that does not end this node')
    }
  }
  return reasons
}

/**
 * Polls the spot interruption and scheduled maintenance notices. The daemon reports `draining`
 * on a notice and the leader moves the node's work away. `stop()` ends the polling.
 */
export function watchNotices (o: NoticeWatcherOptions): { stop: () => void, polls: () => number } {
  const seen = new Set<string>()
  let stopped = false
  let polls = 0
  let timer: NodeJS.Timeout | undefined
  const poll = async (): Promise<void> => {
    polls++
    try {
      for (const reason of await readNotices(o)) {
        if (seen.has(reason)) continue
        seen.add(reason)
        o.logger?.warn({ reason }, 'this instance is going away')
        o.onNotice(reason)
      }
    } catch (err) {
      // IMDS hiccups: the next poll tries again; a notice stays up until the end.
      o.logger?.debug({ err: String(err) }, 'reading instance notices failed')
    }
    if (!stopped) {
      timer = setTimeout(() => { void poll() }, o.intervalMs ?? 5_000)
      timer.unref()
    }
  }
  void poll()
  return { stop: () => { stopped = true; clearTimeout(timer) }, polls: () => polls }
}
