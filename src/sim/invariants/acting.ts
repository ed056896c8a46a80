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
      return cut > w.leaseSlackMs ? `${a.node} acted (${a.what}) though a majority of its voters had not been in contact with it for ${Math.round(cut)} ms (its lease allows ${Math.round(w.leaseSlackMs)} ms)` : undefined
    }
  }
}
