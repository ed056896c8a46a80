// Errors of the EC2 provider, and how an AWS SDK error maps to one. The executor retries anything
// not marked definitive (with the same idempotency token), so the one question each mapping answers
// is: can the very same request succeed later? Throttling, 5xx, timeouts and states that move on
// their own (a volume still detaching) can; a bad image id, a missing permission or a quota cannot.
import { ProviderError } from '../provider.js'

export type Ec2ErrorCode =
  | 'EC2_THROTTLED' // RequestLimitExceeded and friends: retried with backoff
  | 'EC2_UNAVAILABLE' // 5xx, InternalError, network errors and timeouts
  | 'EC2_NOT_VISIBLE' // a resource created a moment ago is not visible yet (eventual consistency)
  | 'EC2_LAUNCH_RATE' // the spend guard: too many launches in the last minute
  | 'EC2_NO_CAPACITY' // InsufficientInstanceCapacity in every allowed subnet
  | 'EC2_NO_SUBNET' // no configured subnet in the zones a launch may use
  | 'EC2_BAD_REQUEST' // the request itself is wrong (image, subnet, group, parameter)
  | 'EC2_UNAUTHORIZED' // the instance profile lacks a permission
  | 'EC2_QUOTA' // an account limit (instances, vCPUs, addresses, volumes)
  | 'EC2_NOT_OURS' // terminate refused: not tagged with this cluster
  | 'EC2_WRONG_VM' // terminate refused: another VM than the one meant (address changed)
  | 'EC2_SELF' // terminate refused: this very node
  | 'EC2_BUSY' // a state that should move on: attached elsewhere, still detaching, in use
  | 'EC2_TIMEOUT' // a wait for a state ran past its deadline
  | 'EC2_ZONE_MISMATCH' // a volume cannot be attached to a VM in another zone
  | 'EC2_LEASE_LOST' // the leader lost its lease between two calls of one operation
  | 'EC2_DEVICE' // the node cannot find, check, format or mount a volume's disk
  | 'EC2_FAILED' // anything else the cloud answered

const DEFINITIVE = new Set<Ec2ErrorCode>([
  'EC2_NO_CAPACITY', 'EC2_NO_SUBNET', 'EC2_BAD_REQUEST', 'EC2_UNAUTHORIZED', 'EC2_QUOTA',
  'EC2_NOT_OURS', 'EC2_WRONG_VM', 'EC2_SELF', 'EC2_ZONE_MISMATCH'
])

export class Ec2ProviderError extends ProviderError {
  override readonly code: Ec2ErrorCode
  /** The SDK error's name (EC2's error code), when the cloud answered one. */
  readonly awsCode: string | undefined
  constructor (code: Ec2ErrorCode, message: string, o: { awsCode?: string, retryable?: boolean, cause?: unknown } = {}) {
    super(code, message, o.retryable ?? !DEFINITIVE.has(code))
    this.code = code
    this.awsCode = o.awsCode
    if (o.cause !== undefined) (this as { cause?: unknown }).cause = o.cause
  }
}

/** What an SDK error looks like: `name` is EC2's error code, `$metadata` has the HTTP status. */
interface SdkErrorLike { name?: unknown, message?: unknown, code?: unknown, $metadata?: { httpStatusCode?: number } }

/** EC2's error code: the SDK error's name, or the code an Ec2ProviderError carries. */
export function awsCodeOf (err: unknown): string {
  if (err instanceof Ec2ProviderError) return err.awsCode ?? ''
  const e = err as SdkErrorLike | undefined
  return typeof e?.name === 'string' ? e.name : ''
}

export function httpStatusOf (err: unknown): number | undefined {
  return (err as SdkErrorLike | undefined)?.$metadata?.httpStatusCode
}

const THROTTLING = new Set([
  'RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'ThrottledException', 'RequestThrottled',
  'RequestThrottledException', 'TooManyRequestsException', 'SlowDown', 'EC2ThrottledException', 'PriorRequestNotComplete'
])
const UNAVAILABLE = new Set(['InternalError', 'InternalFailure', 'ServiceUnavailable', 'Unavailable', 'RequestTimeout', 'RequestTimeoutException'])
// Node socket errors and the SDK's own timeout errors: the request may or may not have been carried out.
const NETWORK = new Set(['TimeoutError', 'AbortError', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'NetworkingError'])
const CAPACITY = new Set(['InsufficientInstanceCapacity', 'InsufficientCapacity', 'InsufficientHostCapacity', 'InsufficientReservedInstanceCapacity'])
const UNAUTHORIZED = new Set(['UnauthorizedOperation', 'AuthFailure', 'Blocked', 'OptInRequired', 'PendingVerification', 'InvalidClientTokenId', 'SignatureDoesNotMatch', 'AccessDenied', 'AccessDeniedException'])
const QUOTA = new Set(['InstanceLimitExceeded', 'VcpuLimitExceeded', 'AddressLimitExceeded', 'VolumeLimitExceeded', 'MaxIOPSLimitExceeded', 'ResourceLimitExceeded', 'MaxSpotInstanceCountExceeded', 'TagLimitExceeded'])
// States that move on by themselves (or once another node acts): the same request may work later.
const BUSY = new Set(['IncorrectState', 'IncorrectInstanceState', 'VolumeInUse', 'Resource.AlreadyAssociated', 'InvalidVolume.ZoneMismatch'])

export function isThrottling (err: unknown): boolean {
  return THROTTLING.has(awsCodeOf(err)) || httpStatusOf(err) === 429
}

export function isCapacity (err: unknown): boolean {
  return CAPACITY.has(awsCodeOf(err))
}

/** Worth repeating as is, after a pause: throttling, server errors, lost connections and timeouts. */
export function isTransient (err: unknown): boolean {
  if (err instanceof Ec2ProviderError) return err.retryable
  const code = awsCodeOf(err)
  const status = httpStatusOf(err)
  // EC2 answers these with HTTP 500, but repeating the launch in the same place will not help.
  if (CAPACITY.has(code)) return false
  if (isThrottling(err) || UNAVAILABLE.has(code) || NETWORK.has(code)) return true
  const sys = (err as { code?: unknown })?.code
  if (typeof sys === 'string' && NETWORK.has(sys)) return true
  return status !== undefined ? status >= 500 : code === '' || /timeout|socket hang up/i.test(String((err as SdkErrorLike)?.message ?? ''))
}

export function isNotFound (err: unknown, kind?: 'instance' | 'volume' | 'address'): boolean {
  const code = awsCodeOf(err)
  if (kind === 'instance') return code === 'InvalidInstanceID.NotFound'
  if (kind === 'volume') return code === 'InvalidVolume.NotFound'
  if (kind === 'address') return code === 'InvalidAllocationID.NotFound' || code === 'InvalidAddress.NotFound'
  return code.endsWith('.NotFound')
}

/**
 * An SDK error as a ProviderError whose `retryable` is right and whose message says what to do.
 * `what` names the operation ("RunInstances for launch l-3").
 */
export function mapAwsError (err: unknown, what: string): Ec2ProviderError {
  if (err instanceof Ec2ProviderError) return err
  const code = awsCodeOf(err)
  const status = httpStatusOf(err)
  const msg = String((err as SdkErrorLike)?.message ?? err)
  const at = `${what}: ${code !== '' ? `${code}: ` : ''}${msg}`
  const o = { awsCode: code, cause: err }
  if (isThrottling(err)) return new Ec2ProviderError('EC2_THROTTLED', `${at} (throttled by EC2; retried with backoff — if it persists, other tools share the account's API budget)`, o)
  if (CAPACITY.has(code)) return new Ec2ProviderError('EC2_NO_CAPACITY', `${at} (add subnets in other zones, or choose another instance type)`, o)
  if (UNAUTHORIZED.has(code)) return new Ec2ProviderError('EC2_UNAUTHORIZED', `${at} (give the instance profile's role this permission: see the IAM policy in the README)`, o)
  if (QUOTA.has(code)) return new Ec2ProviderError('EC2_QUOTA', `${at} (an account limit: raise it in Service Quotas, or lower max_nodes)`, o)
  if (BUSY.has(code)) return new Ec2ProviderError('EC2_BUSY', `${at} (the resource is busy; retried later)`, o)
  if (isTransient(err)) return new Ec2ProviderError('EC2_UNAVAILABLE', `${at} (EC2 or the network failed; retried with backoff)`, o)
  // Things wakame made a moment ago may not be visible yet; an image, subnet or group named in the
  // settings that does not exist will not appear by waiting.
  if (/^Invalid(InstanceID|Volume|AllocationID|Address|AssociationID|Attachment)\.NotFound$/.test(code)) {
    return new Ec2ProviderError('EC2_FAILED', `${at} (not found; it may not be visible yet, retried)`, o)
  }
  if (/^(Invalid|Missing|Unsupported|IdempotentParameterMismatch|DryRunOperation)/.test(code) || status === 400) {
    return new Ec2ProviderError('EC2_BAD_REQUEST', `${at} (check the ec2 settings: image, instance type, subnets, security groups, instance profile)`, o)
  }
  return new Ec2ProviderError('EC2_FAILED', at, o)
}
