// The leader's scheduler: desired state + observations → the next cluster document. Pure.
//
// It only writes intentions into the document (place an instance, drain it, launch or terminate a
// VM, move a volume); nodes and the cloud executor act on them once the document is committed.
// So a leader that dies mid-way leaves nothing half-done that the next leader cannot see.
import { dependencyLevels, dependentsOf } from '../spec/graph.js'
import { targetPolicy, type Spec } from '../spec/schema.js'
import { autoscale, describeDecision, newScaleMemory, type AutoscaleDecision, type ScaleMemory } from './autoscaler.js'
import { isLive, reportedState, type Observed } from './observed.js'
import { startMigration } from './migration.js'
import { pickRoom, zoneFor } from './placement.js'
import type { ClusterDoc, InstanceRec, NodeId } from './types.js'

export interface SchedulerConfig {
  /** Most voters; more nodes follow without voting (Raft gets slower, not safer, with more). @default 5 */
  maxVoters: number
  /** After a failed launch, wait this long before deciding another. @default 10000 */
  launchRetryMs: number
  /** A launched VM that has not joined the mesh by then is terminated and reported. @default 120000 */
  joinDeadlineMs: number
  /**
   * A dead node is terminated (its volumes moved, its vote given away) only after this long dead:
   * a crashed daemon on a healthy VM comes back within seconds. Its stateless instances are
   * replaced at once. @default 10000
   */
  deadGraceMs: number
  /**
   * A dead node's stateless instances are replaced elsewhere after this long: a daemon that
   * crashed on a healthy VM (its services still serving) is restarted by its init sooner.
   * @default 3000
   */
  replaceAfterMs: number
}

export const DEFAULT_SCHEDULER: SchedulerConfig = { maxVoters: 5, launchRetryMs: 10_000, joinDeadlineMs: 120_000, deadGraceMs: 10_000, replaceAfterMs: 3_000 }

/** Dependents keep a dead node's instances in their views this long (see replaceAfterMs). */
export const VIEW_DEAD_GRACE_MS = DEFAULT_SCHEDULER.replaceAfterMs

/** Leader-local memory between ticks (not replicated: a new leader starts its timers afresh). */
export interface LeaderMemory {
  /** When each draining instance started draining, by this leader's clock. */
  drainSince: Map<string, number>
  /** When a launch last failed. */
  lastLaunchFailure: number
  /** When each launched VM was first seen launched but not joined. */
  launchedSince: Map<string, number>
  /** When this leader first saw each node dead. */
  deadSince: Map<string, number>
  /** Autoscaling: per service, its last actions and since when its metric is low. */
  scale: Map<string, ScaleMemory>
  /** When this leader first saw each instance ONLINE (warm-up is counted from then). */
  onlineSince: Map<string, number>
}

export function newLeaderMemory (): LeaderMemory {
  return { drainSince: new Map(), lastLaunchFailure: -Infinity, launchedSince: new Map(), deadSince: new Map(), scale: new Map(), onlineSince: new Map() }
}

export interface ScheduleInput {
  doc: ClusterDoc
  obs: Observed
  mem: LeaderMemory
  now: number
  /** The leader's current term (launch decisions record it). */
  term: number
  self: NodeId
  cfg?: SchedulerConfig
}

export interface ScheduleResult {
  /** The next document's content, or undefined when nothing changes. */
  next?: ClusterDoc
  /** Why: one line per decision, for the log and the event history. */
  notes: string[]
  /** Autoscaling decisions that changed a desired count, with their inputs (each also a note). */
  scaled: Array<AutoscaleDecision & { note: string }>
}

type Draft = ClusterDoc

export function schedule (input: ScheduleInput): ScheduleResult {
  const { doc, obs, mem, now, term, self } = input
  const cfg = input.cfg ?? DEFAULT_SCHEDULER
  const d: Draft = structuredClone(doc)
  const notes: string[] = []
  const scaled: ScheduleResult['scaled'] = []
  const ctx = { d, obs, mem, now, term, self, cfg, notes, scaled, votersChanged: false }

  admitNodes(ctx)
  handleDeadNodes(ctx)
  drainLeavingNodes(ctx)
  if (d.spec && d.phase === 'up') {
    autoscaleServices(ctx, d.spec)
    bringUp(ctx, d.spec)
    ensureNodes(ctx, d.spec)
  } else if (d.spec && d.phase === 'down') {
    bringDown(ctx, d.spec)
  }
  progressDrains(ctx)
  progressStops(ctx)
  moveVolumes(ctx)
  moveAddresses(ctx)
  adjustVoters(ctx)
  finishTerminations(ctx)

  const changed = JSON.stringify(d) !== JSON.stringify(doc)
  return changed ? { next: d, notes, scaled } : { notes, scaled }
}

interface Ctx {
  d: Draft
  obs: Observed
  mem: LeaderMemory
  now: number
  term: number
  self: NodeId
  cfg: SchedulerConfig
  notes: string[]
  scaled: ScheduleResult['scaled']
  votersChanged: boolean
}

function nextId (d: Draft, prefix: string): string {
  d.seq++
  return `${prefix}-${d.seq}`
}

// ---- nodes ----

/** Nodes heard on the mesh that the document does not list yet join it. */
function admitNodes (ctx: Ctx): void {
  const { d, obs } = ctx
  for (const o of obs.nodes.values()) {
    if (o.status !== 'alive' || d.nodes[o.id] || d.terminations[o.id]) continue
    d.nodes[o.id] = { id: o.id, ip: o.ip, peer: o.peer, ...(o.launch ? { launch: o.launch } : {}), ...(o.zone ? { zone: o.zone } : {}) }
    ctx.notes.push(`node ${o.id} (${o.ip}) joined`)
  }
  // A launch is done once its VM is a node of the cluster.
  for (const l of Object.values(d.launches)) {
    const joined = (l.vm !== undefined && d.nodes[l.vm] !== undefined) || Object.values(d.nodes).some(n => n.launch === l.id)
    if (joined) { delete d.launches[l.id]; ctx.mem.launchedSince.delete(l.id); continue }
    if (l.status !== 'launched' || !l.vm) continue
    // A VM that never joins is terminated and reported, not waited for forever.
    const since = ctx.mem.launchedSince.get(l.id) ?? ctx.now
    ctx.mem.launchedSince.set(l.id, since)
    // One that was heard and then died before it joined (lost while booting) will not join either:
    // after the same grace as a dead node it is given up, and a replacement can be launched
    // without waiting for the join deadline.
    let died: number | undefined
    if (obs.nodes.get(l.vm)?.status === 'dead') {
      died = ctx.mem.deadSince.get(l.vm) ?? ctx.now
      ctx.mem.deadSince.set(l.vm, died)
    }
    const diedLongAgo = died !== undefined && ctx.now - died >= ctx.cfg.deadGraceMs
    if (ctx.now - since >= ctx.cfg.joinDeadlineMs || diedLongAgo) {
      l.status = 'failed'
      l.error = diedLongAgo ? `${l.vm} died before it joined; terminated` : `${l.vm} did not join within ${Math.round(ctx.cfg.joinDeadlineMs / 1000)} s; terminated`
      if (!d.terminations[l.vm]) d.terminations[l.vm] = { node: l.vm, reason: diedLongAgo ? 'died before joining' : 'never joined', status: 'pending' }
      // A VM that never joined says something is wrong with launching (hold off); a lost one does not.
      if (!diedLongAgo) ctx.mem.lastLaunchFailure = ctx.now
      ctx.notes.push(`launch ${l.id}: ${l.error}`)
    }
  }
}

/**
 * A dead node's stateless instances are replaced after `replaceAfterMs` (a replacement is cheap; a
 * daemon restarted by its init is back sooner, its instances still serving, and nothing moves). The node itself is terminated, its stateful instances moved and its
 * vote given away only after `deadGraceMs`: a daemon that crashed on a healthy VM is back within
 * seconds (systemd restarts it) with its db still running, and terminating it would turn a brief
 * fault into a permanent one.
 */
function handleDeadNodes (ctx: Ctx): void {
  const { d, obs, mem, now } = ctx
  for (const id of [...mem.deadSince.keys()]) if (obs.nodes.get(id)?.status !== 'dead') mem.deadSince.delete(id)
  for (const id of Object.keys(d.nodes)) {
    if (id === ctx.self || obs.nodes.get(id)?.status !== 'dead') continue
    if (!mem.deadSince.has(id)) mem.deadSince.set(id, now)
    const graceOver = now - mem.deadSince.get(id)! >= ctx.cfg.deadGraceMs
    for (const inst of Object.values(d.instances)) {
      if (inst.node !== id) continue
      if (inst.volume) {
        if (!graceOver) continue
        // A stateful instance is gone only once its VM is: until then it might still write.
        if (inst.phase !== 'stop') { inst.phase = 'stop'; inst.drainVersion = d.version + 1; ctx.notes.push(`${inst.id}: its node ${id} is dead; waiting for the node to be terminated before moving ${inst.volume}`) }
      } else if (now - mem.deadSince.get(id)! >= ctx.cfg.replaceAfterMs) {
        forgetInstance(d, inst)
        ctx.notes.push(`${inst.id}: its node ${id} is dead; a replacement will be placed`)
      }
    }
    if (graceOver && !d.terminations[id]) {
      d.terminations[id] = { node: id, reason: 'dead', status: 'pending' }
      ctx.notes.push(`node ${id} is dead: terminate it`)
    }
  }
}

/** Dead past the grace period, leaving (draining), or being terminated: it gives its place away. */
function gone (ctx: Ctx, id: NodeId): boolean {
  const since = ctx.mem.deadSince.get(id)
  return !!ctx.d.terminations[id] || !ctx.d.nodes[id] || (since !== undefined && ctx.now - since >= ctx.cfg.deadGraceMs) || !!ctx.obs.nodes.get(id)?.draining
}

/**
 * A node that says it is going away (a spot interruption or scheduled maintenance notice) takes no
 * new work; its instances migrate away (new one first), and once it runs nothing it is terminated.
 * Its replacement VM is launched meanwhile (it no longer counts toward min_nodes).
 */
function drainLeavingNodes (ctx: Ctx): void {
  const { d, obs } = ctx
  if (!d.spec) return
  for (const id of Object.keys(d.nodes)) {
    const why = obs.nodes.get(id)?.draining
    if (!why || id === ctx.self || d.terminations[id]) continue
    const here = Object.values(d.instances).filter(i => i.node === id)
    for (const inst of here) {
      if (inst.phase !== 'run' || inst.migratingTo || inst.replaces) continue
      const next = startMigration(d, d.spec, obs, inst)
      ctx.notes.push(`${inst.id}: node ${id} is leaving (${why}); moving to ${next.id} on ${next.node ?? 'a new VM'}`)
    }
    if (here.length === 0) {
      d.terminations[id] = { node: id, reason: `leaving: ${why}`, status: 'pending' }
      ctx.notes.push(`node ${id} left (${why}): terminate it`)
    }
  }
}

/** Keep `min_nodes` running, and launch a VM when instances wait for room. */
function ensureNodes (ctx: Ctx, spec: Spec): void {
  const { d, obs } = ctx
  // A node dead for less than the grace period may come back: it still counts.
  const liveNodes = Object.keys(d.nodes).filter(id => !gone(ctx, id)).length
  const pending = Object.values(d.launches).filter(l => l.status !== 'failed').length
  const unplaced = Object.values(d.instances).filter(i => i.node === null && i.phase === 'run').length
  const capacityPerNode = spec.cluster.max_instances_per_node
  let want = Math.max(0, spec.cluster.min_nodes - liveNodes - pending)
  // Room that is coming: VMs being launched, and nodes that joined but do not hold the document yet.
  const joining = Object.keys(d.nodes).filter(id => obs.nodes.get(id)?.status === 'alive' && !obs.nodes.get(id)?.current && !d.terminations[id]).length
  const pendingRoom = (pending + joining) * capacityPerNode
  if (unplaced > pendingRoom) want = Math.max(want, Math.ceil((unplaced - pendingRoom) / capacityPerNode))
  const budget = spec.cluster.max_nodes - liveNodes - pending
  if (want > budget) {
    if (budget <= 0 && unplaced > 0) ctx.notes.push(`${unplaced} instance(s) wait for room, but the cluster is at max_nodes (${spec.cluster.max_nodes})`)
    want = Math.max(0, budget)
  }
  if (want === 0 || ctx.now - ctx.mem.lastLaunchFailure < ctx.cfg.launchRetryMs) return
  // An instance waiting for room in a zone (its volume's) needs its VM there.
  const zones = Object.values(d.instances).filter(i => i.node === null && i.phase === 'run').map(i => zoneFor(d, i)).filter((z): z is string => !!z)
  for (let k = 0; k < want; k++) {
    const id = nextId(d, 'launch')
    const reason = liveNodes + pending + k < spec.cluster.min_nodes ? `below min_nodes (${spec.cluster.min_nodes})` : 'no node has room'
    const zone = zones.shift()
    d.launches[id] = { id, term: ctx.term, status: 'pending', reason, ...(zone ? { zone } : {}) }
    ctx.notes.push(`launch a VM (${id}): ${reason}${zone ? ` in ${zone}` : ''}`)
  }
}

function finishTerminations (ctx: Ctx): void {
  const { d } = ctx
  for (const t of Object.values(d.terminations)) {
    if (t.status !== 'done') continue
    // Records on a terminated node are gone with it; its volumes are free.
    for (const inst of Object.values(d.instances)) if (inst.node === t.node) forgetInstance(d, inst)
    for (const v of Object.values(d.volumes)) {
      if (v.attachedTo === t.node) v.attachedTo = null
      if (v.wantAt === t.node) v.wantAt = null
    }
    for (const a of Object.values(d.addresses)) {
      if (a.associatedTo === t.node) a.associatedTo = null
      if (a.wantAt === t.node) a.wantAt = null
    }
    if (d.voters.includes(t.node)) continue // removed from the voters first (adjustVoters)
    delete d.nodes[t.node]
    delete d.terminations[t.node]
  }
}

/** One voter change per document: drop dead or leaving voters, then fill up to maxVoters. */
function adjustVoters (ctx: Ctx): void {
  const { d, obs } = ctx
  // An amnesic voter forgot votes and acknowledgements: it leaves the voters and comes back afresh.
  const leaving = (id: NodeId) => gone(ctx, id) || (obs.nodes.get(id)?.amnesic === true && id !== ctx.self)
  // The leader itself leaves last, after every other change (it hands over once that commits).
  const drop = d.voters.filter(v => leaving(v) && v !== ctx.self)[0] ?? (leaving(ctx.self) && d.voters.length > 1 && d.voters.includes(ctx.self) ? ctx.self : undefined)
  if (drop !== undefined && !(drop === ctx.self && d.voters.every(v => v === ctx.self))) {
    d.voters = d.voters.filter(v => v !== drop)
    ctx.notes.push(`voter ${drop} removed (${d.terminations[drop] ? 'being terminated' : obs.nodes.get(drop)?.amnesic ? 'it lost its state; it will be added back' : 'dead'})`)
    return
  }
  if (d.voters.length >= ctx.cfg.maxVoters) return
  // Adding a voter while another cannot vote raises the majority without adding a vote: wait.
  if (d.voters.some(v => v !== ctx.self && obs.nodes.get(v)?.status !== 'alive')) return
  const candidates = Object.keys(d.nodes).filter(id => !d.voters.includes(id) && !leaving(id) && obs.nodes.get(id)?.status === 'alive' && obs.nodes.get(id)?.current)
  if (candidates.length === 0) return
  // Spread voters across availability zones when there are several.
  const zones = new Set(d.voters.map(v => d.nodes[v]?.zone))
  candidates.sort((a, b) => Number(zones.has(d.nodes[a]!.zone)) - Number(zones.has(d.nodes[b]!.zone)) || (a < b ? -1 : 1))
  const add = candidates[0]!
  d.voters = [...d.voters, add].sort()
  ctx.notes.push(`voter ${add} added`)
}

// ---- services ----

/**
 * Services with a `target` scale policy: their desired count follows the metric (see autoscaler.ts).
 * Only warm instances count: ONLINE, for at least warmup_ms by this leader's clock (a new leader
 * waits a warm-up before its first decision), and not the old half of a migration.
 */
function autoscaleServices (ctx: Ctx, spec: Spec): void {
  const { d, obs, mem, now } = ctx
  for (const id of [...mem.onlineSince.keys()]) if (!d.instances[id]) mem.onlineSince.delete(id)
  for (const [service, s] of Object.entries(spec.services)) {
    const policy = targetPolicy(s)
    if (!policy) { mem.scale.delete(service); continue }
    const samples: number[] = []
    let excluded = 0
    for (const inst of Object.values(d.instances)) {
      if (inst.service !== service || inst.phase !== 'run' || inst.migratingTo) continue
      const r = reportedState(obs, inst.node, inst.id)
      if (r?.state !== 'ONLINE') { mem.onlineSince.delete(inst.id); excluded++; continue }
      const since = mem.onlineSince.get(inst.id) ?? now
      mem.onlineSince.set(inst.id, since)
      const value = policy.metric === 'load1' ? obs.nodes.get(inst.node!)?.load1 : r.metric
      if (now - since < policy.warmup_ms || value === undefined) { excluded++; continue }
      samples.push(value)
    }
    let m = mem.scale.get(service)
    if (!m) mem.scale.set(service, m = newScaleMemory())
    const dec = autoscale({ service, policy, min: s.min, max: s.max, desired: d.desired[service] ?? s.min, samples, excluded, now, mem: m })
    if (dec.to === dec.from) continue
    d.desired[service] = dec.to
    const note = describeDecision(dec)
    ctx.notes.push(note)
    ctx.scaled.push({ ...dec, note })
  }
}

function bringUp (ctx: Ctx, spec: Spec): void {
  const { d, obs } = ctx
  for (const level of dependencyLevels(spec.services)) {
    for (const service of level) {
      const want = d.desired[service] ?? 0
      const current = Object.values(d.instances).filter(i => i.service === service && i.phase === 'run' && !i.migratingTo)
      if (current.length < want) {
        const waiting = spec.services[service]!.depends_on.filter(dep => !hasOnline(d, obs, dep))
        if (waiting.length > 0) {
          ctx.notes.push(`${service}: waiting for ${waiting.join(', ')} to be ONLINE`)
        } else {
          for (let k = current.length; k < want; k++) addInstance(ctx, spec, service)
        }
      } else if (current.length > want) {
        const extra = [...current].sort(removalOrder(obs)).slice(0, current.length - want)
        for (const inst of extra) startDrain(ctx, inst, `${service} above its desired count (${want})`)
      }
    }
  }
  // Services no longer in the spec go away.
  for (const inst of Object.values(d.instances)) {
    if (!spec.services[inst.service] && inst.phase === 'run') startDrain(ctx, inst, 'service removed from the spec')
  }
  moveCrashLoops(ctx, spec)
  placeWaiting(ctx, spec)
  progressMigrations(ctx)
}

/**
 * An instance whose node gave up restarting it (a crash loop) may do better elsewhere (a bad disk,
 * a port taken, a node-local misconfiguration): it is moved, like a migration, to a node where it
 * has not failed yet. The nodes it failed on are kept in the record, so a new leader knows; once it
 * has failed on restart.max_nodes nodes (or no other node has room) it stays FAIL with its error.
 */
function moveCrashLoops (ctx: Ctx, spec: Spec): void {
  const { d, obs } = ctx
  for (const inst of Object.values(d.instances)) {
    if (inst.phase !== 'run' || inst.node === null || inst.migratingTo) continue
    const r = reportedState(obs, inst.node, inst.id)
    if (inst.gaveUp && r?.state === 'ONLINE') {
      // Serving again (a fixed spec restarted it): no longer given up; where it failed is kept.
      delete inst.gaveUp
      ctx.notes.push(`${inst.id}: ONLINE again on ${inst.node} after its crash loop`)
    }
    if (inst.gaveUp || !r?.gaveUp) continue
    const s = spec.services[inst.service]
    if (!s) continue
    // The new instance of a migration crash-loops while the old one still runs: the migration is
    // called off (the old one stays, the new one goes), rather than moving the new one on.
    const old = inst.replaces ? d.instances[inst.replaces] : undefined
    if (old && old.phase === 'run' && old.migratingTo === inst.id) {
      delete old.migratingTo
      startDrain(ctx, inst, 'crash loop')
      ctx.notes.push(`${inst.id}: crash loop on ${inst.node} (${r.error ?? 'crash loop'}); migration of ${old.id} called off, it stays on ${old.node}`)
      continue
    }
    const failedOn = [...new Set([...(inst.failedOn ?? []), inst.node])]
    const maxNodes = s.restart?.max_nodes ?? 3
    const error = r.error ?? 'crash loop'
    if (failedOn.length >= maxNodes) {
      inst.failedOn = failedOn
      inst.gaveUp = `failed on ${failedOn.length} node${failedOn.length === 1 ? '' : 's'} (${failedOn.join(', ')}; restart.max_nodes ${maxNodes}): left FAIL; last error: ${error}`.slice(0, 2000)
      ctx.notes.push(`${inst.id}: ${inst.gaveUp}`)
      continue
    }
    // Only to a node with room where it has not failed: a new VM is not launched for a crash loop.
    const room = pickRoom(d, spec, obs, inst.service, failedOn, zoneFor(d, inst))
    if (!room) {
      ctx.notes.push(`${inst.id}: crash loop on ${inst.node}; no other node with room where it has not failed, so it stays FAIL`)
      continue
    }
    const next = startMigration(d, spec, obs, inst, room)
    next.failedOn = failedOn
    // The old one serves nothing: it drains (at once, it is not ONLINE) without waiting for the new one.
    startDrain(ctx, inst, 'crash loop')
    ctx.notes.push(`${inst.id}: crash loop on ${inst.node} (${error}); moving to ${next.id} on ${room.node} (failed on ${failedOn.length} of restart.max_nodes ${maxNodes})`)
  }
}

/** Stop services level by level, dependents first; then the VMs, except the node it was asked on. */
function bringDown (ctx: Ctx, spec: Spec): void {
  const { d } = ctx
  const levels = dependencyLevels(spec.services)
  const extra = Object.values(d.instances).filter(i => !spec.services[i.service])
  for (const inst of extra) if (inst.phase === 'run') startDrain(ctx, inst, 'cluster shutdown')
  for (let l = levels.length - 1; l >= 0; l--) {
    const here = Object.values(d.instances).filter(i => levels[l]!.includes(i.service))
    if (here.length === 0) continue
    for (const inst of here) if (inst.phase === 'run') startDrain(ctx, inst, `cluster shutdown (level ${l})`)
    return
  }
  if (Object.keys(d.instances).length > 0) return
  // Every service is down: cancel launches, and terminate the VMs the cluster no longer needs.
  for (const l of Object.values(d.launches)) {
    if (l.vm && !d.terminations[l.vm]) d.terminations[l.vm] = { node: l.vm, reason: 'cluster shutdown', status: 'pending' }
    delete d.launches[l.id]
  }
  const keep = d.keepNode && d.nodes[d.keepNode] ? d.keepNode : ctx.self
  for (const id of Object.keys(d.nodes)) {
    if (id === keep || d.terminations[id]) continue
    d.terminations[id] = { node: id, reason: 'cluster shutdown', status: 'pending' }
    ctx.notes.push(`node ${id}: terminate (cluster shutdown)`)
  }
}

function hasOnline (d: Draft, obs: Observed, service: string): boolean {
  return Object.values(d.instances).some(i => i.service === service && i.phase === 'run' && reportedState(obs, i.node, i.id)?.state === 'ONLINE')
}

function addInstance (ctx: Ctx, spec: Spec, service: string): InstanceRec {
  const { d } = ctx
  const s = spec.services[service]!
  const id = nextId(d, service)
  const zone = s.volume ? d.volumes[s.volume.name]?.zone : undefined
  const room = pickRoom(d, spec, ctx.obs, service, [], zone)
  const inst: InstanceRec = { id, service, node: room?.node ?? null, slot: room?.slot ?? 0, phase: 'run' }
  if (s.volume) inst.volume = s.volume.name
  d.instances[id] = inst
  ctx.notes.push(room ? `${id}: place on ${room.node}` : `${id}: no node has room; waiting for a new VM`)
  return inst
}

function placeWaiting (ctx: Ctx, spec: Spec): void {
  replaceOutOfZone(ctx)
  for (const inst of Object.values(ctx.d.instances)) {
    if (inst.node !== null || inst.phase !== 'run') continue
    const exclude = [inst.notOn, inst.replaces ? ctx.d.instances[inst.replaces]?.node : undefined, ...(inst.failedOn ?? [])].filter((n): n is string => !!n)
    const room = pickRoom(ctx.d, spec, ctx.obs, inst.service, exclude, zoneFor(ctx.d, inst))
    if (!room) continue
    inst.node = room.node
    inst.slot = room.slot
    delete inst.notOn
    ctx.notes.push(`${inst.id}: place on ${room.node}`)
  }
}

/**
 * A stateful instance placed on a node outside its volume's zone (placed before the document knew
 * the zone: the answer of the attach that created the volume was lost) can never start there: its
 * volume cannot be attached across zones. It is placed again, in the zone (or waits for a VM
 * launched there). One whose volume is attached where it is placed is left alone.
 */
function replaceOutOfZone (ctx: Ctx): void {
  const { d } = ctx
  for (const inst of Object.values(d.instances)) {
    if (inst.node === null || inst.phase !== 'run' || !inst.volume) continue
    const zone = zoneFor(d, inst)
    const nodeZone = d.nodes[inst.node]?.zone
    if (zone === undefined || nodeZone === undefined || nodeZone === zone || d.volumes[inst.volume]?.attachedTo === inst.node) continue
    ctx.notes.push(`${inst.id}: ${inst.node} is in ${nodeZone}, its volume ${inst.volume} in ${zone}; placing it again`)
    inst.notOn = inst.node
    inst.node = null
    inst.slot = 0
  }
}

/** Order in which surplus instances go: unplaced, then not ONLINE, then newest. */
function removalOrder (obs: Observed) {
  const rank = (i: InstanceRec) => i.node === null ? 0 : reportedState(obs, i.node, i.id)?.state !== 'ONLINE' ? 1 : 2
  return (a: InstanceRec, b: InstanceRec) => rank(a) - rank(b) || seqOf(b) - seqOf(a)
}

function seqOf (i: InstanceRec): number {
  return Number(i.id.slice(i.id.lastIndexOf('-') + 1))
}

export function startDrain (ctx: Pick<Ctx, 'd' | 'notes'>, inst: InstanceRec, why: string): void {
  if (inst.phase !== 'run') return
  inst.phase = 'drain'
  inst.drainVersion = ctx.d.version + 1
  ctx.notes.push(`${inst.id}: drain (${why})`)
}

/** A stateless migration's old instance drains once the new one is ONLINE. */
function progressMigrations (ctx: Ctx): void {
  const { d, obs } = ctx
  for (const inst of Object.values(d.instances)) {
    if (!inst.migratingTo || inst.phase !== 'run') continue
    const next = d.instances[inst.migratingTo]
    if (!next) { delete inst.migratingTo; continue }
    // Stateless: the old one drains once the new one serves. Stateful: the new one cannot start
    // before the volume moves, so the old one stops as soon as the new one has a ready node
    // (not before: waiting for a VM to boot would lengthen the outage).
    const ready = next.node !== null && obs.nodes.get(next.node)?.status === 'alive' && obs.nodes.get(next.node)?.current === true
    // With an address, the old one serves until the address points at the new one.
    const addr = d.spec?.services[inst.service]?.address?.name
    const addressFollowed = !addr || d.addresses[addr]?.associatedTo === next.node
    if (inst.volume ? ready : reportedState(obs, next.node, next.id)?.state === 'ONLINE' && addressFollowed) startDrain(ctx, inst, `migrated to ${next.id} on ${next.node}`)
  }
}

/** Drain ends when every dependent has applied a view without the instance, or on timeout. */
function progressDrains (ctx: Ctx): void {
  const { d, obs, mem, now } = ctx
  for (const inst of Object.values(d.instances)) {
    if (inst.phase !== 'drain') { mem.drainSince.delete(inst.id); continue }
    if (!mem.drainSince.has(inst.id)) mem.drainSince.set(inst.id, now)
    // A stateful instance that is moving has no other instance to send its dependents to: stop it
    // at once, the outage is stop + move + start either way.
    const serving = reportedState(obs, inst.node, inst.id)?.state === 'ONLINE' && !(inst.volume && inst.migratingTo)
    const timeout = d.spec?.services[inst.service]?.drain_timeout_ms ?? 5_000
    const timedOut = now - mem.drainSince.get(inst.id)! >= timeout
    if (!serving || timedOut || dependentsCaughtUp(d, obs, inst)) {
      inst.phase = 'stop'
      inst.drainVersion = d.version + 1
      mem.drainSince.delete(inst.id)
      ctx.notes.push(`${inst.id}: stop${timedOut && serving ? ' (drain timed out)' : ''}`)
    }
  }
}

function dependentsCaughtUp (d: Draft, obs: Observed, inst: InstanceRec): boolean {
  const services = d.spec ? dependentsOf(d.spec.services, inst.service) : []
  for (const dep of Object.values(d.instances)) {
    if (!services.includes(dep.service) || dep.phase === 'stop') continue
    const r = reportedState(obs, dep.node, dep.id)
    if (!r || r.state !== 'ONLINE') continue // not serving: nothing to wait for
    if ((r.view ?? 0) < (inst.drainVersion ?? 0)) return false
  }
  return true
}

/** A stopped instance's record goes once its node has seen the stop and no longer runs it. */
function progressStops (ctx: Ctx): void {
  const { d, obs } = ctx
  for (const inst of Object.values(d.instances)) {
    if (inst.phase !== 'stop') continue
    const node = inst.node ? obs.nodes.get(inst.node) : undefined
    if (inst.node === null) { forgetInstance(d, inst); continue }
    if (!isLive(node)) {
      // A dead node's stateless instances are gone; a stateful one waits for its node's termination.
      if (!inst.volume && node?.status === 'dead') forgetInstance(d, inst)
      continue
    }
    const sawStop = (node!.committed?.version ?? 0) >= (inst.drainVersion ?? Infinity)
    const report = node!.instances[inst.id]
    if (sawStop && (!report || report.state === 'Offline')) {
      forgetInstance(d, inst)
      ctx.notes.push(`${inst.id}: stopped`)
    }
  }
}

function forgetInstance (d: Draft, inst: InstanceRec): void {
  delete d.instances[inst.id]
  for (const other of Object.values(d.instances)) {
    if (other.migratingTo === inst.id) delete other.migratingTo
    if (other.replaces === inst.id) delete other.replaces
  }
}

/** An address follows its service's ONLINE instance (the new one, during a migration). */
function moveAddresses (ctx: Ctx): void {
  const { d, obs } = ctx
  if (!d.spec) return
  for (const [service, s] of Object.entries(d.spec.services)) {
    if (!s.address) continue
    const name = s.address.name
    const rec = d.addresses[name] ??= { name, service, associatedTo: null, wantAt: null }
    const runner = Object.values(d.instances).find(i => i.service === service && i.phase === 'run' && i.node !== null && !i.migratingTo && reportedState(obs, i.node, i.id)?.state === 'ONLINE')
    if (runner && rec.wantAt !== runner.node) {
      rec.wantAt = runner.node
      ctx.notes.push(`address ${name}: associate with ${runner.node}`)
    }
  }
}

/** A volume follows its service's running instance, once no other instance holds it. */
function moveVolumes (ctx: Ctx): void {
  const { d } = ctx
  const names = new Set(Object.values(d.instances).map(i => i.volume).filter((v): v is string => !!v))
  for (const name of names) {
    const users = Object.values(d.instances).filter(i => i.volume === name)
    const runner = users.find(i => i.phase === 'run' && i.node !== null && !i.migratingTo)
    if (!runner) {
      // Nobody runs it: it stays where it is (a stopped service keeps its data attached).
      const vol = d.volumes[name]
      if (vol && vol.wantAt !== vol.attachedTo && users.every(i => i.phase !== 'run')) vol.wantAt = vol.attachedTo
      continue
    }
    const vol = d.volumes[name] ??= { name, service: runner.service, attachedTo: null, wantAt: null }
    // The old holder (stopping, or on a dead node not yet terminated) keeps it until it is gone.
    if (users.some(i => i !== runner && i.node !== null)) continue
    if (vol.wantAt !== runner.node) {
      vol.wantAt = runner.node
      ctx.notes.push(`volume ${name}: attach to ${runner.node}`)
    }
  }
}
