// Public types of the fake EC2 endpoint, and the shared world its parts work on.
import type { FakeClock } from './clock.js'
import type { FaultController } from './faults.js'
import type { IdGen } from './protocol.js'
import type { InstanceStore } from './instances.js'
import type { VolumeStore } from './volumes.js'
import type { AddressStore } from './addresses.js'
import type { Catalog } from './catalog.js'

export type InstanceStateName = 'pending' | 'running' | 'shutting-down' | 'terminated'
export type VolumeStateName = 'creating' | 'available' | 'in-use'
export type AttachmentStateName = 'attaching' | 'attached' | 'detaching' | 'busy'

export interface SubnetSpec {
  subnetId: string
  vpcId: string
  availabilityZone: string
  cidrBlock: string
  /** Private addresses handed out in this subnet, in order (default: the global pool). */
  privateIps?: string[]
  tags?: Record<string, string>
}
export interface SecurityGroupSpec { groupId: string, groupName: string, vpcId: string, description?: string }
export interface ImageSpec { imageId: string, name: string, architecture?: string }

export interface MaintenanceEvent {
  Code: string
  Description: string
  EventId: string
  NotBefore: string
  NotAfter?: string
  State: string
}

export interface FakeEc2Options {
  host?: string
  port?: number
  region?: string
  accountId?: string
  /** Default: subnet-a in <region>a (127.0.1.0/24) and subnet-b in <region>b (127.0.2.0/24), one VPC. */
  subnets?: SubnetSpec[]
  /** Default: a `default` group per VPC (sg-default-<vpc id>). Unknown group ids are refused. */
  securityGroups?: SecurityGroupSpec[]
  /** When given, unknown image ids are refused (InvalidAMIID.NotFound); otherwise any ami-* is accepted. */
  images?: ImageSpec[]
  /** Private IPs for subnets without their own list (default 127.0.<subnet index + 1>.10-250). */
  privateIps?: string[]
  /** Addresses for Elastic IPs and auto-assigned public IPs (default 198.51.100.10-250). */
  publicIps?: string[]
  /** Elastic IP quota (AddressLimitExceeded beyond it); EC2's default is 5. */
  maxAddresses?: number
  bootDelayMs?: number // pending -> running, default 300
  shutdownDelayMs?: number // shutting-down -> terminated, default 100
  volumeCreateDelayMs?: number // creating -> available, default 100
  attachDelayMs?: number // attaching -> attached, default 100
  detachDelayMs?: number // detaching -> available (and the re-check period while busy), default 100
  /** Window after RunInstances during which the new id answers InvalidInstanceID.NotFound (default 0). */
  notFoundWindowMs?: number
  /** How long a terminated instance stays visible to DescribeInstances (default 1 h). */
  terminatedVisibleMs?: number
  /** How long a ClientToken is remembered after all its instances terminated (default 24 h). */
  clientTokenRetentionMs?: number
  /** HttpTokens when RunInstances does not say (default 'required'). */
  defaultHttpTokens?: 'required' | 'optional'
  /** Instance types emulated as Xen (devices appear as /dev/xvdX). Default: older families (t2, m4, c4, r4, ...). */
  isXen?: (instanceType: string) => boolean
  /** Where device directories and volume data live (default: a temporary directory removed on close). */
  rootDir?: string
  /** Device root of an instance (default `<rootDir>/<instance-id>/dev`). */
  devRootFor?: (instanceId: string) => string
  /** Extra "is this volume mounted?" check, consulted with the `setMounted` flag while a detach waits. */
  isMounted?: (volume: VolumeInfo) => boolean
  /** Host the per-instance IMDS servers listen on (default 127.0.0.1). */
  imdsHost?: string
  clock?: FakeClock
  onBoot?: (instance: InstanceInfo) => Promise<void> | void
  onTerminate?: (instance: InstanceInfo) => Promise<void> | void
}

export interface InstanceInfo {
  instanceId: string
  reservationId: string
  imageId: string
  instanceType: string
  state: InstanceStateName
  hypervisor: 'nitro' | 'xen'
  subnetId: string
  vpcId: string
  availabilityZone: string
  privateIp: string
  publicIp?: string
  macAddress: string
  networkInterfaceId: string
  securityGroupIds: string[]
  iamInstanceProfileArn?: string
  httpTokens: 'required' | 'optional'
  userData?: string
  tags: Record<string, string>
  launchTime: Date
  clientToken?: string
  devRoot: string
  imdsEndpoint: string
  /** Access key id of the role credentials its IMDS hands out (calls signed with it are attributed to it). */
  accessKeyId?: string
}

export interface RunningInstanceSpec {
  instanceId?: string
  imageId?: string
  instanceType?: string
  subnetId?: string
  privateIp?: string
  securityGroupIds?: string[]
  iamInstanceProfileArn?: string
  userData?: string
  tags?: Record<string, string>
  httpTokens?: 'required' | 'optional'
  /** Also run `onBoot` for it (default false: the operator booted it). */
  boot?: boolean
}

export interface VolumeInfo {
  volumeId: string
  availabilityZone: string
  size: number
  volumeType: string
  state: VolumeStateName
  tags: Record<string, string>
  root: boolean
  dataDir: string
  mounted: boolean
  attachment?: { instanceId: string, device: string, state: AttachmentStateName, deviceFile?: string }
}

export interface AddressInfo {
  allocationId: string
  publicIp: string
  tags: Record<string, string>
  associationId?: string
  instanceId?: string
  privateIp?: string
}

export interface CallRecord {
  seq: number
  action: string
  params: Record<string, string>
  /** The instance whose IMDS role credentials signed the call, if any. */
  caller?: string
  accessKeyId?: string
  at: number
  status: number
  /** 'ok' or the error code answered. */
  outcome: string
  message?: string
}

export interface ForcedDetach { volumeId: string, instanceId: string, at: number }

export interface ResolvedOptions {
  host: string
  region: string
  accountId: string
  subnets: SubnetSpec[]
  securityGroups: SecurityGroupSpec[]
  images?: ImageSpec[]
  publicIps: string[]
  maxAddresses: number
  bootDelayMs: number
  shutdownDelayMs: number
  volumeCreateDelayMs: number
  attachDelayMs: number
  detachDelayMs: number
  terminatedVisibleMs: number
  clientTokenRetentionMs: number
  defaultHttpTokens: 'required' | 'optional'
  isXen: (instanceType: string) => boolean
  rootDir: string
  devRootFor: (instanceId: string) => string
  isMounted?: (volume: VolumeInfo) => boolean
  imdsHost: string
  onBoot?: (instance: InstanceInfo) => Promise<void> | void
  onTerminate?: (instance: InstanceInfo) => Promise<void> | void
}

/** What the parts of the fake share. */
export interface World {
  opts: ResolvedOptions
  clock: FakeClock
  ids: IdGen
  faults: FaultController
  catalog: Catalog
  instances: InstanceStore
  volumes: VolumeStore
  addresses: AddressStore
  /** Runs `fn` after `ms` on the clock; cancelled by close. */
  schedule: (ms: number, fn: () => void) => void
  /** Tracks a hook's promise: close waits for it, a failure is kept in hookErrors. */
  track: (what: string, p: Promise<unknown> | unknown) => void
}
