// What every figure gets: the options of this run.
export interface Ctx {
  quick: boolean
  /** Cluster sizes for P1, P2, P5, P7. */
  ns: number[]
  /** Cluster sizes for P9. */
  growthNs: number[]
  /** Trials per figure where a figure has trials (each figure scales it). */
  trials: number
  /** Minutes of each spurious-election window (P3). */
  electionMinutes: number
  /** Seconds of each idle footprint window (P5, P9). */
  idleSeconds: number
  /** Failover trials (P3). */
  failoverTrials: number
}
