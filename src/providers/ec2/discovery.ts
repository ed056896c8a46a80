// Finding the cluster's other nodes by tag: the running instances tagged wakame:cluster=<cluster>,
// as mesh addresses. Used by the daemon at start and when it is isolated (the caller backs off);
// afterwards membership comes from gossip, and only the leader polls EC2, so a large cluster does
// not throttle the account.
import type { EC2Client } from '@aws-sdk/client-ec2'
import { silentLogger, type Logger } from '../../util/log.js'
import { Ec2Api } from './api.js'
import { DEFAULT_TIMEOUTS, clusterFilter, describeInstances, type Ctx } from './instances.js'

export interface DiscoveryOptions {
  /** The port every node's mesh listens on. @default 7610 */
  meshPort?: number
  logger?: Logger
}

/** `<privateIp>:<meshPort>` of every running instance of the cluster except this one, sorted. */
export async function discoverPeers (client: EC2Client | Ec2Api, cluster: string, self: { instanceId: string }, o: DiscoveryOptions = {}): Promise<string[]> {
  const logger = o.logger ?? silentLogger()
  const api = client instanceof Ec2Api ? client : new Ec2Api({ client, logger })
  const ctx: Ctx = {
    api, cluster, logger, timeouts: DEFAULT_TIMEOUTS, pollMs: 1_000, pageSize: 1_000, extraTags: {}, recent: new Map(), canAct: () => true
  }
  const found = await describeInstances(ctx, [clusterFilter(ctx), { Name: 'instance-state-name', Values: ['running'] }], `DescribeInstances to discover the peers of ${cluster}`)
  const port = o.meshPort ?? 7610
  const peers = found
    .filter(i => i.InstanceId !== self.instanceId && i.PrivateIpAddress !== undefined && i.PrivateIpAddress !== '')
    .map(i => `${i.PrivateIpAddress!}:${port}`)
  return [...new Set(peers)].sort()
}
