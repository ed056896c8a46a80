// The leader's cloud executor: carries out what the committed document asks of the provider
// (launch, terminate, move volumes) and reports results back as commands. Each call re-checks the
// lease right before it is made; the cloud cannot check terms, so this and idempotency keep a
// deposed leader from doing damage.
import { planCloud, type CloudAction } from '../core/cloud-plan.js'
import type { Command } from '../core/commands.js'
import type { ClusterDoc, NodeId } from '../core/types.js'
import { isDefinitive, type Provider } from '../providers/provider.js'
import type { Logger } from '../util/log.js'

export interface ExecutorDeps {
  self: NodeId
  provider: Provider
  logger: Logger
  /** True while this node may act (leader with a valid lease). */
  canAct: () => boolean
  report: (cmd: Command) => void
  onLaunchFailure: () => void
  /** Mesh addresses of live nodes, for a new VM to join through. */
  bootstrapAddrs: () => string[]
  /** A failed call is first retried after about this long, then twice as long each time. @default 1000 */
  retryMs?: number
  /** Jitter source in [0, 1). */
  random: () => number
  /** Whether a live node reports the volume mounted (it must not be detached under it). */
  mountedOn: (volume: string, node: NodeId) => boolean
  /** How often volume attachments are checked against the cloud. @default 10000 */
  auditMs?: number
}

export class CloudExecutor {
  private readonly inflight = new Set<string>()
  private readonly retryAt = new Map<string, number>()
  private readonly failures = new Map<string, number>()

  constructor (private readonly deps: ExecutorDeps) {}

  reconcile (doc: ClusterDoc, now: number): void {
    this.lastDoc = doc
    this.audit(doc, now)
    for (const action of planCloud(doc, this.deps.mountedOn)) {
      if (this.inflight.has(action.key) || (this.retryAt.get(action.key) ?? 0) > now) continue
      if (action.type === 'terminate' && action.node === this.deps.self) continue // never ourselves
      this.inflight.add(action.key)
      void this.run(action).then(() => {
        // Until the result is committed the document still asks for it: do not repeat it at once.
        this.failures.delete(action.key)
        this.retryAt.set(action.key, now + 5_000)
      }, (err) => {
        // Transient (throttled, timed out, answer lost): retry the same request, backing off with
        // jitter. Idempotency tokens make the repeat safe.
        const n = (this.failures.get(action.key) ?? 0) + 1
        this.failures.set(action.key, n)
        const delay = Math.min(30_000, (this.deps.retryMs ?? 1_000) * 2 ** (n - 1)) * (0.5 + this.deps.random() / 2)
        this.deps.logger.warn({ action, attempt: n, retryInMs: Math.round(delay), err: String(err?.message ?? err) }, 'cloud action failed; will retry')
        this.retryAt.set(action.key, now + delay)
      }).finally(() => this.inflight.delete(action.key))
    }
  }

  private lastAudit = -Infinity
  private auditing = false

  /**
   * Every `auditMs`, compare where the document says each volume is with where the cloud says it
   * is, and correct the document: a call whose answer was lost, or that landed after the plan
   * changed, must not leave the two apart for good.
   */
  private audit (doc: ClusterDoc, now: number): void {
    if (this.auditing || now - this.lastAudit < (this.deps.auditMs ?? 10_000)) return
    const volumes = Object.values(doc.volumes)
    const addresses = Object.values(doc.addresses ?? {})
    if (volumes.length === 0 && addresses.length === 0) return
    this.lastAudit = now
    this.auditing = true
    void (async () => {
      for (const v of volumes) {
        if (!this.deps.canAct()) return
        const actual = await this.deps.provider.volumeAttachment(v.name)
        // The zone too, while the document does not know it (the answer of the attach that created
        // the volume may have been lost): placement needs it, or the service is placed where its
        // volume can never be attached.
        const zone = v.zone === undefined ? await this.deps.provider.volumeZone(v.name) : undefined
        if (actual !== v.attachedTo || zone !== undefined) {
          if (actual !== v.attachedTo) this.deps.logger.warn({ volume: v.name, document: v.attachedTo, cloud: actual }, 'volume attachment differs from the document; correcting the document')
          this.deps.report({ type: 'volume-attached', name: v.name, node: actual, ...(zone !== undefined ? { zone } : {}) })
        }
      }
      // An address moved by someone else (a deposed leader's late call) is found here and moved back.
      for (const a of addresses) {
        if (!this.deps.canAct()) return
        const actual = await this.deps.provider.addressAssociation(a.name)
        if (actual !== a.associatedTo) {
          this.deps.logger.warn({ address: a.name, document: a.associatedTo, cloud: actual }, 'address association differs from the document; correcting')
          this.deps.report({ type: 'address-associated', name: a.name, node: actual })
        }
      }
    })().catch(err => this.deps.logger.debug({ err: String(err) }, 'volume audit failed; next time')).finally(() => { this.auditing = false })
  }

  /**
   * Right before every call that changes the cloud, after any await: the lease may have run out
   * while an earlier answer was on its way. The cloud cannot check terms; this check is the fence.
   */
  private fence (): void {
    if (!this.deps.canAct()) throw new Error('lease lost before the call; left to the next leader')
  }

  /** Whether the last committed document has an instance of this volume on that node. */
  private usedOn (volume: string, node: NodeId): boolean {
    return Object.values(this.lastDoc?.instances ?? {}).some(i => i.volume === volume && i.node === node)
  }

  private lastDoc: ClusterDoc | undefined

  private async run (a: CloudAction): Promise<void> {
    const { provider, logger } = this.deps
    if (!this.deps.canAct()) return // lease lost since planning: leave it to the next leader
    switch (a.type) {
      case 'launch': {
        logger.info({ launch: a.id, token: a.token, reason: a.reason }, 'launching a VM')
        try {
          const vm = await provider.launch({ token: a.token, decisionId: a.id, reason: a.reason, bootstrap: this.deps.bootstrapAddrs(), ...(a.zone ? { zones: [a.zone] } : {}), ...(a.instanceType ? { instanceType: a.instanceType } : {}) })
          this.deps.report({ type: 'launch-result', id: a.id, vm: vm.id })
        } catch (err) {
          if (!isDefinitive(err)) throw err
          this.deps.onLaunchFailure()
          this.deps.report({ type: 'launch-result', id: a.id, error: String((err as Error)?.message ?? err) })
        }
        return
      }
      case 'terminate':
        logger.info({ node: a.node }, 'terminating a VM')
        // The cloud re-reads the VM and checks it is the node meant before terminating it.
        await provider.terminate(a.node, { ...(this.lastDoc?.nodes[a.node]?.ip ? { ip: this.lastDoc.nodes[a.node]!.ip } : {}) })
        this.deps.report({ type: 'terminated', node: a.node })
        return
      case 'detach-volume':
        logger.info({ volume: a.name, node: a.node }, 'detaching a volume')
        await provider.detachVolume(a.name, a.node)
        this.deps.report({ type: 'volume-attached', name: a.name, node: null })
        return
      case 'attach-volume': {
        // The cloud's word, not the document's, decides: an answer lost earlier can leave the
        // volume attached where the document does not know it.
        const at = await provider.volumeAttachment(a.name)
        // A volume lives in one zone and can only be attached there. If the target is elsewhere
        // (it was placed while the document did not know the zone), no retry can succeed: record
        // the zone instead, and the scheduler places the instance again, in the zone.
        const zone = await provider.volumeZone(a.name)
        const nodeZone = this.lastDoc?.nodes[a.node]?.zone
        if (zone !== undefined && nodeZone !== undefined && zone !== nodeZone) {
          logger.warn({ volume: a.name, zone, node: a.node, nodeZone }, 'volume is in another zone than the node it is meant for; recording its zone')
          this.deps.report({ type: 'volume-attached', name: a.name, node: at, zone })
          return
        }
        if (at !== null && at !== a.node) {
          // Attached elsewhere: it may only be taken from a node where no instance uses it any more
          // (the scheduler asks for a move only then), else it waits.
          if (this.usedOn(a.name, at) || this.deps.mountedOn(a.name, at)) throw new Error(`volume ${a.name} is still in use on ${at}`)
          this.fence()
          logger.info({ volume: a.name, from: at }, 'detaching a volume left attached elsewhere')
          await provider.detachVolume(a.name, at)
        }
        this.fence()
        logger.info({ volume: a.name, node: a.node }, 'attaching a volume')
        if (at !== a.node) {
          try {
            await provider.attachVolume(a.name, a.service, a.node)
          } catch (err) {
            // A definitive refusal (another zone than the document knew): record what the cloud
            // says, so the plan changes rather than repeating a call that cannot succeed.
            if (isDefinitive(err)) {
              const now = await provider.volumeAttachment(a.name)
              const z = await provider.volumeZone(a.name)
              this.deps.report({ type: 'volume-attached', name: a.name, node: now, ...(z !== undefined ? { zone: z } : {}) })
            }
            throw err
          }
        }
        const after = zone ?? await provider.volumeZone(a.name)
        this.deps.report({ type: 'volume-attached', name: a.name, node: a.node, ...(after ? { zone: after } : {}) })
        return
      }
      case 'associate-address': {
        logger.info({ address: a.name, node: a.node }, 'associating an address')
        await provider.associateAddress(a.name, a.node)
        // Confirmed by reading it back: the document records what the cloud says.
        const at = await provider.addressAssociation(a.name)
        const ip = await provider.addressIp(a.name)
        this.deps.report({ type: 'address-associated', name: a.name, node: at, ...(ip ? { ip } : {}) })
        return
      }
    }
  }
}
