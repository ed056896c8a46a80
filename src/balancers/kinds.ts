// The balancer kinds a spec can name (`balancer.kind`), each a runtime relations drives the same way.
// builtin is wakame's own proxy process: relations writes its JSON file and the supervisor sends its
// reload signal, exactly as before there were other kinds.
import { join } from 'node:path'
import { renderBuiltinConfig } from './builtin/render.js'
import { ApacheBalancer } from './apache/adapter.js'
import { HaproxyBalancer } from './haproxy/adapter.js'
import { hostPort, type RenderInput } from './model.js'
import { NginxBalancer } from './nginx/adapter.js'
import type { BalancerContext, BalancerKind, BalancerRuntime, BalancerStats } from './runtime.js'

export type { BalancerContext, BalancerKind, BalancerRuntime } from './runtime.js'
export { BALANCER_KINDS } from '../spec/schema.js'

/** The server binaries each external kind needs (first found wins), for messages and test skips. */
export const KIND_PROGRAMS: Record<Exclude<BalancerKind, 'builtin'>, string[]> = {
  haproxy: ['haproxy'],
  nginx: ['nginx'],
  apache: ['apache2', 'httpd']
}

class BuiltinBalancer implements BalancerRuntime {
  readonly kind = 'builtin' as const
  readonly configFile = 'balancer.json'
  readonly managed = false
  readonly stats: BalancerStats = { validations: 0, invalid: 0, reloads: 0, resends: 0, runtimeChanges: 0 }

  constructor (private readonly ctx: BalancerContext) {}

  argv (): string[] {
    return [...this.ctx.selfArgv, 'balancer', '--config', join(this.ctx.dir, this.configFile), '--listen', hostPort(this.ctx.listen.host, this.ctx.listen.port)]
  }

  render (input: RenderInput): string { return renderBuiltinConfig(input.routes, input.view) }

  /** Relations writes the file like any other: the proxy keeps its previous table when a file is bad. */
  prepare (): void {}

  async apply (): Promise<string> {
    const out = await this.ctx.reload()
    this.stats.reloads++
    return out
  }
}

export function createBalancer (kind: BalancerKind, ctx: BalancerContext): BalancerRuntime {
  switch (kind) {
    case 'builtin': return new BuiltinBalancer(ctx)
    case 'haproxy': return new HaproxyBalancer(ctx)
    case 'nginx': return new NginxBalancer(ctx)
    case 'apache': return new ApacheBalancer(ctx)
  }
}
