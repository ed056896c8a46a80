// Every EC2 call of the provider goes through one Ec2Api: one shared client-side rate limit (a token
// bucket) and one retry policy (exponential backoff with full jitter), so a busy leader slows
// down instead of hammering an account whose API budget other tools share (case 06). The SDK's
// own retries are turned off (maxAttempts 1) so the numbers below are the only ones.
import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2'
import type { Logger } from '../../util/log.js'
import { Ec2ProviderError, awsCodeOf, isTransient, mapAwsError } from './errors.js'

/** Time for waits, backoff and the rate limit; tests inject one driven by the fake's manual clock. */
export interface Clock {
  now: () => number
  sleep: (ms: number) => Promise<void>
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: async (ms) => await new Promise(resolve => setTimeout(resolve, Math.max(0, ms)))
}

export interface RateLimit {
  /**
   * Calls allowed at once after a quiet period. EC2 gives an account about 100 for describe calls
   * and 200 for mutating ones; wakame takes a fifth, leaving the rest to the operator's tools.
   * @default 20
   */
  burst: number
  /** Sustained calls per second (EC2 refills describe calls at 20/s). @default 5 */
  perSecond: number
}

export const DEFAULT_RATE_LIMIT: RateLimit = { burst: 20, perSecond: 5 }

export interface RetryPolicy {
  /** Attempts per call, the first included. 12 rides out case 06 (ten throttled answers in a row). @default 12 */
  maxAttempts: number
  /** Backoff before the 2nd attempt, doubled each time (full jitter: a random pause up to it). @default 200 */
  baseMs: number
  /** Largest backoff. With the defaults a call gives up after at most ~35 s of pauses (~18 s on average). @default 5000 */
  maxMs: number
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 12, baseMs: 200, maxMs: 5_000 }

/** SDK timeouts: a connection that hangs is abandoned and retried (ClientTokens keep it safe). */
export const REQUEST_TIMEOUT_MS = 15_000
export const CONNECTION_TIMEOUT_MS = 3_000

/** A token bucket: `take` resolves when a call may go out. Shared by every call of one provider. */
export class TokenBucket {
  private tokens: number
  private last: number
  private queue: Promise<void> = Promise.resolve()

  constructor (private readonly limit: RateLimit, private readonly clock: Clock) {
    this.tokens = limit.burst
    this.last = clock.now()
  }

  async take (): Promise<void> {
    // Serialized, so waiters are served in order and none starves.
    const turn = this.queue.then(async () => {
      for (;;) {
        const now = this.clock.now()
        this.tokens = Math.min(this.limit.burst, this.tokens + (now - this.last) / 1000 * this.limit.perSecond)
        this.last = now
        if (this.tokens >= 1) { this.tokens -= 1; return }
        await this.clock.sleep(Math.ceil((1 - this.tokens) * 1000 / this.limit.perSecond))
      }
    })
    this.queue = turn.catch(() => {})
    await turn
  }
}

/** An SDK client with retries off and bounded timeouts (when wakame builds it). */
export function makeEc2Client (config: EC2ClientConfig): EC2Client {
  return new EC2Client({
    maxAttempts: 1,
    requestHandler: { requestTimeout: REQUEST_TIMEOUT_MS, connectionTimeout: CONNECTION_TIMEOUT_MS },
    ...config
  })
}

export interface SendOptions {
  /** Names the call in errors and logs ("DescribeInstances for terminate i-…"). */
  what: string
  /** EC2 error codes that also mean "try again" here (e.g. InvalidInstanceID.NotFound right after a launch). */
  transientCodes?: string[]
  /** Checked before each retry of a call that changes something: false stops (the leader lost its lease). */
  mutating?: boolean
  /** Attempts for this call (e.g. 1 for a call without an idempotency token). @default the policy's */
  maxAttempts?: number
}

/** The output type of an SDK command object (read off its middleware handler's result). */
export type OutputOf<C> = C extends { resolveMiddleware: (...a: never[]) => (...b: never[]) => Promise<{ output: infer O }> } ? O : never

export interface Ec2ApiOptions {
  client: EC2Client
  clock?: Clock
  /** Jitter source in [0, 1). @default Math.random */
  random?: () => number
  rateLimit?: RateLimit
  retry?: RetryPolicy
  /** False while this node must not change the cloud (a leader without its lease). @default always true */
  canAct?: () => boolean
  logger: Logger
}

export class Ec2Api {
  readonly client: EC2Client
  readonly clock: Clock
  private readonly bucket: TokenBucket
  private readonly retry: RetryPolicy
  private readonly random: () => number
  /** Calls sent (attempts, retries included), for tests and logs. */
  attempts = 0

  constructor (private readonly opts: Ec2ApiOptions) {
    this.client = opts.client
    this.clock = opts.clock ?? realClock
    this.random = opts.random ?? Math.random
    this.retry = opts.retry ?? DEFAULT_RETRY
    this.bucket = new TokenBucket(opts.rateLimit ?? DEFAULT_RATE_LIMIT, this.clock)
  }

  /** Sends a command through the rate limit, retrying transient failures; other failures are mapped. */
  async send<C extends { input: unknown }> (command: C, o: SendOptions): Promise<OutputOf<C>> {
    const transient = new Set(o.transientCodes ?? [])
    for (let attempt = 1; ; attempt++) {
      if (o.mutating === true && attempt > 1 && this.opts.canAct !== undefined && !this.opts.canAct()) {
        throw new Ec2ProviderError('EC2_LEASE_LOST', `${o.what}: this node lost its lease while retrying; left to the next leader`)
      }
      await this.bucket.take()
      this.attempts++
      try {
        // The SDK's send is typed per command; the command objects here come from the SDK itself.
        return await (this.client.send as (c: unknown) => Promise<OutputOf<C>>)(command)
      } catch (err) {
        const retry = isTransient(err) || transient.has(awsCodeOf(err))
        if (!retry) throw mapAwsError(err, o.what)
        if (attempt >= (o.maxAttempts ?? this.retry.maxAttempts)) {
          const what = `${o.what} (gave up after ${attempt} attempts)`
          // Still retryable for the executor: it tries again later, with the same token. A code
          // that is transient only here (NotFound of something just made) means "not visible yet".
          if (isTransient(err)) throw mapAwsError(err, what)
          throw new Ec2ProviderError('EC2_NOT_VISIBLE', `${what}: ${awsCodeOf(err)}: ${String((err as Error)?.message ?? err)}`, { awsCode: awsCodeOf(err), retryable: true, cause: err })
        }
        const pause = this.backoffMs(attempt)
        this.opts.logger.debug({ call: o.what, attempt, code: awsCodeOf(err), pauseMs: Math.round(pause) }, 'EC2 call failed; retrying')
        await this.clock.sleep(pause)
      }
    }
  }

  /** Full jitter (a random pause up to base·2^(n-1), capped): retries of many callers spread out. */
  backoffMs (attempt: number): number {
    return this.random() * Math.min(this.retry.maxMs, this.retry.baseMs * 2 ** (attempt - 1))
  }

  /**
   * Polls `check` until it returns a value, sleeping `pollMs` between tries; past `timeoutMs` it
   * fails with `onTimeout()` (an error naming what was waited for).
   */
  async waitFor<T> (check: () => Promise<T | undefined>, o: { timeoutMs: number, pollMs: number, onTimeout: () => Error }): Promise<T> {
    const deadline = this.clock.now() + o.timeoutMs
    for (;;) {
      const v = await check()
      if (v !== undefined) return v
      if (this.clock.now() >= deadline) throw o.onTimeout()
      await this.clock.sleep(o.pollMs)
    }
  }
}
