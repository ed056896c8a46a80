import { actsInTermOrder, actsOnlyAsLeaseholder, actsOnlyWithMajority } from './acting.js'
import { crashLoopsMoveRight } from './crash-loops.js'
import { desiredKept } from './desired-kept.js'
import { noDuplicateVm } from './no-duplicate-vm.js'
import { oneLeaderPerTerm } from './one-leader-per-term.js'
import { statefulSingle } from './stateful.js'
import type { Checker } from './types.js'

export type { Act, Ack, Checker, World } from './types.js'

export function allCheckers (): Checker[] {
  return [oneLeaderPerTerm(), actsOnlyAsLeaseholder(), actsOnlyWithMajority(), actsInTermOrder(), noDuplicateVm(), statefulSingle(), desiredKept(), crashLoopsMoveRight()]
}
