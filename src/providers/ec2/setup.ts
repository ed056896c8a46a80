// Booting a node with `provider: ec2`, in one call for the daemon: read the identity (IMDSv2),
// the join settings (user-data), build the provider, find peers by tag. The `ec2:` section of the
// daemon config is validated by `Ec2SettingsSchema` (every field optional: an AMI booted with
// user-data needs no config file at all).
import { join } from 'node:path'
import type { Logger } from '../../util/log.js'
import { discoverPeers } from './discovery.js'
import { DirDiskOps, type DiskOps } from './disk.js'
import { Ec2Provider } from './ec2-provider.js'
import type { Ec2Settings } from './settings.js'
import { readIdentity, watchNotices, type Identity } from './identity.js'
import { secretFileFor } from './secrets.js'
import { launchUserData, parseUserData, type SecretRefValue, type UserData } from './userdata.js'

export { Ec2SettingsSchema, type Ec2Settings } from './settings.js'

/** What this instance is (IMDS) and the join settings it was booted with (its user-data). */
export interface Ec2Platform {
  identity: Identity
  join?: UserData
}

/** Reads the identity and user-data from IMDSv2 (fails fast off EC2, see identity.ts). */
export async function readPlatform (settings: Pick<Ec2Settings, 'imds_endpoint'>): Promise<Ec2Platform> {
  const identity = await readIdentity(settings.imds_endpoint !== undefined ? { endpoint: settings.imds_endpoint } : {})
  const join_ = identity.userData !== undefined && identity.userData.trim() !== '' ? parseUserData(identity.userData) : undefined
  return { identity, ...(join_ !== undefined ? { join: join_ } : {}) }
}

/**
 * The daemon config this instance implies, under the config file, env and flags: its id, address
 * and zone from IMDS, and the user-data's cluster, peers, secrets and launch decision.
 */
export function platformDefaults (p: Ec2Platform, dataDir: string): Record<string, unknown> {
  const j = p.join
  return {
    node_id: p.identity.instanceId,
    bind: p.identity.privateIp,
    zone: p.identity.zone,
    ...(j !== undefined
      ? {
          cluster: j.cluster,
          bootstrap: j.bootstrap,
          bootstrap_expect: j.bootstrap_expect,
          psk_file: secretFileFor(j.psk, dataDir, 'psk'),
          admin_token_file: secretFileFor(j.admin_token, dataDir, 'admin-token'),
          ...(j.launch !== undefined ? { launch: j.launch } : {}),
          ...(j.spec !== undefined ? { spec: j.spec } : {})
        }
      : {})
  }
}

export interface Ec2BootOptions {
  /** The `ec2:` config section (parsed), `{}` when absent. */
  settings: Ec2Settings
  /** Read already (readPlatform); read here when absent. */
  platform?: Ec2Platform
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
  const { identity, join: join_ } = o.platform ?? await readPlatform(s)
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
    ...(o.disk !== undefined ? { disk: o.disk } : s.disk_dir !== undefined ? { disk: new DirDiskOps(s.disk_dir) } : {}),
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
