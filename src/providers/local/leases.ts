// Address leases: which VM holds which loopback address, safe between processes without locks.
//
// A lease is a file `addresses/<ip>#<gen>` naming a vm id; the highest generation is the current
// one. To take an address whose current lease (generation g, or none: g = 0) is free or held by a
// VM that is gone, a launcher creates generation g + 1 with an exclusive hard link. Only one process
// can create a given generation, so two launchers racing for the same address cannot both win, and
// no one ever deletes a lease that another process has just taken (the classic flaw of stale-lock
// takeover). Old generations are never deleted: a directory read racing with a deletion could miss
// every lease of an address and start again at generation 1.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createFileExclusiveSync } from '../../store/atomic.js'

export interface Lease {
  gen: number
  /** Vm id holding it; undefined when the address was never leased. */
  vm?: string
}

export class AddressLeases {
  constructor (private readonly dir: string) {}

  init (): void {
    mkdirSync(this.dir, { recursive: true })
  }

  /** The current lease of every address ever leased. */
  snapshot (): Map<string, Lease> {
    const newest = new Map<string, number>()
    for (const name of readdirSync(this.dir)) {
      const m = /^(\d+\.\d+\.\d+\.\d+)#(\d+)$/.exec(name)
      if (m === null) continue
      const [, ip, gen] = m as unknown as [string, string, string]
      if (Number(gen) > (newest.get(ip) ?? 0)) newest.set(ip, Number(gen))
    }
    const out = new Map<string, Lease>()
    for (const [ip, gen] of newest) {
      let vm: string | undefined
      try { vm = readFileSync(join(this.dir, `${ip}#${gen}`), 'utf8').trim() } catch {}
      out.set(ip, { gen, vm })
    }
    return out
  }

  /** Takes `ip` for `vmId` if `gen` is still its newest generation. False when someone else was faster. */
  take (ip: string, gen: number, vmId: string): boolean {
    return createFileExclusiveSync(join(this.dir, `${ip}#${gen + 1}`), vmId + '\n')
  }
}
