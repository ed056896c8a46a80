// Booting a node with `provider: ec2`, in one call for the daemon: read the identity (IMDSv2),
// the join settings (user-data), build the provider, find peers by tag. The `ec2:` section of the
// daemon config is validated by `Ec2SettingsSchema` (every field optional: an AMI booted with
// user-data needs no config file at all).
import { join } from 'node:path'
import { z } from 'zod'
import type { Logger } from '../../util/log.js'
import { discoverPeers } from './discovery.js'
import { type DiskOps } from './disk.js'
import { DEFAULT_MAX_LAUNCHES_PER_MINUTE, Ec2Provider } from './ec2-provider.js'
import { readIdentity, watchNotices, type Identity } from './identity.js'
import { launchUserData, parseUserData, type SecretRefValue, type UserData } from './userdata.js'

const id = (prefix: string) => z.string().regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), `an id like ${prefix}-0123456789abcdef0`)

export const Ec2SettingsSchema = z.strictObject({
  /** @default the instance's region (IMDS) */
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/).optional(),
  /** EC2 API endpoint (tests: the fake). @default the region's */
  endpoint: z.url().optional(),
  /** Instance metadata endpoint. @default http://169.254.169.254 */
  imds_endpoint: z.url().optional(),
  /** Image of launched VMs. @default this node's own AMI */
  image_id: id('ami').optional(),
  launch_template: z.strictObject({ id: id('lt').optional(), name: z.string().min(3).optional(), version: z.string().optional() })
    .refine(t => (t.id === undefined) !== (t.name === undefined), 'give the launch template\'s id or its name').optional(),
  /** @default this node's instance type (the spec's `instance_type` wins) */
  instance_type: z.string().regex(/^[a-z0-9-]+\.[a-z0-9-]+$/).optional(),
  /** Subnets VMs are launched in (one per zone spreads them). @default this node's subnet */
  subnets: z.array(id('subnet')).min(1).optional(),
  /** @default this node's security groups */
  security_groups: z.array(id('sg')).min(1).optional(),
  /** @default this node's instance profile */
  instance_profile_arn: z.string().regex(/^arn:aws[\w-]*:iam::\d{12}:instance-profile\/.+$/).optional(),
  max_launches_per_minute: z.number().int().min(1).max(1000).default(DEFAULT_MAX_LAUNCHES_PER_MINUTE),
  /** Extra tags on everything wakame creates. */
  tags: z.record(z.string().min(1).max(128).refine(k => !k.startsWith('aws:') && !k.startsWith('wakame:'), 'aws: and wakame: tags are reserved'), z.string().max(256)).default({}),
  volume_type: z.enum(['gp2', 'gp3', 'io1', 'io2', 'st1', 'sc1', 'standard']).default('gp3'),
  volume_encrypted: z.boolean().default(true),
  volume_kms_key_id: z.string().optional(),
  /** @default <data_dir>/volumes */
  mount_root: z.string().optional()
})

export type Ec2Settings = z.output<typeof Ec2SettingsSchema>

export interface Ec2BootOptions {
  /** The `ec2:` config section (parsed), `{}` when absent. */
  settings: Ec2Settings
  /** The cluster name from the config; user-data gives it otherwise. */
  cluster?: string
  dataDir: string
  meshPort: number
  /** What launched VMs are told to read their secrets from (this node's own paths by default). */
  psk: SecretRefValue
  adminToken: SecretRefValue
  spec?: string
  /** Size in GiB of a new volume (the spec's `volume.size_gb`). */
  volumeSizeGb?: (name: string, service: string) => number
  canAct?: () => boolean
  disk?: DiskOps
  logger: Logger
}

export interface Ec2Boot {
  identity: Identity
  /** The join settings this node was launched with, when its user-data has them. */
  join?: UserData
  cluster: string
  provider: Ec2Provider
  /** Mesh addresses of the cluster's other running instances (by tag), now. */
  discover: () => Promise<string[]>
  /** Starts polling the spot/maintenance notices; `onNotice` makes the node report draining. */
  watchNotices: (onNotice: (reason: string) => void) => { stop: () => void, polls: () => number }
}

export async function bootEc2 (o: Ec2BootOptions): Promise<Ec2Boot> {
  const s = o.settings
  const imds = s.imds_endpoint !== undefined ? { endpoint: s.imds_endpoint } : {}
  const identity = await readIdentity(imds)
  const join_ = identity.userData !== undefined && identity.userData.trim() !== '' ? parseUserData(identity.userData) : undefined
  const cluster = o.cluster ?? join_?.cluster
  if (cluster === undefined) throw new Error('no cluster name: set `cluster` in the config, or launch the instance with wakame user-data (see the README)')
  const provider = new Ec2Provider({
    client: { region: s.region ?? identity.region, ...(s.endpoint !== undefined ? { endpoint: s.endpoint } : {}) },
    cluster,
    self: identity,
    launch: {
      ...(s.image_id !== undefined ? { imageId: s.image_id } : {}),
      ...(s.launch_template !== undefined ? { launchTemplate: s.launch_template } : {}),
      instanceType: s.instance_type ?? identity.instanceType,
      ...(s.subnets !== undefined ? { subnetIds: s.subnets } : {}),
      ...(s.security_groups !== undefined ? { securityGroupIds: s.security_groups } : {}),
      ...(s.instance_profile_arn !== undefined ? { instanceProfileArn: s.instance_profile_arn } : {}),
      userData: launchUserData({ cluster, psk: o.psk, admin_token: o.adminToken, ...(o.spec !== undefined ? { spec: o.spec } : {}) })
    },
    maxLaunchesPerMinute: s.max_launches_per_minute,
    tags: s.tags,
    volumes: { type: s.volume_type, encrypted: s.volume_encrypted, ...(s.volume_kms_key_id !== undefined ? { kmsKeyId: s.volume_kms_key_id } : {}), ...(o.volumeSizeGb !== undefined ? { sizeGb: o.volumeSizeGb } : {}) },
    mountRoot: s.mount_root ?? join(o.dataDir, 'volumes'),
    ...(o.disk !== undefined ? { disk: o.disk } : {}),
    ...(o.canAct !== undefined ? { canAct: o.canAct } : {}),
    logger: o.logger
  })
  return {
    identity,
    ...(join_ !== undefined ? { join: join_ } : {}),
    cluster,
    provider,
    discover: async () => await discoverPeers(provider.api, cluster, identity, { meshPort: o.meshPort, logger: o.logger }),
    watchNotices: (onNotice) => watchNotices({ ...imds, onNotice, logger: o.logger })
  }
}
