// Fencing and leases: a node acts only as the leader of the current term it knows, holding a lease,
// and never while it cannot hear a majority of its voters (beyond what its lease allows).
import type { Checker } from './types.js'

export function actsOnlyAsLeaseholder (): Checker {
  return {
    name: 'acts only as the leaseholding leader',
    act (a) {
      return a.canAct ? undefined : `${a.node} acted (${a.what}) in term ${a.term} without being the leader of its current term with a valid lease`
    }
  }
}

export function actsOnlyWithMajority (): Checker {
  return {
    name: 'no act without a majority',
    act (a, w) {
      const cut = w.now - w.lastMajorityAt(a.node, a.voters)
      return cut > w.leaseSlackMs ? `${a.node} acted (${a.what}) though no majority of its voters had completed a round trip with it for ${Math.round(cut)} ms (its lease allows ${Math.round(w.leaseSlackMs)} ms)` : undefined
    }
  }
}

/**
 * What leases are for, checked on the acts themselves: once a node acted in some term, no node
 * acts in an earlier term any more (a deposed leader's lease runs out before a newer leader can be
 * elected, so old and new never act at overlapping times).
 */
export function actsInTermOrder (): Checker {
  let latest: { term: number, node: string, at: number } | undefined
  return {
    name: 'acts in term order',
    act (a) {
      if (latest && a.term < latest.term) return `${a.node} acted (${a.what}) in term ${a.term} after ${latest.node} had acted in term ${latest.term} (at ${(latest.at / 1000).toFixed(3)} s)`
      if (!latest || a.term > latest.term) latest = { term: a.term, node: a.node, at: a.at }
      return undefined
    }
  }
}
