// A stateful instance (one with a volume) never runs on two VMs at once, and never without its volume.
import type { Checker } from './types.js'

export function statefulSingle (): Checker {
  return {
    name: 'stateful instance on one node at a time',
    step (w) {
      const running = new Map<string, string[]>()
      for (const n of w.nodes) {
        if (!n.vmUp) continue
        for (const i of n.instances.values()) if (i.stateful) running.set(i.service, [...(running.get(i.service) ?? []), `${i.id}@${n.id}`])
      }
      for (const [svc, where] of running) if (where.length > 1) return `stateful service ${svc} runs on several nodes: ${where.join(', ')}`
      return undefined
    }
  }
}
