// What one seed decides: cluster size, network quality, the fault schedule, cloud faults and the
// operator's commands. Plain data, so a failing seed can be printed and replayed.
import type { CloudFaults } from './cloud.js'
import { Rng } from './rng.js'

export type Target = 'leader' | 'follower' | 'any'

export type Fault =
  | { at: number, type: 'partition', target: Target, peers: 'all' | 'half', oneWay: boolean, ms: number }
  | { at: number, type: 'crash-daemon', target: Target, ms: number, corrupt: boolean }
  | { at: number, type: 'kill-vm', target: Target }
  | { at: number, type: 'stall', target: Target, ms: number }
  | { at: number, type: 'full-restart', ms: number }

export type Workload =
  | { at: number, type: 'propagate', service: string }
  | { at: number, type: 'scale', service: string, count: number }
  | { at: number, type: 'migrate', service: string }

export interface NetPlan {
  /** Per-message delay range, ms (a message also waits its link's base delay). */
  delayMs: [number, number]
  loss: number
  duplicate: number
}

export interface SimPlan {
  seed: number
  /** Nodes booted together at the start (they bootstrap with bootstrap_expect = this). */
  initialNodes: number
  /** Nodes that boot soon after and join the cluster (bootstrap_expect 0), as a large fleet would. */
  joiners: number
  minNodes: number
  maxNodes: number
  net: NetPlan
  cloud: CloudFaults
  faults: Fault[]
  workload: Workload[]
  /** Faults happen before this time; then everything heals. */
  faultEndMs: number
  /** After healing, the cluster must converge within this long. */
  livenessMs: number
  /** Per-node clock rate error, at most (e.g. 0.002 = 0.2 %). */
  maxDrift: number
  /** Instances of this service crash-loop on this node (its supervisor gives up on them): they must move. */
  crashLoop?: { service: string, node: string }
}

export interface PlanOptions {
  /** Force the number of initial nodes (e.g. 100 or 1000 for a scale run without faults). */
  nodes?: number
  /** No faults at all (scale runs). */
  calm?: boolean
  /** Seeds may crash-loop a service on one node (default true; false replays a seed as before they existed). */
  crashLoops?: boolean
}

export function makePlan (seed: number, opts: PlanOptions = {}): SimPlan {
  const r = new Rng(seed)
  // A large fleet: three nodes form the cluster, the others join it (as VMs the leader launches do).
  const big = opts.nodes !== undefined && opts.nodes > 5
  const initialNodes = big ? 3 : opts.nodes ?? r.pick([1, 1, 3, 3, 5])
  const joiners = big ? opts.nodes! - 3 : 0
  const minNodes = Math.max(r.int(3, 5), Math.min(initialNodes, 5))
  const faultEndMs = opts.calm ? 5_000 : r.int(20_000, 45_000)
  const faults: Fault[] = []
  if (!opts.calm) {
    const n = r.int(0, 6)
    for (let i = 0; i < n; i++) {
      const at = r.int(4_000, faultEndMs - 2_000)
      const target: Target = r.pick(['leader', 'leader', 'follower', 'any'])
      switch (r.pick(['partition', 'partition', 'crash-daemon', 'kill-vm', 'stall', 'stall', 'full-restart'] as const)) {
        case 'partition': faults.push({ at, type: 'partition', target, peers: r.pick(['all', 'half']), oneWay: r.chance(0.3), ms: r.int(1_000, 15_000) }); break
        case 'crash-daemon': faults.push({ at, type: 'crash-daemon', target, ms: r.int(200, 8_000), corrupt: r.chance(0.2) }); break
        case 'kill-vm': faults.push({ at, type: 'kill-vm', target }); break
        case 'stall': faults.push({ at, type: 'stall', target, ms: r.int(500, 6_000) }); break
        case 'full-restart': if (r.chance(0.5)) faults.push({ at, type: 'full-restart', ms: r.int(200, 5_000) }); break
      }
    }
  }
  const workload: Workload[] = []
  const w = opts.calm ? 0 : r.int(0, 5)
  for (let i = 0; i < w; i++) {
    const at = r.int(3_000, faultEndMs + 5_000)
    switch (r.pick(['propagate', 'scale', 'migrate'] as const)) {
      case 'propagate': workload.push({ at, type: 'propagate', service: r.pick(['app', 'www']) }); break
      case 'scale': workload.push({ at, type: 'scale', service: r.pick(['app', 'www']), count: r.int(1, 3) }); break
      case 'migrate': workload.push({ at, type: 'migrate', service: r.pick(['app', 'www', 'db', 'lb']) }); break
    }
  }
  const calm = opts.calm === true
  // Drawn from a generator of its own, so every other choice of a seed stays what it was.
  const cr = new Rng(seed ^ 0xc2a5)
  const crashLoop = !calm && opts.crashLoops !== false && cr.chance(0.3) ? { service: cr.pick(['app', 'www']), node: `vm-${cr.int(1, 3)}` } : undefined
  return {
    seed,
    initialNodes,
    joiners,
    minNodes,
    maxNodes: Math.max(minNodes + 4, initialNodes + joiners),
    net: calm ? { delayMs: [0.2, 2], loss: 0, duplicate: 0 } : { delayMs: [r.range(0.1, 2), r.range(2, 40)], loss: r.pick([0, 0, 0.01, 0.05]), duplicate: r.pick([0, 0.01, 0.05]) },
    cloud: calm
      ? { capacityRate: 0, throttleRate: 0, lostAnswerRate: 0, delayMs: [5, 50], bootMs: [500, 1_500] }
      : { capacityRate: r.pick([0, 0, 0.1]), throttleRate: r.pick([0, 0.1, 0.3]), lostAnswerRate: r.pick([0, 0.1, 0.2]), delayMs: [5, r.int(50, 2_000)], bootMs: [500, r.int(1_000, 5_000)] },
    faults: faults.sort((a, b) => a.at - b.at),
    workload: workload.sort((a, b) => a.at - b.at),
    faultEndMs,
    livenessMs: 90_000,
    maxDrift: calm ? 0 : 0.002,
    ...(crashLoop ? { crashLoop } : {})
  }
}
