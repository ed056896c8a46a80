// Timing of the election. Defaults suit a LAN; see the README's "Failure detection and election".

export interface ConsensusConfig {
  /**
   * A follower that has not heard the leader for a random time in [min, max) starts a pre-vote.
   * The minimum is above the membership stall bound's 3 s "never evicted" promise, so a leader
   * frozen for under 3 s keeps its place. @default 4000
   */
  electionTimeoutMinMs: number
  /** @default 5000 */
  electionTimeoutMaxMs: number
  /**
   * A leader acts (placements, cloud calls) only while a majority of voters acknowledged one of its
   * heartbeats sent within this window. Below electionTimeoutMinMs, because voters refuse to vote
   * for anyone else for that long after hearing the leader. @default 3000
   */
  leaseMs: number
  /**
   * When the leader is known dead (its redial was refused), followers campaign after a random
   * delay in [0, this) instead of waiting for the election timeout. @default 150
   */
  fastElectionJitterMs: number
}

export const DEFAULT_CONSENSUS: ConsensusConfig = {
  electionTimeoutMinMs: 4_000,
  electionTimeoutMaxMs: 5_000,
  leaseMs: 3_000,
  fastElectionJitterMs: 150
}
