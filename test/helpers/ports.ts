// Ports for test listeners, picked below the ephemeral range: a listener inside it can collide
// with a client socket.
import { createServer } from 'node:net'

/** A free TCP port in [20000, 32000) on `host` (below the ephemeral range, 32768+ here). */
export async function freePort (host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    const ok = await new Promise<boolean>(resolve => {
      const s = createServer()
      s.once('error', () => resolve(false))
      s.listen(port, host, () => s.close(() => resolve(true)))
    })
    if (ok) return port
  }
  throw new Error('no free port below 32000')
}
