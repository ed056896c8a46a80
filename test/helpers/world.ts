// A tiny deterministic world for scheduler tests: the leader's document is committed at once,
// nodes run what it assigns (ONLINE on the next step), the cloud launches and terminates at once.
import { applyCommand, type Command } from '../../src/core/commands.js'
import { planCloud } from '../../src/core/cloud-plan.js'
import { localInstances } from '../../src/core/local-plan.js'
import type { Observed, ObservedNode } from '../../src/core/observed.js'
import { newLeaderMemory, schedule } from '../../src/core/scheduler.js'
import { emptyDoc, type ClusterDoc, type InstanceState } from '../../src/core/types.js'
import { loadSpecFile } from '../../src/spec/load.js'
import type { Spec } from '../../src/spec/schema.js'

export interface WorldNode {
  id: string
  status: 'alive' | 'dead'
  running: Map<string, InstanceState>
  /** Document version this node has seen. */
  seen: number
}

export class World {
  doc: ClusterDoc
  now = 0
  readonly nodes = new Map<string, WorldNode>()
  readonly mem = newLeaderMemory()
  readonly log: string[] = []
  /** Every instance start, in order: "service@node". */
  readonly starts: string[] = []
  /** Every instance stop, in order. */
  readonly stops: string[] = []
  launched = 0
  /** "service@node": instances of that service crash-loop there (FAIL, and the node gives up on them). */
  readonly crashLoops = new Set<string>()
  private nextVm = 2

  constructor (readonly leader = 'vm-1') {
    this.doc = { ...emptyDoc('test'), version: 1, term: 1, voters: [leader], nodes: { [leader]: { id: leader, ip: '10.0.0.1', peer: leader } } }
    this.nodes.set(leader, { id: leader, status: 'alive', running: new Map(), seen: 1 })
  }

  observe (): Observed {
    const nodes = new Map<string, ObservedNode>()
    for (const n of this.nodes.values()) {
      const instances: ObservedNode['instances'] = {}
      for (const [id, state] of n.running) instances[id] = state === 'FAIL' ? { state, gaveUp: true, failures: 5, error: 'crash loop: gave up after 5 failures; last: exited with code 3' } : { state, view: n.seen }
      nodes.set(n.id, { id: n.id, status: n.status, ip: `10.0.0.${n.id.split('-')[1]}`, peer: n.id, current: n.seen > 0 && !!this.doc.nodes[n.id], committed: { term: 1, version: n.seen }, instances })
    }
    return { nodes }
  }

  command (cmd: Command): string {
    const r = applyCommand(this.doc, cmd, this.observe())
    if (!r.ok) return `${r.code}: ${r.message}`
    this.commit(r.doc)
    return r.message
  }

  private commit (next: ClusterDoc): void {
    this.doc = { ...next, version: this.doc.version + 1 }
  }

  /** One round: schedule, commit, cloud acts, nodes act. */
  step (): void {
    this.now += 100
    const s = schedule({ doc: this.doc, obs: this.observe(), mem: this.mem, now: this.now, term: 1, self: this.leader })
    this.log.push(...s.notes)
    if (s.next) this.commit(s.next)
    for (const a of planCloud(this.doc)) {
      if (a.type === 'launch') {
        const id = `vm-${this.nextVm++}`
        this.launched++
        this.nodes.set(id, { id, status: 'alive', running: new Map(), seen: 0 })
        this.commit(applyOk(this.doc, { type: 'launch-result', id: a.id, vm: id }))
      } else if (a.type === 'terminate') {
        const n = this.nodes.get(a.node)
        if (n) { n.status = 'dead'; n.running.clear() }
        this.commit(applyOk(this.doc, { type: 'terminated', node: a.node }))
      } else if (a.type === 'detach-volume') {
        this.commit(applyOk(this.doc, { type: 'volume-attached', name: a.name, node: null }))
      } else if (a.type === 'associate-address') {
        this.commit(applyOk(this.doc, { type: 'address-associated', name: a.name, node: a.node }))
      } else {
        this.commit(applyOk(this.doc, { type: 'volume-attached', name: a.name, node: a.node }))
      }
    }
    for (const n of this.nodes.values()) {
      if (n.status !== 'alive') continue
      // A node learns the document only once it is listed in it (it joined).
      if (this.doc.nodes[n.id]) n.seen = this.doc.version
      if (n.seen === 0) continue
      const want = localInstances(this.doc, n.id)
      for (const [id, st] of n.running) {
        if (!want.has(id)) { n.running.delete(id); this.stops.push(`${id}@${n.id}`) } else if (st === 'Starting') n.running.set(id, this.crashLoops.has(`${this.doc.instances[id]?.service}@${n.id}`) ? 'FAIL' : 'ONLINE')
      }
      for (const id of want.keys()) if (!n.running.has(id)) { n.running.set(id, 'Starting'); this.starts.push(`${id}@${n.id}`) }
    }
  }

  run (steps: number, check?: () => void): void {
    for (let i = 0; i < steps; i++) { this.step(); check?.() }
  }

  kill (id: string): void {
    const n = this.nodes.get(id)!
    n.status = 'dead'
    n.running.clear()
  }

  online (service: string): string[] {
    const out: string[] = []
    for (const n of this.nodes.values()) for (const [id, st] of n.running) if (st === 'ONLINE' && this.doc.instances[id]?.service === service) out.push(`${id}@${n.id}`)
    return out.sort()
  }

  /** Where each instance of a service runs right now (any state). */
  runningOf (service: string): string[] {
    const out: string[] = []
    for (const n of this.nodes.values()) for (const id of n.running.keys()) if (id.startsWith(`${service}-`)) out.push(n.id)
    return out
  }
}

function applyOk (doc: ClusterDoc, cmd: Command): ClusterDoc {
  const r = applyCommand(doc, cmd, { nodes: new Map() })
  if (!r.ok) throw new Error(r.message)
  return r.doc
}

/** The example web cluster's spec (the same file the demo and the e2e tests launch). */
export function webSpec (): Spec {
  return loadSpecFile(new URL('../../examples/webcluster/cluster.yaml', import.meta.url).pathname)
}
