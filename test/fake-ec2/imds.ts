// IMDSv2 for one simulated instance: PUT /latest/api/token, then GETs that must carry the token.
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo as NetAddress } from 'node:net'
import { isoTime } from './protocol.js'
import type { Instance } from './instances.js'
import type { World } from './types.js'

export interface ImdsServer { endpoint: string, close: () => Promise<void> }

interface Tree { [k: string]: string | Buffer | Tree | undefined }

const SIX_HOURS = 6 * 3600 * 1000

function header (req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

function send (req: IncomingMessage, res: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain', server: 'EC2ws', ...headers })
  res.end(req.method === 'HEAD' ? undefined : body)
}

export const roleName = (profileArn: string): string => profileArn.split('/').pop() ?? 'role'

function metadataTree (w: World, inst: Instance): Tree {
  const pub = w.instances.publicIpOf(inst)
  const host = `ip-${inst.privateIp.replace(/\./g, '-')}.ec2.internal`
  const pubHost = pub === undefined ? undefined : `ec2-${pub.replace(/\./g, '-')}.compute-1.amazonaws.com`
  const groupNames = inst.groupIds.map((id) => w.opts.securityGroups.find((g) => g.groupId === id)?.groupName ?? id)
  const now = w.clock.now()
  const az = inst.subnet.availabilityZone
  const arn = inst.profileArn
  const iam: Tree | undefined = arn === undefined
    ? undefined
    : {
        info: JSON.stringify({ Code: 'Success', LastUpdated: isoTime(now), InstanceProfileArn: arn, InstanceProfileId: `AIPA${inst.id.slice(-16).toUpperCase()}` }, null, 2),
        'security-credentials': {
          [roleName(arn)]: JSON.stringify({
            Code: 'Success',
            LastUpdated: isoTime(now),
            Type: 'AWS-HMAC',
            AccessKeyId: inst.accessKeyId,
            SecretAccessKey: `fake-secret-${inst.id}`,
            Token: `fake-session-token-${inst.id}`,
            Expiration: isoTime(now + SIX_HOURS)
          }, null, 2)
        }
      }
  return {
    'meta-data': {
      'ami-id': inst.imageId,
      'ami-launch-index': String(inst.launchIndex),
      hostname: host,
      'instance-id': inst.id,
      'instance-type': inst.instanceType,
      'instance-life-cycle': 'on-demand',
      'local-hostname': host,
      'local-ipv4': inst.privateIp,
      mac: inst.mac,
      'public-hostname': pubHost,
      'public-ipv4': pub,
      'reservation-id': inst.reservationId,
      'security-groups': groupNames.join('\n'),
      placement: { 'availability-zone': az, 'availability-zone-id': w.catalog.azIdOf(az), region: w.opts.region },
      network: {
        interfaces: {
          macs: {
            [inst.mac]: {
              'device-number': '0',
              'interface-id': inst.eniId,
              'local-hostname': host,
              'local-ipv4s': inst.privateIp,
              mac: inst.mac,
              'owner-id': w.opts.accountId,
              'public-hostname': pubHost,
              'public-ipv4s': pub,
              'security-group-ids': inst.groupIds.join('\n'),
              'security-groups': groupNames.join('\n'),
              'subnet-id': inst.subnet.subnetId,
              'subnet-ipv4-cidr-block': inst.subnet.cidrBlock,
              'vpc-id': inst.subnet.vpcId
            }
          }
        }
      },
      iam,
      spot: inst.spotAction === undefined ? undefined : { 'instance-action': JSON.stringify(inst.spotAction), 'termination-time': inst.spotAction.time },
      events: { maintenance: { scheduled: JSON.stringify(inst.maintenance, null, 2), history: '[]' } },
      tags: inst.metadataTags ? { instance: Object.fromEntries(inst.tags) } : undefined,
      services: { domain: 'amazonaws.com', partition: 'aws' }
    },
    'user-data': inst.userData,
    dynamic: {
      'instance-identity': {
        document: JSON.stringify({
          accountId: w.opts.accountId,
          architecture: 'x86_64',
          availabilityZone: az,
          imageId: inst.imageId,
          instanceId: inst.id,
          instanceType: inst.instanceType,
          pendingTime: isoTime(inst.launchTime).replace(/\.\d+Z$/, 'Z'),
          privateIp: inst.privateIp,
          region: w.opts.region,
          version: '2017-09-30'
        }, null, 2)
      }
    }
  }
}

/** A directory answers its entries (sub-directories with a trailing `/`), a leaf its value. */
function lookup (tree: Tree, segments: string[]): string | Buffer | undefined {
  let node: string | Buffer | Tree | undefined = tree
  for (const s of segments) {
    if (node === undefined || typeof node === 'string' || Buffer.isBuffer(node)) return undefined
    node = node[s]
  }
  if (node === undefined || typeof node === 'string' || Buffer.isBuffer(node)) return node
  return Object.entries(node).filter(([, v]) => v !== undefined)
    .map(([k, v]) => typeof v === 'string' || Buffer.isBuffer(v) ? k : `${k}/`).join('\n')
}

export async function startImds (w: World, inst: Instance): Promise<ImdsServer> {
  const tokens = new Map<string, number>()
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    req.resume()
    // Not `new URL(req.url)`: MetadataService sends `//latest/...`, which URL would read as a host name.
    const path = (req.url ?? '/').split('?')[0]?.replace(/\/{2,}/g, '/') ?? '/'
    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return send(req, res, 405, 'Method Not Allowed')
      if (header(req, 'x-forwarded-for') !== undefined) return send(req, res, 403, 'Forbidden')
      const raw = header(req, 'x-aws-ec2-metadata-token-ttl-seconds')
      const ttl = Number(raw)
      if (raw === undefined || !/^\d+$/.test(raw) || ttl < 1 || ttl > 21600) return send(req, res, 400, 'Bad Request')
      const token = randomBytes(42).toString('base64')
      tokens.set(token, w.clock.now() + ttl * 1000)
      return send(req, res, 200, token, { 'x-aws-ec2-metadata-token-ttl-seconds': String(ttl) })
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(req, res, 405, 'Method Not Allowed')
    const token = header(req, 'x-aws-ec2-metadata-token')
    if (token !== undefined) {
      const expires = tokens.get(token)
      if (expires === undefined || expires < w.clock.now()) return send(req, res, 401, 'Unauthorized')
    } else if (inst.httpTokens === 'required') {
      return send(req, res, 401, 'Unauthorized')
    }
    const segments = path.split('/').filter((s) => s !== '')
    const value = segments[0] === 'latest' ? lookup(metadataTree(w, inst), segments.slice(1)) : (segments.length === 0 ? 'latest' : undefined)
    if (value === undefined) return send(req, res, 404, 'Not Found')
    send(req, res, 200, value)
  }
  const server: Server = createServer(handle)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, w.opts.imdsHost, () => { resolve() })
  })
  const { port } = server.address() as NetAddress
  let closed: Promise<void> | undefined
  return {
    endpoint: `http://${w.opts.imdsHost}:${port}`,
    close: async () => {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => { resolve() })
        server.closeAllConnections()
      })
      await closed
    }
  }
}
