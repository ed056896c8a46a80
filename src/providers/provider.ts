import { WakameError } from '../util/errors.js'

// The cloud, as the leader sees it. Implementations: local (processes on 127.0.0.N) and ec2.
// Every call is idempotent: a new leader redoing an unfinished call of a dead one changes nothing.

export interface LaunchRequest {
  /** Idempotency token made from the launch decision (see core/cloud-plan.ts). */
  token: string
  /** The decision's id; the new node reports it when it joins. */
  decisionId: string
  reason: string
  /** Mesh addresses (multiaddrs) of live nodes, for the new node to join through. */
  bootstrap: string[]
  /** Nodes that boot a new cluster together wait for this many (0: join an existing one). @default 0 */
  bootstrapExpect?: number
}

export interface VmInfo {
  /** Also the node id of the daemon running on it. */
  id: string
  ip: string
  state: 'pending' | 'running' | 'terminated'
  /** Launch decision it was made for. */
  launch?: string
}

export interface Provider {
  readonly kind: 'local' | 'ec2'
  /** Launch a VM for a decision; the same token always yields the same VM. */
  launch (req: LaunchRequest): Promise<VmInfo>
  /** Terminate a VM; resolves once it is gone. Terminating a terminated or unknown VM succeeds. */
  terminate (vmId: string): Promise<void>
  list (): Promise<VmInfo[]>
  /** Create the volume if needed and attach it to the VM. Fails if it is attached elsewhere. */
  attachVolume (name: string, service: string, vmId: string): Promise<void>
  /** Detach the volume from the VM; succeeds if it is not attached there. */
  detachVolume (name: string, vmId: string): Promise<void>
  /** Where the volume is attached now, as the cloud says (null: nowhere, or no such volume). */
  volumeAttachment (name: string): Promise<string | null>
  /** On the node itself: where an attached volume is mounted, or undefined when it is not attached here. */
  mountPoint (name: string, vmId: string): string | undefined
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
