// Prometheus metrics of one node (`GET /metrics`, prom-client). What the status already knows —
// membership, leader and term, heartbeat ages, each service's desired/current/ONLINE counts — is
// read from it at scrape time; what happens between scrapes is counted as it happens: cloud API
// calls (through the metered provider below), documents proposed as leader, balancer reloads and
// render latency (from relations).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { StatusReport } from '../core/status.js'
import { wrapProvider, type Provider } from '../providers/provider.js'

/** What a scrape reads from the node. */
export interface MetricsSource {
  status: () => StatusReport
  /** Each local balancer's counters (monotonic while its runtime lives; a fresh runtime starts at 0). */
  balancers: () => Record<string, { kind: string, reloads: number, resends: number, invalid: number, runtimeChanges: number }>
}

export class Metrics {
  readonly registry = new Registry()
  private source?: MetricsSource
  private lastTerm = 0
  private readonly lastBalancer = new Map<string, { reloads: number, resends: number, invalid: number, runtimeChanges: number }>()

  readonly providerCalls = new Counter({ name: 'wakame_provider_calls_total', help: 'Cloud provider calls made by this node, by call and outcome', labelNames: ['call', 'outcome'], registers: [this.registry] })
  readonly providerSeconds = new Histogram({ name: 'wakame_provider_call_seconds', help: 'Latency of cloud provider calls', labelNames: ['call'], buckets: [0.005, 0.02, 0.1, 0.5, 2, 10, 60], registers: [this.registry] })
  readonly proposals = new Counter({ name: 'wakame_scheduler_documents_proposed_total', help: 'Cluster documents this node proposed as leader (each a scheduling decision)', registers: [this.registry] })
  readonly renderSeconds = new Histogram({ name: 'wakame_render_seconds', help: 'Rendering an instance\'s dependency files (balancer configs included)', buckets: [0.0005, 0.002, 0.01, 0.05, 0.2, 1], registers: [this.registry] })
  /** Events this node recorded itself (its decisions as leader, the transitions it saw), by kind. */
  readonly events = new Counter({ name: 'wakame_events_total', help: 'Events this node recorded itself, by kind (decision: a scheduler action as leader; command; cloud; member; leader; instance)', labelNames: ['kind'], registers: [this.registry] })
  private readonly elections = new Counter({ name: 'wakame_elections_total', help: 'Terms this node has seen begin (elections), since it started', registers: [this.registry] })
  private readonly balancerChanges = new Counter({ name: 'wakame_balancer_changes_total', help: 'Balancer changes applied on this node, by instance and how (reload, resend, invalid, runtime_api)', labelNames: ['instance', 'kind', 'how'], registers: [this.registry] })

  constructor () {
    collectDefaultMetrics({ register: this.registry, prefix: 'wakame_' })
    const metrics = this
    const gauge = (name: string, help: string, labelNames: string[], collect: (g: Gauge) => void): void => {
      // eslint-disable-next-line no-new
      new Gauge({ name, help, labelNames, registers: [this.registry], collect () { const s = metrics.source; if (s) { this.reset(); collect(this) } } })
    }
    gauge('wakame_members', 'Cluster members as this node sees them, by status', ['status'], g => {
      for (const st of ['alive', 'suspect', 'dead']) g.set({ status: st }, this.status().nodes.filter(n => n.status === st).length)
    })
    gauge('wakame_leader', '1 when this node leads, 0 otherwise', [], g => { const s = this.status(); g.set(s.leader === s.answeredBy ? 1 : 0) })
    gauge('wakame_term', 'The election term this node is in', [], g => { g.set(this.status().term) })
    gauge('wakame_heartbeat_age_seconds', 'Seconds since each member\'s last heartbeat reached this node', ['node'], g => {
      for (const n of this.status().nodes) if (n.heartbeatAgeS !== undefined) g.set({ node: n.id }, n.heartbeatAgeS)
    })
    gauge('wakame_service_instances', 'Instances per service: desired, current (placed) and online', ['service', 'state'], g => {
      for (const v of this.status().services) {
        g.set({ service: v.name, state: 'desired' }, v.desired)
        g.set({ service: v.name, state: 'current' }, v.current)
        g.set({ service: v.name, state: 'online' }, v.instances.filter(i => i.state === 'ONLINE').length)
      }
    })
  }

  /** Starts answering scrapes from this node. */
  attach (source: MetricsSource): void { this.source = source }

  private status (): StatusReport { return this.source!.status() }

  /** The exposition text (and its content type). Counters derived from state are brought up to date first. */
  async scrape (): Promise<{ text: string, contentType: string }> {
    if (this.source) {
      const term = this.source.status().term
      if (term > this.lastTerm) { this.elections.inc(term - this.lastTerm); this.lastTerm = term }
      for (const [instance, b] of Object.entries(this.source.balancers())) {
        const last = this.lastBalancer.get(instance) ?? { reloads: 0, resends: 0, invalid: 0, runtimeChanges: 0 }
        for (const [how, key] of [['reload', 'reloads'], ['resend', 'resends'], ['invalid', 'invalid'], ['runtime_api', 'runtimeChanges']] as const) {
          // A fresh runtime (instance restarted) counts from 0 again: all of its count is new.
          const delta = b[key] >= last[key] ? b[key] - last[key] : b[key]
          if (delta > 0) this.balancerChanges.inc({ instance, kind: b.kind, how }, delta)
        }
        this.lastBalancer.set(instance, { reloads: b.reloads, resends: b.resends, invalid: b.invalid, runtimeChanges: b.runtimeChanges })
      }
    }
    return { text: await this.registry.metrics(), contentType: this.registry.contentType }
  }
}

/** The provider, with every call counted and timed. Same behaviour, same errors. */
export function meteredProvider (p: Provider, m: Metrics): Provider {
  const timed = <A extends unknown[], R>(call: string, fn: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
    const end = m.providerSeconds.startTimer({ call })
    try {
      const r = await fn(...a)
      m.providerCalls.inc({ call, outcome: 'ok' })
      return r
    } catch (err) {
      m.providerCalls.inc({ call, outcome: 'error' })
      throw err
    } finally { end() }
  }
  return wrapProvider(p, timed)
}
