// Cluster events: what the leader decided and what changed (members, leaders, instances), with
// time, term and reason. Pure helpers only; the on-disk log is in log.ts.
import type { Command } from '../core/commands.js'
import type { DocEvent } from '../core/types.js'
import { clip as clipText } from '../util/text.js'

export type EventKind = DocEvent['kind']

/**
 * id: unique in the cluster (the key that deduplicates an event seen both locally and in the
 * document); at: wall-clock time of the node that recorded it (`node`); subject: an instance,
 * service, node or launch id ('' when nothing in particular); by: who asked, for operator commands.
 */
export interface ClusterEvent extends DocEvent {
  /** Position in the answering node's log (assigned on append; absent in the document). */
  seq?: number
}

/** The id of "X leads term T": the same wherever it is recorded, so each node logs it once. */
export const leaderEventId = (term: number, leader: string): string => `${term}.leader.${leader}`

/** Longest reason kept: events are gossiped in the document, so one runaway error must not bloat it. */
export const MAX_REASON = 300
/** Events the leader keeps in the replicated document (enough for a follower that missed versions). */
export const DOC_EVENTS = 30

export function clip (s: string, max = MAX_REASON): string {
  return clipText(s, max)
}

/** The subject of a scheduler note ("app-3: place on vm-2", "node vm-4 is dead: …", "launch a VM (l-7): …"). */
export function noteSubject (note: string): string {
  const m = /^(?:node|voter|address|volume) ([A-Za-z0-9._-]+)/.exec(note) ?? /^launch (?:a VM \()?([A-Za-z0-9._-]+?)[):]/.exec(note) ?? /^([A-Za-z0-9._-]+):/.exec(note)
  return m?.[1] ?? ''
}

/** An operator command as an event's subject and reason (a launch's spec is not copied). */
export function describeCommand (cmd: Command): { subject: string, what: string } {
  switch (cmd.type) {
    case 'launch': return { subject: '', what: 'launch_cluster' }
    case 'shutdown': return { subject: '', what: `shutdown_cluster (asked on ${cmd.askedOn})` }
    case 'propagate': return { subject: cmd.service, what: `propagate_service ${cmd.service}` }
    case 'scale': return { subject: cmd.service, what: `scale ${cmd.service} ${cmd.count}` }
    case 'migrate': return { subject: cmd.instance, what: `migrate_service ${cmd.instance}${cmd.to ? ` --to ${cmd.to}` : ''}` }
    case 'launch-result': return { subject: cmd.id, what: cmd.error ? `launch ${cmd.id} failed` : `launch ${cmd.id} done${cmd.vm ? `: ${cmd.vm}` : ''}` }
    case 'terminated': return { subject: cmd.node, what: `node ${cmd.node} terminated` }
    case 'volume-attached': return { subject: cmd.name, what: `volume ${cmd.name} ${cmd.node ? `attached to ${cmd.node}` : 'detached'}` }
    case 'address-associated': return { subject: cmd.name, what: `address ${cmd.name} ${cmd.node ? `associated with ${cmd.node}` : 'released'}` }
  }
}

/** One line of `wakame events`. */
export function formatEvent (e: ClusterEvent): string {
  const change = e.from !== undefined || e.to !== undefined ? ` ${e.from ?? '?'} -> ${e.to ?? '?'}` : ''
  // Scheduler notes and command messages usually name their subject already.
  const subject = e.subject && !new RegExp(`(^|\\s)${e.subject.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(:|\\s|$)`).test(e.reason) ? e.subject : ''
  const what = [`${subject}${change}`.trim(), e.reason].filter(Boolean).join(': ')
  return `${e.at} t${e.term} ${e.node.padEnd(6)} ${e.kind.padEnd(8)} ${what}${e.by ? ` (by ${e.by})` : ''}`
}
