// Fault injection: throttling, capacity, internal errors, delays, rate limits, the NotFound window.
import type { FakeClock } from './clock.js'
import { Ec2Error } from './protocol.js'

/** `'*'` matches every action. A count of -1 (or Infinity) means "until cleared". */
export type ActionPattern = string

interface Rule {
  kind: 'throttle' | 'internal' | 'internal-after' | 'delay' | 'capacity'
  action: ActionPattern
  remaining: number
  ms?: number
  subnetId?: string
  availabilityZone?: string
}

interface Bucket { burst: number, perSecond: number, tokens: number, last: number }

const THROTTLED = (): Ec2Error => new Ec2Error('RequestLimitExceeded', 'Request limit exceeded.', 503)
const INTERNAL = (): Ec2Error => new Ec2Error('InternalError', 'An internal error has occurred', 500)

const count = (n: number | undefined): number => n === undefined ? 1 : n < 0 ? Infinity : n

export class FaultController {
  private rules: Rule[] = []
  private buckets = new Map<string, Bucket>()
  /** Applied to instances launched from now on. */
  notFoundWindowMs: number

  constructor (private readonly clock: FakeClock, notFoundWindowMs: number) {
    this.notFoundWindowMs = notFoundWindowMs
  }

  /** The next `n` calls of `action` answer HTTP 503 RequestLimitExceeded (nothing is executed). */
  throttle (action: ActionPattern, n?: number): void { this.rules.push({ kind: 'throttle', action, remaining: count(n) }) }

  /**
   * The next `n` calls of `action` answer HTTP 500 InternalError. With `afterExecute`, the call is carried out
   * first and only its answer is lost (a retry with the same ClientToken must then find the first result).
   */
  internalError (action: ActionPattern, n?: number, o: { afterExecute?: boolean } = {}): void {
    this.rules.push({ kind: o.afterExecute === true ? 'internal-after' : 'internal', action, remaining: count(n) })
  }

  /** The next `n` calls of `action` are answered `ms` later (on the fake's clock). */
  delay (action: ActionPattern, ms: number, n?: number): void { this.rules.push({ kind: 'delay', action, remaining: count(n), ms }) }

  /** The next `n` RunInstances into the subnet / AZ (any, when neither is given) fail with InsufficientInstanceCapacity. */
  insufficientCapacity (n?: number, where: { subnetId?: string, availabilityZone?: string } = {}): void {
    this.rules.push({ kind: 'capacity', action: 'RunInstances', remaining: count(n), ...where })
  }

  /** A token bucket per action (or '*', shared by all): beyond it, RequestLimitExceeded. */
  rateLimit (action: ActionPattern, o: { burst: number, perSecond: number }): void {
    this.buckets.set(action, { ...o, tokens: o.burst, last: this.clock.now() })
  }

  setNotFoundWindow (ms: number): void { this.notFoundWindowMs = ms }

  clear (): void {
    this.rules = []
    this.buckets.clear()
  }

  private take (kind: Rule['kind'], action: string, match: (r: Rule) => boolean = () => true): Rule | undefined {
    const rule = this.rules.find((r) => r.kind === kind && (r.action === '*' || r.action === action) && r.remaining > 0 && match(r))
    if (rule !== undefined) {
      rule.remaining--
      if (rule.remaining <= 0) this.rules = this.rules.filter((r) => r !== rule)
    }
    return rule
  }

  private bucketAllows (key: string): boolean {
    const b = this.buckets.get(key)
    if (b === undefined) return true
    const now = this.clock.now()
    b.tokens = Math.min(b.burst, b.tokens + (now - b.last) / 1000 * b.perSecond)
    b.last = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  /** Before a call runs: its delay, then throttling, rate limits and internal errors. */
  async before (action: string): Promise<void> {
    const d = this.take('delay', action)
    if (d?.ms !== undefined && d.ms > 0) await new Promise<void>((resolve) => { this.clock.setTimeout(resolve, d.ms ?? 0) })
    if (this.take('throttle', action) !== undefined) throw THROTTLED()
    if (!this.bucketAllows(action) || !this.bucketAllows('*')) throw THROTTLED()
    if (this.take('internal', action) !== undefined) throw INTERNAL()
  }

  /** After a call ran: is its answer to be lost? */
  after (action: string): void {
    if (this.take('internal-after', action) !== undefined) throw INTERNAL()
  }

  /** Consumes a capacity fault matching a launch into `subnetId` / `availabilityZone`, if any. */
  capacity (instanceType: string, subnetId: string, availabilityZone: string, otherZones: string[]): void {
    const rule = this.take('capacity', 'RunInstances', (r) =>
      (r.subnetId === undefined || r.subnetId === subnetId) && (r.availabilityZone === undefined || r.availabilityZone === availabilityZone))
    if (rule === undefined) return
    throw new Ec2Error('InsufficientInstanceCapacity',
      `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${availabilityZone}). ` +
      'Our system will be working on provisioning additional capacity. You can currently get ' +
      `${instanceType} capacity by not specifying an Availability Zone in your request or choosing ${otherZones.join(', ')}.`, 500)
  }

  /** Pending rules (for assertions and the admin endpoint). */
  describe (): Array<Omit<Rule, 'remaining'> & { remaining: number | 'unlimited' }> {
    return this.rules.map((r) => ({ ...r, remaining: r.remaining === Infinity ? 'unlimited' : r.remaining }))
  }
}
