// A deterministic in-memory network for consensus tests: simulated time, seeded randomness, message
// loss by link, node crashes and restarts with their persisted state. No sockets, no timers.
import { Consensus, type PersistentState } from '../../src/core/consensus/consensus.js'
import { DEFAULT_CONSENSUS, type ConsensusConfig } from '../../src/core/consensus/config.js'
import type { ConsensusMsg } from '../../src/core/consensus/messages.js'
import { emptyDoc, type ClusterDoc, type Heartbeat } from '../../src/core/types.js'

/** mulberry32: a small seeded PRNG. */
export function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface SimNode {
  c: Consensus
  disk: PersistentState | null
  up: boolean
  hbSeq: number
}

export class ConsensusNet {
  now = 0
  readonly nodes = new Map<string, SimNode>()
  /** Links that drop messages, as "from>to". */
  readonly cut = new Set<string>()
  /** Every (term, leader) seen, to check at most one leader per term. */
  readonly leadersByTerm = new Map<number, Set<string>>()
  private queue: Array<{ from: string, msg: ConsensusMsg }> = []
  private readonly rng: () => number
  private lastHb = -Infinity

  constructor (ids: string[], seed = 1, readonly cfg: ConsensusConfig = DEFAULT_CONSENSUS, readonly hbIntervalMs = 500) {
    this.rng = seeded(seed)
    for (const id of ids) this.nodes.set(id, { c: new Consensus(id, null, 0, this.rng, cfg), disk: null, up: true, hbSeq: 0 })
  }

  node (id: string): Consensus { return this.nodes.get(id)!.c }

  bootstrap (voters: string[]): void {
    const doc: ClusterDoc = { ...emptyDoc('test'), voters }
    for (const id of voters) this.node(id).bootstrap(doc, this.now)
    this.flushAll()
  }

  partition (a: string[], b: string[]): void {
    for (const x of a) for (const y of b) { this.cut.add(`${x}>${y}`); this.cut.add(`${y}>${x}`) }
  }

  heal (): void { this.cut.clear() }

  crash (id: string): void {
    this.nodes.get(id)!.up = false
  }

  restart (id: string): void {
    const n = this.nodes.get(id)!
    n.c = new Consensus(id, n.disk, this.now, this.rng, this.cfg)
    n.up = true
  }

  leaders (): string[] {
    return [...this.nodes.entries()].filter(([, n]) => n.up && n.c.currentRole === 'leader').map(([id]) => id)
  }

  actors (): string[] {
    return [...this.nodes.entries()].filter(([, n]) => n.up && n.c.canAct(this.now)).map(([id]) => id)
  }

  /** Advance time by `ms` in steps of `step`, ticking, heartbeating and delivering. */
  run (ms: number, step = 10, check?: () => void): void {
    const end = this.now + ms
    while (this.now < end) {
      this.now += step
      for (const n of this.nodes.values()) if (n.up) n.c.tick(this.now)
      this.flushAll()
      if (this.now - this.lastHb >= this.hbIntervalMs) { this.lastHb = this.now; this.heartbeats() }
      this.deliver()
      check?.()
    }
  }

  private heartbeats (): void {
    for (const [id, n] of this.nodes) {
      if (!n.up) continue
      const hb: Heartbeat = {
        node: id, peer: id, incarnation: 1, seq: ++n.hbSeq, ip: '127.0.0.1', mesh: '', api: '', load1: 0,
        ...n.c.heartbeatFields(this.now), bootstrapExpect: 0, instances: {}
      }
      for (const [to, m] of this.nodes) if (to !== id && m.up && !this.cut.has(`${id}>${to}`)) m.c.heartbeat(hb, this.now)
    }
    this.flushAll()
  }

  private deliver (): void {
    for (let round = 0; round < 20 && this.queue.length > 0; round++) {
      const q = this.queue
      this.queue = []
      for (const { from, msg } of q) {
        for (const [to, n] of this.nodes) {
          if (to === from || !n.up || this.cut.has(`${from}>${to}`)) continue
          n.c.step(msg, this.now)
        }
      }
      this.flushAll()
    }
  }

  flushAll (): void {
    for (const [id, n] of this.nodes) {
      if (!n.up) continue
      const rd = n.c.ready()
      if (rd.persist) n.disk = structuredClone(rd.persist)
      for (const m of rd.send) this.queue.push({ from: id, msg: structuredClone(m) })
      if (n.c.currentRole === 'leader') {
        const set = this.leadersByTerm.get(n.c.currentTerm) ?? new Set()
        set.add(id)
        this.leadersByTerm.set(n.c.currentTerm, set)
      }
    }
  }
}
