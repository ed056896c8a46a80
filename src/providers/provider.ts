// The cloud, as wakame sees it. Implementations: local (processes on 127.0.0.N) and ec2.
// Leader side (cloud API calls, made only while the leader holds its lease): launch, terminate,
// list, volumes and addresses. Node side (on the node itself): mounting an attached volume.
// Every call is idempotent: a new leader redoing an unfinished call of a dead one changes nothing.
import { WakameError } from '../util/errors.js'

export interface LaunchRequest {
  /** Idempotency token made from the launch decision (see core/cloud-plan.ts). */
  token: string
  /** The decision's id; the new node reports it when it joins (and it is in the VM's tags). */
  decisionId: string
  reason: string
  /** Mesh addresses (multiaddrs) of live nodes, for the new node to join through. */
  bootstrap: string[]
  /** Nodes that boot a new cluster together wait for this many (0: join an existing one). @default 0 */
  bootstrapExpect?: number
  /** Availability zones the new VM may go to (e.g. where a volume is), or any when absent. */
  zones?: string[]
  /** Instance type (EC2), from the spec; the provider's default when absent. */
  instanceType?: string
}

export interface VmInfo {
  /** Also the node id of the daemon running on it. */
  id: string
  ip: string
  state: 'pending' | 'running' | 'terminated'
  /** Launch decision it was made for. */
  launch?: string
  zone?: string
}

/** What the leader expects of a VM it terminates: checked against the cloud right before. */
export interface TerminateCheck {
  ip?: string
}

export interface Provider {
  readonly kind: 'local' | 'ec2'
  /** Launch a VM for a decision; the same token always yields the same VM. */
  launch (req: LaunchRequest): Promise<VmInfo>
  /**
   * Terminate a VM; resolves once it is gone. Terminating a terminated or unknown VM succeeds.
   * With `check`, the VM is re-read first and left alone (an error) if it is not the one meant.
   */
  terminate (vmId: string, check?: TerminateCheck): Promise<void>
  /** The cluster's VMs (found by the cluster tag on EC2). */
  list (): Promise<VmInfo[]>
  /** Create the volume if needed (in the VM's zone) and attach it to the VM. Fails if it is attached elsewhere. */
  attachVolume (name: string, service: string, vmId: string): Promise<void>
  /** Detach the volume from the VM (never forced); succeeds if it is not attached there. */
  detachVolume (name: string, vmId: string): Promise<void>
  /** Where the volume is attached now, as the cloud says (null: nowhere, or no such volume). */
  volumeAttachment (name: string): Promise<string | null>
  /** The zone a volume lives in (it can only move within it), once it exists. */
  volumeZone (name: string): Promise<string | undefined>
  /** Associate the cluster's address `name` with the VM (allocating it on first use). */
  associateAddress (name: string, vmId: string): Promise<void>
  /** Which VM the address is associated with now, as the cloud says (null: none). */
  addressAssociation (name: string): Promise<string | null>
  /** The address's public IP, once allocated. */
  addressIp (name: string): Promise<string | undefined>
  /**
   * Node side: make a volume attached to this VM usable — find its device (by volume id), create
   * a filesystem only if there is none, mount it. Returns the mount path, or undefined when the
   * volume is not (yet) attached here.
   */
  mountVolume (name: string, vmId: string): Promise<string | undefined>
  /** Node side: unmount before the volume is detached. */
  unmountVolume (name: string, vmId: string): Promise<void>
  /** Node side: the volumes mounted on this VM now. */
  mountedVolumes (vmId: string): string[]
}

/**
 * A provider call failed. `retryable: false` means retrying the same request cannot succeed (no
 * capacity, a bad image); anything else (throttling, timeouts, a lost answer) is retried with the
 * same idempotency token, which is safe.
 */
export class ProviderError extends WakameError {
  constructor (code: string, message: string, readonly retryable: boolean) { super(code, message) }
}

/** Definitive failures only; an unknown error is assumed transient (retrying it is idempotent). */
export function isDefinitive (err: unknown): boolean {
  return (err as { retryable?: unknown })?.retryable === false
}

/**
 * The same provider with every asynchronous call passed through `wrap` (named by the call), e.g.
 * to meter or gate it; `mountedVolumes` (synchronous, asked at every heartbeat) is left as it is.
 */
export function wrapProvider (p: Provider, wrap: <A extends unknown[], R>(call: string, fn: (...a: A) => Promise<R>) => (...a: A) => Promise<R>): Provider {
  return {
    kind: p.kind,
    launch: wrap('launch', p.launch.bind(p)),
    terminate: wrap('terminate', p.terminate.bind(p)),
    list: wrap('list', p.list.bind(p)),
    attachVolume: wrap('attach_volume', p.attachVolume.bind(p)),
    detachVolume: wrap('detach_volume', p.detachVolume.bind(p)),
    volumeAttachment: wrap('volume_attachment', p.volumeAttachment.bind(p)),
    volumeZone: wrap('volume_zone', p.volumeZone.bind(p)),
    associateAddress: wrap('associate_address', p.associateAddress.bind(p)),
    addressAssociation: wrap('address_association', p.addressAssociation.bind(p)),
    addressIp: wrap('address_ip', p.addressIp.bind(p)),
    mountVolume: wrap('mount_volume', p.mountVolume.bind(p)),
    unmountVolume: wrap('unmount_volume', p.unmountVolume.bind(p)),
    mountedVolumes: (vm) => p.mountedVolumes(vm)
  }
}
