// Loopback addresses for local VMs: 127.0.<net>.<host>, one per VM, so every VM can use the same
// ports. Linux routes all of 127.0.0.0/8 to lo, so any of them can be bound without configuration.
import { createServer } from 'node:net'

export const LAST_HOST = 254

/** True when ip:port can be listened on right now. */
export async function canBind (ip: string, port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen({ port, host: ip, exclusive: true }, () => srv.close(() => resolve(true)))
  })
}

/**
 * Waits until every port is bindable at `ip` again. A killed listener's port stays busy for a few
 * ms after its process is a zombie (measured here: up to ~25 ms), so without this a VM relaunched
 * right after a terminate would get another address. False on timeout (another program took it).
 */
export async function waitPortsFree (ip: string, ports: number[], timeoutMs = 1_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let free = true
    for (const port of ports) {
      if (!(await canBind(ip, port))) { free = false; break }
    }
    if (free) return true
    if (Date.now() >= deadline) return false
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}
