// The node's persisted consensus state (term, vote, latest document), written atomically and
// validated on load. A corrupt file is reported and set aside: the node then starts empty and
// learns the document from its peers instead of crashing or acting on garbage.
import { existsSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { z } from 'zod'
import type { PersistentState } from '../core/consensus/consensus.js'
import type { ClusterDoc } from '../core/types.js'
import { writeFileAtomicSync } from './atomic.js'

const FILE = 'state.json'

const StateFile = z.object({
  format: z.literal(1),
  term: z.number().int().min(0),
  votedFor: z.string().nullable(),
  leading: z.boolean().optional(),
  amnesic: z.boolean().optional(),
  accepted: z.object({ term: z.number().int(), version: z.number().int(), cluster: z.string(), voters: z.array(z.string()) }).passthrough().nullable()
})

export interface LoadResult {
  state: PersistentState | null
  /** Set when the file existed but could not be used. */
  problem?: string
}

export class NodeStore {
  readonly path: string
  constructor (dataDir: string) {
    this.path = join(dataDir, FILE)
  }

  load (): LoadResult {
    if (!existsSync(this.path)) return { state: null }
    let problem: string
    try {
      const parsed = StateFile.safeParse(JSON.parse(readFileSync(this.path, 'utf8')))
      if (parsed.success) {
        const { term, votedFor, accepted, leading, amnesic } = parsed.data
        return { state: { term, votedFor, accepted: accepted as unknown as ClusterDoc | null, ...(leading ? { leading } : {}), ...(amnesic ? { amnesic } : {}) } }
      }
      problem = parsed.error.issues.map(i => `${i.path.join('.')}: ${i.message}`).join('; ')
    } catch (err) {
      problem = (err as Error).message
    }
    const aside = `${this.path}.corrupt-${Date.now()}`
    try { renameSync(this.path, aside) } catch {}
    return { state: null, problem: `${this.path} is corrupt (${problem}); moved to ${aside}; starting empty and recovering from peers` }
  }

  save (s: PersistentState): void {
    writeFileAtomicSync(this.path, JSON.stringify({ format: 1, term: s.term, votedFor: s.votedFor, accepted: s.accepted, ...(s.leading ? { leading: true } : {}), ...(s.amnesic ? { amnesic: true } : {}) }), 0o600)
  }
}
