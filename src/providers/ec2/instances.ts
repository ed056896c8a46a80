// What the parts of the EC2 provider share: the tags, the context (API, timeouts), and reading
// instances, including the eventual-consistency rule of case 05: an instance this process launched
// a moment ago may answer InvalidInstanceID.NotFound for a while, which means "not visible yet".
import { DescribeInstancesCommand, type Filter, type Instance, type Tag } from '@aws-sdk/client-ec2'
import type { Logger } from '../../util/log.js'
import type { VmInfo } from '../provider.js'
import type { Ec2Api } from './api.js'
import { Ec2ProviderError, isNotFound } from './errors.js'

/** Tags wakame puts on what it creates (at creation, in TagSpecifications, never afterwards). */
export const TAG = {
  cluster: 'wakame:cluster',
  launch: 'wakame:launch',
  volume: 'wakame:volume',
  service: 'wakame:service',
  address: 'wakame:address',
  name: 'Name'
} as const

export interface Timeouts {
  /** How long an instance launched here may stay invisible to other calls (case 05: 20 s seen). @default 60000 */
  visibilityMs: number
  /** pending → running, before a volume or address can go to it. @default 300000 */
  runningMs: number
  /** Until shutting-down after TerminateInstances. @default 60000 */
  terminateMs: number
  /** creating → available for a new volume. @default 120000 */
  volumeCreateMs: number
  /** attaching → attached. @default 120000 */
  attachMs: number
  /** detaching → available; a volume still mounted stays "busy" past it (case 08). @default 120000 */
  detachMs: number
  /** The node: until the attached volume's device shows up. @default 60000 */
  deviceMs: number
  /** An address association read back as done. @default 30000 */
  associateMs: number
  /** After IdempotentParameterMismatch: how long to look for the instance the token already made. @default 20000 */
  mismatchLookupMs: number
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  visibilityMs: 60_000,
  runningMs: 300_000,
  terminateMs: 60_000,
  volumeCreateMs: 120_000,
  attachMs: 120_000,
  detachMs: 120_000,
  deviceMs: 60_000,
  associateMs: 30_000,
  mismatchLookupMs: 20_000
}

export interface Ctx {
  api: Ec2Api
  cluster: string
  logger: Logger
  timeouts: Timeouts
  /** Pause between two reads while waiting for a state. @default 1000 */
  pollMs: number
  /** MaxResults of paginated describe calls. @default 1000 */
  pageSize: number
  /** Extra tags for everything wakame creates. */
  extraTags: Record<string, string>
  /** Instance ids this process launched, with when (see `describeInstance`). */
  recent: Map<string, number>
  /** False when the leader lost its lease: checked right before each call that changes the cloud. */
  canAct: () => boolean
}

export const INSTANCE_ID = /^i-[0-9a-f]{8}([0-9a-f]{9})?$/

export function tagList (tags: Record<string, string>): Tag[] {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }))
}

export function tagsOf (tags: Tag[] | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const t of tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? ''
  return out
}

/** Throws (retryable) when this node may not change the cloud any more. */
export function fence (ctx: Ctx, what: string): void {
  if (!ctx.canAct()) throw new Ec2ProviderError('EC2_LEASE_LOST', `${what}: this node lost its lease; left to the next leader`)
}

export function vmState (name: string | undefined): VmInfo['state'] {
  return name === 'pending' ? 'pending' : name === 'running' ? 'running' : 'terminated'
}

export function vmInfoOf (i: Instance, launch?: string): VmInfo {
  const tags = tagsOf(i.Tags)
  const l = launch ?? tags[TAG.launch]
  const zone = i.Placement?.AvailabilityZone
  return {
    id: i.InstanceId ?? '',
    ip: i.PrivateIpAddress ?? '',
    state: vmState(i.State?.Name),
    ...(l !== undefined ? { launch: l } : {}),
    ...(zone !== undefined ? { zone } : {})
  }
}

/** Every instance matching the filters, page by page (each page through the rate limit). */
export async function describeInstances (ctx: Ctx, Filters: Filter[], what: string): Promise<Instance[]> {
  const out: Instance[] = []
  let NextToken: string | undefined
  do {
    const page = await ctx.api.send(new DescribeInstancesCommand({ Filters, MaxResults: ctx.pageSize, ...(NextToken !== undefined ? { NextToken } : {}) }), { what })
    for (const r of page.Reservations ?? []) out.push(...(r.Instances ?? []))
    NextToken = page.NextToken === '' ? undefined : page.NextToken
  } while (NextToken !== undefined)
  return out
}

export function clusterFilter (ctx: Pick<Ctx, 'cluster'>): Filter {
  return { Name: `tag:${TAG.cluster}`, Values: [ctx.cluster] }
}

export const LIVE_STATES: Filter = { Name: 'instance-state-name', Values: ['pending', 'running'] }

/**
 * One instance, or undefined when EC2 does not know it. An instance launched here within
 * `visibilityMs` that answers NotFound is not visible yet: waited for (case 05), and past the
 * deadline a retryable error — never "unknown", which would let a terminate succeed on a VM
 * that is about to appear.
 */
export async function describeInstance (ctx: Ctx, id: string, what: string): Promise<Instance | undefined> {
  if (!INSTANCE_ID.test(id)) return undefined
  let launchedAt = ctx.recent.get(id)
  // Long past its window, a launch that never showed up is forgotten (it failed, or EC2 forgot it).
  if (launchedAt !== undefined && ctx.api.clock.now() > launchedAt + 5 * ctx.timeouts.visibilityMs) {
    ctx.recent.delete(id)
    launchedAt = undefined
  }
  const waitUntil = launchedAt === undefined ? undefined : launchedAt + ctx.timeouts.visibilityMs
  for (;;) {
    try {
      const out = await ctx.api.send(new DescribeInstancesCommand({ InstanceIds: [id] }), { what })
      const inst = out.Reservations?.flatMap(r => r.Instances ?? []).find(i => i.InstanceId === id)
      if (inst !== undefined || waitUntil === undefined) return inst
    } catch (err) {
      if (!isNotFound(err, 'instance')) throw err
      if (waitUntil === undefined) return undefined
    }
    if (ctx.api.clock.now() >= waitUntil) {
      throw new Ec2ProviderError('EC2_NOT_VISIBLE', `${what}: ${id} was launched ${Math.round((ctx.api.clock.now() - launchedAt!) / 1000)} s ago and is still not visible to DescribeInstances; retried later`)
    }
    ctx.logger.debug({ instance: id, what }, 'instance not visible yet; waiting')
    await ctx.api.clock.sleep(ctx.pollMs)
  }
}

/** Waits until the instance is in one of `states` (visible first); the error names the instance. */
export async function waitInstanceState (ctx: Ctx, id: string, states: string[], timeoutMs: number, what: string): Promise<Instance> {
  let last: string | undefined
  return await ctx.api.waitFor(async () => {
    const i = await describeInstance(ctx, id, what)
    last = i?.State?.Name
    return i !== undefined && states.includes(last ?? '') ? i : undefined
  }, {
    timeoutMs,
    pollMs: ctx.pollMs,
    onTimeout: () => new Ec2ProviderError('EC2_TIMEOUT', `${what}: ${id} is still ${last ?? 'not visible'} after ${Math.round(timeoutMs / 1000)} s (waiting for ${states.join(' or ')}); retried later`)
  })
}
