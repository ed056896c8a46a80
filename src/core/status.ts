// The status report every node answers with (GET /v1/status, `wakame status`). Pure.
import { dependencyLevels } from '../spec/graph.js'
import { targetPolicy } from '../spec/schema.js'
import type { Member } from './membership.js'
import { portOf } from './placement.js'
import { VIEW_DEAD_GRACE_MS } from './scheduler.js'
import { dependencyView, viewAddresses } from './views.js'
import type { ClusterDoc, ClusterPhase, DocId, InstanceRec, InstanceReport, InstanceState, LaunchRec, NodeId } from './types.js'

export interface InstanceStatus {
  id: string
  service: string
  state: InstanceState
  node: NodeId | null
  ip?: string
  port?: number
  phase: InstanceRec['phase']
  migratingTo?: string
  replaces?: string
  volume?: string
  error?: string
  /** Document version of the dependency view it was last given. */
  view?: number
  /** Addresses of its dependencies it was last given, per service. */
  deps?: Record<string, string[]>
  rerenders?: number
  onChange?: InstanceReport['onChange']
  /** Its autoscaling metric, as last reported. */
  metric?: number
  /** Failures since it was last stable (its node's crash-loop count). */
  failures?: number
  /** Its node stopped restarting it (crash loop). */
  crashLoop?: boolean
  /** Nodes it crash-looped on (it is not placed there again). */
  failedOn?: NodeId[]
  /** The leader stopped moving it: why. */
  gaveUp?: string
}

export interface ServiceStatus {
  name: string
  /** Instances ONLINE and meant to stay. */
  current: number
  min: number
  max: number
  desired: number
  dependsOn: string[]
  level: number
  settled: boolean
  instances: InstanceStatus[]
  /** For a balancer: where to send requests. */
  urls?: string[]
  /** For an autoscaled service (policy target): what it tracks and the value now, as this node hears it. */
  scale?: ScaleStatus
}

export interface ScaleStatus {
  policy: 'target'
  metric: 'load1' | 'reported'
  target: number
  /** Average over its ONLINE instances now (warm-up not left out), when any reports one. */
  value?: number
  /** Instances that value averages. */
  reporting: number
}

export interface NodeStatus {
  id: NodeId
  ip: string
  mesh?: string
  api?: string
  status: 'alive' | 'suspect' | 'dead' | 'unknown'
  reason?: string
  voter: boolean
  leader: boolean
  load1?: number
  heartbeatAgeS?: number
  instances: number
  launch?: string
  terminating: boolean
}

export interface StatusReport {
  cluster: string
  answeredBy: NodeId
  leader: NodeId | null
  term: number
  committed: DocId | null
  phase: ClusterPhase
  settled: boolean
  minNodes?: number
  warnings: string[]
  services: ServiceStatus[]
  nodes: NodeStatus[]
  launches: LaunchRec[]
  volumes: Array<{ name: string, service: string, attachedTo: NodeId | null, wantAt: NodeId | null }>
  addresses: Array<{ name: string, service: string, associatedTo: NodeId | null, wantAt: NodeId | null, ip?: string }>
}

export interface StatusInput {
  doc: ClusterDoc | null
  members: ReadonlyMap<NodeId, Member>
  self: NodeId
  leader: NodeId | null
  term: number
  now: number
  cluster: string
}

export function displayState (rec: InstanceRec, report: InstanceReport | undefined): InstanceState {
  const reported = report?.state ?? 'Offline'
  if (rec.migratingTo && reported === 'ONLINE' && rec.phase === 'run') return 'Migrating'
  if (rec.phase !== 'run' && (reported === 'ONLINE' || reported === 'Starting')) return 'Stopping'
  return reported
}

export function buildStatus (input: StatusInput): StatusReport {
  const { doc, members, now } = input
  const warnings: string[] = []
  const services: ServiceStatus[] = []
  let settled = true
  const reportOf = (rec: InstanceRec): InstanceReport | undefined => {
    if (!rec.node) return undefined
    const m = members.get(rec.node)
    return m && m.status !== 'dead' ? m.hb.instances[rec.id] : undefined
  }
  if (doc?.spec) {
    const levels = dependencyLevels(doc.spec.services)
    for (const [level, names] of levels.entries()) {
      for (const name of names) {
        const s = doc.spec.services[name]!
        const recs = Object.values(doc.instances).filter(i => i.service === name).sort((a, b) => seq(a.id) - seq(b.id))
        const instances = recs.map((rec): InstanceStatus => {
          const r = reportOf(rec)
          return {
            id: rec.id,
            service: name,
            state: displayState(rec, r),
            node: rec.node,
            ip: rec.node ? doc.nodes[rec.node]?.ip : undefined,
            port: portOf(doc.spec!, rec),
            phase: rec.phase,
            ...(rec.migratingTo ? { migratingTo: rec.migratingTo } : {}),
            ...(rec.replaces ? { replaces: rec.replaces } : {}),
            ...(rec.volume ? { volume: rec.volume } : {}),
            ...(r?.error ? { error: r.error } : {}),
            ...(r?.view !== undefined ? { view: r.view } : {}),
            ...(r?.deps && Object.keys(r.deps).length > 0 ? { deps: r.deps } : {}),
            ...(r?.rerenders !== undefined ? { rerenders: r.rerenders } : {}),
            ...(r?.onChange ? { onChange: r.onChange } : {}),
            ...(r?.metric !== undefined && r.state === 'ONLINE' ? { metric: r.metric } : {}),
            ...(r?.failures ? { failures: r.failures } : {}),
            ...(r?.gaveUp ? { crashLoop: true } : {}),
            ...(rec.failedOn?.length ? { failedOn: rec.failedOn } : {}),
            ...(rec.gaveUp ? { gaveUp: rec.gaveUp } : {})
          }
        })
        const desired = doc.phase === 'up' ? (doc.desired[name] ?? 0) : 0
        const current = instances.filter(i => i.state === 'ONLINE' && i.phase === 'run').length
        // Settled also means every instance was given the dependencies that serve now (re-pointed).
        const expected = JSON.stringify(viewAddresses(dependencyView(doc, members, name, now, VIEW_DEAD_GRACE_MS)))
        const svcSettled = current === desired && instances.every(i => i.phase === 'run' && i.state === 'ONLINE' &&
          (s.depends_on.length === 0 || JSON.stringify(i.deps ?? {}) === expected))
        if (!svcSettled) settled = false
        const st: ServiceStatus = { name, current, min: s.min, max: s.max, desired, dependsOn: s.depends_on, level, settled: svcSettled, instances }
        if (s.balancer) st.urls = instances.filter(i => i.state === 'ONLINE' && i.ip && i.port).map(i => `http://${i.ip}:${i.port}/`)
        const policy = targetPolicy(s)
        if (policy) {
          const values = recs.filter(rec => rec.phase === 'run').map(rec => {
            const r = reportOf(rec)
            if (r?.state !== 'ONLINE') return undefined
            return policy.metric === 'load1' ? members.get(rec.node!)?.hb.load1 : r.metric
          }).filter((v): v is number => v !== undefined)
          st.scale = { policy: 'target', metric: policy.metric, target: policy.target, reporting: values.length }
          if (values.length > 0) st.scale.value = values.reduce((a, b) => a + b, 0) / values.length
          else if (policy.metric === 'reported' && current > 0) warnings.push(`${name}: autoscaling on a reported metric, but no ONLINE instance reports one (its health answer must be {"metric": <number>})`)
        }
        if (doc.phase === 'up' && current < s.min) warnings.push(`${name}: ${current} ONLINE, below its min (${s.min})`)
        for (const i of instances) if (i.state === 'FAIL') warnings.push(`${i.id} on ${i.node}: FAIL${i.error ? `: ${i.error}` : ''}${i.gaveUp ? ` (not moved again: ${i.gaveUp.split(':')[0]})` : ''}`)
        services.push(st)
      }
    }
  }
  // Dead members the document no longer lists (terminated, replaced) are history, not agents.
  const nodeIds = new Set<NodeId>([...Object.keys(doc?.nodes ?? {}), ...[...members.values()].filter(m => m.status !== 'dead' || !doc).map(m => m.id)])
  const nodes: NodeStatus[] = [...nodeIds].sort(byNodeId).map(id => {
    const m = members.get(id)
    const dn = doc?.nodes[id]
    return {
      id,
      ip: dn?.ip ?? m?.hb.ip ?? '?',
      mesh: m?.hb.mesh,
      api: m?.hb.api,
      status: m?.status ?? 'unknown',
      ...(m?.reason ? { reason: m.reason } : {}),
      voter: doc?.voters.includes(id) ?? false,
      leader: id === input.leader,
      load1: m?.hb.load1,
      heartbeatAgeS: m ? Math.max(0, (now - m.heardAt) / 1000) : undefined,
      instances: Object.values(doc?.instances ?? {}).filter(i => i.node === id).length,
      ...(dn?.launch ? { launch: dn.launch } : {}),
      terminating: !!doc?.terminations[id]
    }
  })
  const launches = Object.values(doc?.launches ?? {})
  if (doc) {
    if (launches.some(l => l.status !== 'failed')) settled = false
    if (Object.values(doc.volumes).some(v => v.wantAt !== v.attachedTo)) settled = false
    if (Object.values(doc.addresses ?? {}).some(a => a.wantAt !== null && a.wantAt !== a.associatedTo)) settled = false
    // A service with an address that serves somewhere the address does not point yet (the leader
    // has not decided the association, or the cloud has not made it): not settled.
    for (const [name, s] of Object.entries(doc.spec?.services ?? {})) {
      if (!s.address) continue
      const at = doc.addresses?.[s.address.name]?.associatedTo ?? null
      const serving = Object.values(doc.instances).filter(i => i.service === name && i.phase === 'run' && !i.migratingTo && reportOf(i)?.state === 'ONLINE')
      if (serving.length > 0 && !serving.some(i => i.node === at)) settled = false
    }
    if (doc.phase === 'down' && (Object.keys(doc.instances).length > 0 || Object.keys(doc.terminations).length > 0)) settled = false
    const liveNodes = nodes.filter(n => n.status !== 'dead' && !n.terminating).length
    const minNodes = doc.spec?.cluster.min_nodes
    if (doc.phase === 'up' && minNodes !== undefined && liveNodes < minNodes) {
      warnings.push(`${liveNodes} node${liveNodes === 1 ? '' : 's'} up, below min_nodes (${minNodes}): the cluster cannot survive losing a node until more join`)
    }
    for (const l of launches) if (l.status === 'failed') warnings.push(`launch ${l.id} failed: ${l.error}`)
  }
  if (!input.leader) warnings.push('no leader: nothing can change until a majority of voters elects one')
  return {
    cluster: input.cluster,
    answeredBy: input.self,
    leader: input.leader,
    term: input.term,
    committed: doc ? { term: doc.term, version: doc.version } : null,
    phase: doc?.phase ?? 'idle',
    settled: settled && !!input.leader,
    ...(doc?.spec ? { minNodes: doc.spec.cluster.min_nodes } : {}),
    warnings,
    services,
    nodes,
    launches,
    volumes: Object.values(doc?.volumes ?? {}).map(v => ({ name: v.name, service: v.service, attachedTo: v.attachedTo, wantAt: v.wantAt })),
    addresses: Object.values(doc?.addresses ?? {}).map(a => ({ name: a.name, service: a.service, associatedTo: a.associatedTo, wantAt: a.wantAt, ...(a.ip ? { ip: a.ip } : {}) }))
  }
}

function seq (id: string): number {
  return Number(id.slice(id.lastIndexOf('-') + 1))
}

/** vm-2 before vm-10: compare the numeric suffix when the prefixes match. */
export function byNodeId (a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true })
}
