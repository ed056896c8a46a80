// One launch decision makes at most one VM, whatever retries, lost answers and leader changes.
import type { Checker } from './types.js'

export function noDuplicateVm (): Checker {
  return {
    name: 'no duplicate VM per launch decision',
    step (w) {
      const seen = new Map<string, string>()
      for (const vm of w.cloud.vms.values()) {
        if (vm.launch === 'initial') continue
        const other = seen.get(vm.launch)
        if (other !== undefined) return `launch decision ${vm.launch} made two VMs: ${other} and ${vm.id}`
        seen.set(vm.launch, vm.id)
      }
      return undefined
    }
  }
}
