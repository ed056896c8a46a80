// The leader's cloud executor: carries out what the committed document asks of the provider
// (launch, terminate, move volumes) and reports results back as commands. Each call re-checks the
// lease right before it is made; the cloud cannot check terms, so this and idempotency keep a
// deposed leader from doing damage.
import { planCloud, type CloudAction } from '../core/cloud-plan.js'
import type { Command } from '../core/commands.js'
import type { ClusterDoc, NodeId } from '../core/types.js'
import type { Provider } from '../providers/provider.js'
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
  /** A failed call is retried after this long. @default 2000 */
  retryMs?: number
}

export class CloudExecutor {
  private readonly inflight = new Set<string>()
  private readonly retryAt = new Map<string, number>()

  constructor (private readonly deps: ExecutorDeps) {}

  reconcile (doc: ClusterDoc, now: number): void {
    for (const action of planCloud(doc)) {
      if (this.inflight.has(action.key) || (this.retryAt.get(action.key) ?? 0) > now) continue
      if (action.type === 'terminate' && action.node === this.deps.self) continue // never ourselves
      this.inflight.add(action.key)
      void this.run(action).then(() => {
        // Until the result is committed the document still asks for it: do not repeat it at once.
        this.retryAt.set(action.key, now + 5_000)
      }, (err) => {
        this.deps.logger.warn({ action, err: String(err?.message ?? err) }, 'cloud action failed; will retry')
        this.retryAt.set(action.key, now + (this.deps.retryMs ?? 2_000))
      }).finally(() => this.inflight.delete(action.key))
    }
  }

  private async run (a: CloudAction): Promise<void> {
    const { provider, logger } = this.deps
    if (!this.deps.canAct()) return // lease lost since planning: leave it to the next leader
    switch (a.type) {
      case 'launch': {
        logger.info({ launch: a.id, token: a.token, reason: a.reason }, 'launching a VM')
        try {
          const vm = await provider.launch({ token: a.token, decisionId: a.id, reason: a.reason, bootstrap: this.deps.bootstrapAddrs() })
          this.deps.report({ type: 'launch-result', id: a.id, vm: vm.id })
        } catch (err) {
          this.deps.onLaunchFailure()
          this.deps.report({ type: 'launch-result', id: a.id, error: String((err as Error)?.message ?? err) })
        }
        return
      }
      case 'terminate':
        logger.info({ node: a.node }, 'terminating a VM')
        await provider.terminate(a.node)
        this.deps.report({ type: 'terminated', node: a.node })
        return
      case 'detach-volume':
        logger.info({ volume: a.name, node: a.node }, 'detaching a volume')
        await provider.detachVolume(a.name, a.node)
        this.deps.report({ type: 'volume-attached', name: a.name, node: null })
        return
      case 'attach-volume':
        logger.info({ volume: a.name, node: a.node }, 'attaching a volume')
        await provider.attachVolume(a.name, a.service, a.node)
        this.deps.report({ type: 'volume-attached', name: a.name, node: a.node })
        return
    }
  }
}
