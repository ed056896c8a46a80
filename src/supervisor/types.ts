// What the daemon hands the supervisor: one definition per instance this node must run, and options.
import type { ServiceSpec } from '../spec/schema.js'
import type { Logger } from '../util/log.js'

export interface InstanceDef {
  /** Instance id, e.g. "app-4". */
  id: string
  /** Service name, e.g. "app". */
  service: string
  spec: ServiceSpec
  /** Port this instance listens on (service port + slot). */
  port?: number
  /** Relative command paths and `workdir` resolve against this directory (the spec file's). */
  specDir: string
  /** When set, run this argv instead of `spec.command` (the builtin balancer). */
  argv?: string[]
  /** Extra environment from the daemon (WAKAME_*, dependency addresses); merged over spec.env over process.env. */
  env: Record<string, string>
  /** Exported as WAKAME_VOLUME. */
  volumeDir?: string
}

export interface BackoffOptions {
  /** First restart delay after a failure. @default 1_000 */
  initialMs: number
  /** Delays double up to this. @default 30_000 */
  maxMs: number
  /** An instance ONLINE this long starts again from `initialMs` on its next failure. @default 60_000 */
  resetAfterMs?: number
}

export interface SupervisorOptions {
  /** Node data directory; instance files live in `<dataDir>/instances/<id>/`. */
  dataDir: string
  /** Address services bind to and health checks connect to. */
  bindIp: string
  nodeId: string
  logger: Logger
  backoff?: BackoffOptions
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialMs: 1_000, maxMs: 30_000, resetAfterMs: 60_000 }

/** Without a health section, an instance is ONLINE once its process has stayed up this long. */
export const SETTLE_MS = 300

/** Crash-loop settings used when the spec (one from an older version) has none. */
export const DEFAULT_RESTART = { max_failures: 5, stable_ms: 60_000, max_nodes: 3 } as const

/** Stop signal and timeout used when none is known (an adopted instance whose pid file lacks them). */
export const DEFAULT_STOP = { signal: 'SIGTERM', timeout_ms: 10_000 } as const

/** Health-check period while an instance is Starting (capped by the spec's interval). */
export const STARTING_CHECK_MS = 100
