// Plan / dry run: what the leader would do for a command, without doing it. Pure.
//
// The command is applied to a copy of the document, then the real scheduler runs forward on that
// copy for a few steps against an optimistic world (every instance placed comes ONLINE, every
// launch succeeds and its VM joins, every termination and volume move completes at once). Each
// change between two successive documents becomes an action, and the scheduler's notes say why.
// Nothing is proposed: the caller's document and memory are never touched.
import { applyCommand, type Command, type CommandErr } from './commands.js'
import { planCloud } from './cloud-plan.js'
import { localInstances } from './local-plan.js'
import type { Observed, ObservedNode } from './observed.js'
import { schedule, type LeaderMemory, type ScheduleInput } from './scheduler.js'
import type { ClusterDoc, InstanceRec } from './types.js'

export type PlanActionKind = 'launch' | 'place' | 'move' | 'drain' | 'stop' | 'terminate' | 'give-up'

export interface PlanAction {
  /** Scheduler step it happens in (1 = the first document after the command). */
  step: number
  kind: PlanActionKind
  /** What happens, e.g. "app-7 (app) on vm-2". */
  what: string
  /** Why: the scheduler's note for it, or the command's own message. */
  why: string
}

export interface PlanOk {
  ok: true
  /** The command's message, as it would answer (empty without a command). */
  message: string
  actions: PlanAction[]
  /** Every scheduler note of the simulated steps, in order, without repeats. */
  notes: string[]
  /** Version of the document planned from. */
  from: number
  /** Steps simulated. */
  steps: number
  /** The simulated cluster stopped changing within the steps (else the plan is cut short). */
  settled: boolean
}

export type PlanResult = PlanOk | CommandErr

/** What schedule() takes (the leader's memory is copied, never changed), and the command to plan. */
export interface PlanInput extends ScheduleInput {
  /** Undefined: what the leader would do on its own from here. */
  cmd?: Command
  /** Most scheduler steps to simulate. @default 40 */
  maxSteps?: number
  /** Simulated time between steps (lets drains and grace periods run out). @default 1000 */
  stepMs?: number
}

export function planCommand (input: PlanInput): PlanResult {
  let d: ClusterDoc = structuredClone(input.doc)
  let message = ''
  const actions: PlanAction[] = []
  if (input.cmd) {
    const r = applyCommand(d, input.cmd, input.obs)
    if (!r.ok) return r
    message = r.message
    actions.push(...diff(d, r.doc, 0, [], message))
    d = r.doc
  }
  const obs: Observed = { nodes: structuredClone(input.obs.nodes) }
  const mem: LeaderMemory = structuredClone(input.mem)
  const maxSteps = input.maxSteps ?? 40
  const stepMs = input.stepMs ?? 1000
  const notes: string[] = []
  let now = input.now
  let quiet = 0
  let step = 0
  let vmSeq = 0
  const commit = (next: ClusterDoc): void => { d = { ...next, version: d.version + 1 } }
  while (step < maxSteps && quiet < 2) {
    step++
    now += stepMs
    const s = schedule({ doc: d, obs, mem, now, term: input.term, self: input.self, ...(input.cfg ? { cfg: input.cfg } : {}) })
    for (const n of s.notes) if (!notes.includes(n)) notes.push(n)
    let changed = false
    if (s.next) {
      actions.push(...diff(d, s.next, step, s.notes, message))
      commit(s.next)
      changed = true
    }
    // The cloud: everything the document asks for succeeds at once.
    for (const a of planCloud(d)) {
      changed = true
      if (a.type === 'launch') {
        const vm = `new-vm-${++vmSeq}`
        obs.nodes.set(vm, { id: vm, status: 'alive', ip: `(${vm})`, peer: vm, current: false, committed: null, launch: a.id, instances: {} })
        commit(applied(d, { type: 'launch-result', id: a.id, vm }))
      } else if (a.type === 'terminate') {
        const n = obs.nodes.get(a.node)
        if (n) { n.status = 'dead'; n.instances = {} }
        commit(applied(d, { type: 'terminated', node: a.node }))
      } else if (a.type === 'detach-volume') {
        commit(applied(d, { type: 'volume-attached', name: a.name, node: null }))
      } else if (a.type === 'attach-volume') {
        commit(applied(d, { type: 'volume-attached', name: a.name, node: a.node }))
      } else {
        commit(applied(d, { type: 'address-associated', name: a.name, node: a.node }))
      }
    }
    changed = observe(d, obs) || changed
    quiet = changed ? 0 : quiet + 1
  }
  return { ok: true, message, actions, notes, from: input.doc.version, steps: step, settled: quiet >= 2 }
}

function applied (d: ClusterDoc, cmd: Command): ClusterDoc {
  const r = applyCommand(d, cmd, { nodes: new Map() })
  return r.ok ? r.doc : d
}

/** Live nodes take the document and run what it gives them: new instances come ONLINE. */
function observe (d: ClusterDoc, obs: Observed): boolean {
  let changed = false
  for (const n of obs.nodes.values()) {
    if (n.status !== 'alive' && n.status !== 'suspect') continue
    const listed = d.nodes[n.id] !== undefined
    const before = JSON.stringify(n)
    if (listed) { n.current = true; n.committed = { term: d.term, version: d.version } }
    if (!listed) { if (JSON.stringify(n) !== before) changed = true; continue }
    const want = localInstances(d, n.id)
    const next: ObservedNode['instances'] = {}
    for (const id of want.keys()) {
      const had = n.instances[id]
      // Optimistic, except that an instance its node already gave up on stays that way.
      next[id] = had?.gaveUp ? had : { ...had, state: 'ONLINE', view: d.version }
    }
    n.instances = next
    if (JSON.stringify(n) !== before) changed = true
  }
  return changed
}

/** The actions between two successive documents. */
function diff (prev: ClusterDoc, next: ClusterDoc, step: number, notes: string[], message: string): PlanAction[] {
  const out: PlanAction[] = []
  const why = (id: string): string => notes.find(n => n.startsWith(`${id}:`) || n.includes(`(${id})`))?.replace(/^[^:]+: /, '') ?? (message || 'scheduler')
  const add = (kind: PlanActionKind, what: string, reason: string): void => { out.push({ step, kind, what, why: reason }) }
  // "place on vm-2" says nothing the action does not: say why the service needs the instance.
  const placeWhy = (i: InstanceRec): string => {
    const w = why(i.id)
    return /^(place on |no node has room)/.test(w) || w === (message || 'scheduler') ? `${i.service} wants ${next.desired[i.service] ?? 0} instance${next.desired[i.service] === 1 ? '' : 's'}${/^no node has room/.test(w) ? '; no node has room: waits for a new VM' : ''}` : w
  }
  const where = (i: InstanceRec): string => i.node ?? 'a new VM (no node has room yet)'
  for (const l of Object.values(next.launches)) {
    if (!prev.launches[l.id]) add('launch', `launch a VM (${l.id}${l.zone ? `, in ${l.zone}` : ''})`, l.reason)
  }
  for (const t of Object.values(next.terminations)) {
    if (!prev.terminations[t.node]) add('terminate', `terminate ${t.node}`, t.reason)
  }
  for (const i of Object.values(next.instances)) {
    const was = prev.instances[i.id]
    if (!was) {
      if (i.replaces) {
        const old = next.instances[i.replaces] ?? prev.instances[i.replaces]
        const note = notes.find(n => n.startsWith(`${i.replaces}:`) && n.includes(i.id))?.replace(/^[^:]+: /, '')
        add('move', `${i.replaces} (${i.service}) from ${old?.node ?? '?'} to ${where(i)} as ${i.id}`, note ?? (message || 'scheduler'))
      } else {
        add('place', `${i.id} (${i.service}) on ${where(i)}`, placeWhy(i))
      }
      continue
    }
    if (was.node === null && i.node !== null) add('place', `${i.id} (${i.service}) on ${i.node}`, placeWhy(i))
    if (was.phase !== i.phase) add(i.phase === 'drain' ? 'drain' : 'stop', `${i.phase} ${i.id} (${i.service}) on ${i.node ?? 'no node'}`, why(i.id))
    if (!was.gaveUp && i.gaveUp) add('give-up', `leave ${i.id} (${i.service}) FAIL on ${i.node ?? 'no node'}`, i.gaveUp)
  }
  for (const i of Object.values(prev.instances)) {
    // Records forgotten outright (on a dead node, replaced) end without a stop of their own.
    if (!next.instances[i.id] && i.phase === 'run') add('stop', `forget ${i.id} (${i.service}) on ${i.node ?? 'no node'}`, why(i.id))
  }
  return out
}

/** The plan as text lines, for the CLI. */
export function formatPlan (p: Pick<PlanOk, 'message' | 'actions' | 'settled' | 'steps'>): string[] {
  const lines: string[] = []
  if (p.message) lines.push(`would do: ${p.message}`)
  if (p.actions.length === 0) lines.push('no actions: the cluster already is where this leads')
  for (const a of p.actions) lines.push(`  ${String(a.step).padStart(2)}. ${a.kind.padEnd(9)} ${a.what}${a.why ? `  — ${a.why}` : ''}`)
  if (!p.settled) lines.push(`  ... (cut short after ${p.steps} steps; more would follow)`)
  lines.push('nothing was changed (dry run)')
  return lines
}
