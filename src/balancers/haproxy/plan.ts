// Which runtime API commands turn the members HAProxy serves into the members of a new model.
// Pure: models and the servers left in maintenance in, commands out. The caller sends `live` in one
// master CLI request (the change that matters for clients), then `cleanup` (deleting servers that
// were put in maintenance: refused while they still hold connections, and then retried later).
import type { BalancerModel } from '../model.js'
import { serverArgs } from './render.js'

export interface MemberPlan {
  /** Joins first, then leaves: a pool whose member is replaced never has zero servers in between. */
  live: string[]
  cleanup: string[]
  added: number
  removed: number
  /** Servers in maintenance after `live`, by backend (including those `cleanup` tries to delete). */
  zombies: Map<string, Set<string>>
}

/** Everything but the members: when only members differ, the runtime API can apply the change. */
export function shape (m: BalancerModel): string {
  return JSON.stringify({ i: m.instance, d: m.dir, l: m.listen, r: m.routes, p: m.pools.map(p => [p.name, p.service]) })
}

/** undefined when the models differ in more than their members (a reload is needed). */
export function planMembers (live: BalancerModel, next: BalancerModel, zombiesIn: ReadonlyMap<string, ReadonlySet<string>>): MemberPlan | undefined {
  if (shape(live) !== shape(next)) return undefined
  const plan: MemberPlan = { live: [], cleanup: [], added: 0, removed: 0, zombies: new Map() }
  const leaves: string[] = []
  const was = new Map(live.pools.map(p => [p.name, p]))
  for (const pool of next.pools) {
    const be = pool.name
    const zombies = new Set(zombiesIn.get(be) ?? [])
    const old = new Map(was.get(be)!.members.map(m => [m.id, m]))
    const now = new Map(pool.members.map(m => [m.id, m]))
    for (const [id, m] of now) {
      const before = old.get(id)
      if (before?.address === m.address) continue
      if (before || zombies.has(id)) {
        // The server exists (serving, or left in maintenance): re-point it rather than add another.
        plan.live.push(`@1 set server ${be}/${id} addr ${m.host} port ${m.port}`, `@1 set server ${be}/${id} state ready`)
        zombies.delete(id)
      } else {
        plan.live.push(`@1 add server ${be}/${serverArgs(m)}`, `@1 enable server ${be}/${id}`)
      }
      plan.added++
    }
    for (const id of old.keys()) {
      if (now.has(id)) continue
      // Maintenance: no new requests; in-flight ones finish.
      leaves.push(`@1 set server ${be}/${id} state maint`)
      zombies.add(id)
      plan.removed++
    }
    for (const id of zombies) plan.cleanup.push(`@1 del server ${be}/${id}`)
    if (zombies.size > 0) plan.zombies.set(be, zombies)
  }
  plan.live.push(...leaves)
  return plan
}

/** What the runtime API says on success; any other line in an answer is an error. */
const SUCCESS = /^(New server registered\.|Server deleted\.|.*changed from .*|no need to change the (addr|port).*)$/i

/** Error lines in the answer to a batch of commands (empty: all went through). */
export function answerErrors (answer: string): string[] {
  return answer.split('\n').map(l => l.trim()).filter(l => l !== '' && !SUCCESS.test(l))
}
