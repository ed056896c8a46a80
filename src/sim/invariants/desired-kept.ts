// Desired state is never lost: once the cluster acknowledged a count, every committed document from
// then on carries it (until a later command changes it), across crashes and full restarts.
import type { Checker } from './types.js'

export function desiredKept (): Checker {
  return {
    name: 'desired state never lost',
    step (w) {
      for (const n of w.nodes) {
        if (!n.running) continue
        const doc = n.core.consensus.committed
        if (!doc) continue
        // Per service, the acknowledgement of the highest version this document includes (the
        // later one on a tie: a command's "uncertain" marker is followed by its answer).
        const latest = new Map<string, { version: number, desired: number | 'uncertain' }>()
        for (const a of w.acks) {
          const cur = latest.get(a.service)
          if (a.version <= doc.version && (!cur || a.version >= cur.version)) latest.set(a.service, a)
        }
        for (const [svc, { desired: want }] of latest) {
          if (want === 'uncertain') continue
          if (doc.desired[svc] !== want) return `${n.id}'s committed document v${doc.version} has ${svc}=${doc.desired[svc]}, but ${want} was acknowledged`
        }
      }
      return undefined
    }
  }
}
