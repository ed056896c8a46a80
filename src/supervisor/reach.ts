// Is an instance on a dead node still reachable from here? A TCP connect to its port, bounded.
//
// A node judged dead keeps its instances in this node's views for a grace period, because its
// daemon may only be restarting while its services still serve. When this node cannot reach an
// instance at all (refused: nothing listens; timeout: the host is gone or cut off from here), the
// balancer here cannot either, so waiting out the grace would only keep sending it traffic.
import { connect } from 'node:net'

export type Reach = 'reachable' | 'unreachable'

export async function probeTcp (host: string, port: number, timeoutMs = 300): Promise<Reach> {
  return await new Promise(resolve => {
    const sock = connect({ host, port })
    const done = (r: Reach): void => { sock.removeAllListeners(); sock.destroy(); resolve(r) }
    sock.setTimeout(timeoutMs, () => done('unreachable'))
    sock.once('connect', () => done('reachable'))
    sock.once('error', () => done('unreachable'))
  })
}

/**
 * Probes each instance of a dead member once per death (keyed by the member's `since`), remembering
 * the unreachable ones until the member is heard again. The set is what dependencyView leaves out.
 */
export class DeadReach {
  readonly unreachable = new Set<string>()
  private readonly probed = new Map<string, number>()

  constructor (private readonly probe: (host: string, port: number) => Promise<Reach>, private readonly changed: () => void) {}

  /** `targets`: instances on members dead within the grace, with the time their member died. */
  check (targets: Array<{ id: string, ip: string, port: number, deadSince: number }>): void {
    const live = new Set(targets.map(t => t.id))
    for (const id of [...this.probed.keys()]) {
      if (!live.has(id)) { this.probed.delete(id); this.unreachable.delete(id) }
    }
    for (const t of targets) {
      if (this.probed.get(t.id) === t.deadSince) continue
      this.probed.set(t.id, t.deadSince)
      void this.probe(t.ip, t.port).then(r => {
        if (this.probed.get(t.id) !== t.deadSince || r !== 'unreachable') return
        this.unreachable.add(t.id)
        this.changed()
      })
    }
  }
}
