// Operator commands and cloud results, applied by the leader to the cluster document. Pure.
// A command that cannot apply returns an error and changes nothing.
import { checkSpec } from '../spec/load.js'
import { targetPolicy, type Spec } from '../spec/schema.js'
import type { Observed } from './observed.js'
import { own } from './keys.js'
import { startMigration } from './migration.js'
import { roomOn } from './placement.js'
import type { ClusterDoc, NodeId } from './types.js'

export type Command =
  | { type: 'launch', spec?: Spec }
  | { type: 'shutdown', askedOn: NodeId }
  | { type: 'propagate', service: string }
  | { type: 'scale', service: string, count: number }
  | { type: 'migrate', instance: string, to?: NodeId }
  // Results reported by the leader's cloud executor:
  | { type: 'launch-result', id: string, vm?: string, error?: string }
  | { type: 'terminated', node: NodeId }
  | { type: 'volume-attached', name: string, node: NodeId | null, zone?: string }
  | { type: 'address-associated', name: string, node: NodeId | null, ip?: string }

export type CommandErrorCode = 'NOT_FOUND' | 'AT_MAX' | 'BAD_REQUEST' | 'CONFLICT' | 'NO_SPEC'

export interface CommandOk { ok: true, doc: ClusterDoc, message: string }
export interface CommandErr { ok: false, code: CommandErrorCode, message: string }
export type CommandResult = CommandOk | CommandErr

const err = (code: CommandErrorCode, message: string): CommandErr => ({ ok: false, code, message })

export function applyCommand (doc: ClusterDoc, cmd: Command, obs: Observed): CommandResult {
  const d = structuredClone(doc)
  switch (cmd.type) {
    case 'launch': return launch(d, cmd.spec)
    case 'shutdown': {
      if (!d.spec) return err('NO_SPEC', 'the cluster was never launched; nothing to shut down')
      d.phase = 'down'
      d.keepNode = cmd.askedOn
      return { ok: true, doc: d, message: `shutting down; ${cmd.askedOn} stays up` }
    }
    case 'propagate': {
      const s = serviceOf(d, cmd.service)
      if (!s.ok) return s
      const cur = own(d.desired, cmd.service) ?? 0
      if (cur >= s.max) return err('AT_MAX', `${cmd.service} is at its max (${s.max} instance${s.max === 1 ? '' : 's'}); nothing changed. Raise max in the spec to go further.`)
      d.desired[cmd.service] = cur + 1
      return { ok: true, doc: d, message: `${cmd.service}: ${cur} -> ${cur + 1} instances${s.autoscaled}` }
    }
    case 'scale': {
      const s = serviceOf(d, cmd.service)
      if (!s.ok) return s
      if (!Number.isInteger(cmd.count) || cmd.count < s.min || cmd.count > s.max) {
        return err('BAD_REQUEST', `${cmd.service} takes between ${s.min} and ${s.max} instances (min and max in the spec); ${cmd.count} is outside; nothing changed`)
      }
      const cur = own(d.desired, cmd.service) ?? 0
      d.desired[cmd.service] = cmd.count
      return { ok: true, doc: d, message: `${cmd.service}: ${cur} -> ${cmd.count} instances${s.autoscaled}` }
    }
    case 'migrate': return migrate(d, cmd.instance, cmd.to, obs)
    case 'launch-result': {
      const l = own(d.launches, cmd.id)
      if (!l) return err('NOT_FOUND', `no launch ${cmd.id}`)
      if (cmd.vm) { l.status = 'launched'; l.vm = cmd.vm; delete l.error } else { l.status = 'failed'; l.error = cmd.error ?? 'unknown error' }
      return { ok: true, doc: d, message: cmd.vm ? `${cmd.id}: launched ${cmd.vm}` : `${cmd.id}: failed: ${l.error}` }
    }
    case 'terminated': {
      const t = own(d.terminations, cmd.node)
      if (!t) return err('NOT_FOUND', `no termination of ${cmd.node}`)
      t.status = 'done'
      for (const l of Object.values(d.launches)) if (l.vm === cmd.node) delete d.launches[l.id]
      return { ok: true, doc: d, message: `${cmd.node} terminated` }
    }
    case 'address-associated': {
      const a = own(d.addresses ?? {}, cmd.name)
      if (!a) return err('NOT_FOUND', `no address ${cmd.name}`)
      a.associatedTo = cmd.node
      if (cmd.ip) a.ip = cmd.ip
      return { ok: true, doc: d, message: `address ${cmd.name}${cmd.ip ? ` (${cmd.ip})` : ''} associated with ${cmd.node ?? 'nothing'}` }
    }
    case 'volume-attached': {
      const v = own(d.volumes, cmd.name)
      if (!v) return err('NOT_FOUND', `no volume ${cmd.name}`)
      v.attachedTo = cmd.node
      if (cmd.zone) v.zone = cmd.zone
      return { ok: true, doc: d, message: cmd.node ? `volume ${cmd.name} attached to ${cmd.node}` : `volume ${cmd.name} detached` }
    }
  }
}

function launch (d: ClusterDoc, spec: Spec | undefined): CommandResult {
  const next = spec ?? d.spec
  if (!next) return err('NO_SPEC', 'no cluster spec: pass one (wakame launch --spec FILE) or configure `spec` on the node')
  const problems = checkSpec(next)
  if (problems.length > 0) return err('BAD_REQUEST', problems.map(p => `${p.path.join('.')}: ${p.message}`).join('\n'))
  const desired: Record<string, number> = {}
  for (const [name, s] of Object.entries(next.services)) {
    // Keep counts the operator set (a relaunch after shutdown restores them), within the new bounds.
    const prev = own(d.desired, name)
    desired[name] = Math.min(s.max, Math.max(s.min, prev ?? s.min))
  }
  d.spec = next
  d.desired = desired
  d.phase = 'up'
  delete d.keepNode
  return { ok: true, doc: d, message: `launching ${Object.keys(desired).length} services` }
}

/**
 * An operator may set the count of an autoscaled service too (within min..max): it applies at once,
 * and the policy may move it again on its next decision. `autoscaled` says so in the answer.
 */
function serviceOf (d: ClusterDoc, name: string): { ok: true, min: number, max: number, autoscaled: string } | CommandErr {
  if (!d.spec) return err('NO_SPEC', 'the cluster was never launched; run launch_cluster first')
  if (d.phase !== 'up') return err('CONFLICT', `the cluster is ${d.phase === 'down' ? 'shut down' : 'not launched'}; run launch_cluster first`)
  const s = own(d.spec.services, name)
  if (!s) return err('NOT_FOUND', `no service "${name}"; services: ${Object.keys(d.spec.services).sort().join(', ')}`)
  const p = targetPolicy(s)
  const autoscaled = p ? ` (${name} autoscales on ${p.metric} toward ${p.target}: the policy may change this count again)` : ''
  return { ok: true, min: s.min, max: s.max, autoscaled }
}

function migrate (d: ClusterDoc, id: string, to: NodeId | undefined, obs: Observed): CommandResult {
  if (!d.spec || d.phase !== 'up') return err('CONFLICT', 'the cluster is not up; run launch_cluster first')
  const inst = own(d.instances, id)
  if (!inst) return err('NOT_FOUND', `no instance "${id}"; see \`wakame status\``)
  if (inst.phase !== 'run' || inst.migratingTo || inst.replaces) return err('CONFLICT', `${id} is already ${inst.migratingTo || inst.replaces ? 'migrating' : 'stopping'}`)
  if (inst.node === null) return err('CONFLICT', `${id} is not placed yet; nothing to move`)
  let target: { node: NodeId, slot: number } | undefined
  if (to !== undefined) {
    if (!own(d.nodes, to)) return err('NOT_FOUND', `no node "${to}"; nodes: ${Object.keys(d.nodes).sort().join(', ')}`)
    if (to === inst.node) return err('BAD_REQUEST', `${id} already runs on ${to}`)
    if (obs.nodes.get(to)?.status !== 'alive') return err('CONFLICT', `node ${to} is not alive`)
    const slot = roomOn(d, d.spec, to, inst.service)
    if (slot === undefined) return err('CONFLICT', `node ${to} has no room for ${inst.service}`)
    target = { node: to, slot }
  }
  const next = startMigration(d, d.spec, obs, inst, target)
  const where = next.node ? `to ${next.node}` : 'to a new VM (no node has room)'
  return { ok: true, doc: d, message: `${id} -> ${next.id} ${where}` }
}
