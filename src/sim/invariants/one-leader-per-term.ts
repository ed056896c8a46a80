// At most one node leads, and at most one node acts, in any term (Raft's Election Safety).
import type { Checker } from './types.js'

export function oneLeaderPerTerm (): Checker {
  const leaders = new Map<number, string>()
  const actors = new Map<number, string>()
  return {
    name: 'one leader per term',
    step (w) {
      for (const n of w.nodes) {
        if (!n.running || n.core.consensus.currentRole !== 'leader') continue
        const t = n.core.consensus.currentTerm
        const other = leaders.get(t)
        if (other !== undefined && other !== n.id) return `term ${t} has two leaders: ${other} and ${n.id}`
        leaders.set(t, n.id)
      }
      return undefined
    },
    act (a) {
      const other = actors.get(a.term)
      if (other !== undefined && other !== a.node) return `two nodes acted in term ${a.term}: ${other} and ${a.node} (${a.what})`
      actors.set(a.term, a.node)
      return undefined
    }
  }
}
