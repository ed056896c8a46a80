// Crash loops move, and only crash loops: an instance's record names as failed only the node where
// the seed made its service crash-loop (a move is never made on a false report), and it is never
// placed back on a node it failed on.
import type { Checker } from './types.js'

export function crashLoopsMoveRight (): Checker {
  return {
    name: 'crash loops move off their node, and nothing else moves for them',
    step (w) {
      for (const n of w.nodes) {
        if (!n.running) continue
        const doc = n.core.consensus.committed
        if (!doc) continue
        for (const r of Object.values(doc.instances)) {
          for (const f of r.failedOn ?? []) {
            if (!w.crashLoop || f !== w.crashLoop.node || r.service !== w.crashLoop.service) return `${n.id}'s committed v${doc.version}: ${r.id} (${r.service}) is recorded as failed on ${f}, where it never crash-looped`
          }
          if (r.node !== null && r.failedOn?.includes(r.node) && !r.gaveUp) return `${n.id}'s committed v${doc.version}: ${r.id} is placed on ${r.node}, a node it failed on`
        }
      }
      return undefined
    }
  }
}
