// HAProxy's master CLI (`-S <socket>` in master-worker mode): one command per connection, the
// answer read until the master closes it (it does once we half-close). `@1 <cmd>` goes to the
// current worker (the runtime API); plain commands (`show proc`, `reload`) to the master.
import { connect } from 'node:net'
import { WakameError } from '../../util/errors.js'

export class MasterSocketError extends WakameError {
  constructor (message: string) { super('HAPROXY_MASTER_SOCKET', message) }
}

export interface ProcInfo {
  /** Reloads the master has done since it started (its counter survives re-execution). */
  reloads: number
  /** Reloads that failed (the new config did not load; the old workers kept serving). */
  failed: number
  /** Pids of the current workers. */
  workers: number[]
}

export interface ServerState {
  backend: string
  name: string
  addr: string
  port: number
  /** 0 = ready; any bit set = some kind of maintenance (forced, inherited, resolution, config). */
  admin: number
}

export async function masterCommand (socketPath: string, command: string, timeoutMs = 2_000): Promise<string> {
  return await new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const sock = connect(socketPath)
    const timer = setTimeout(() => { sock.destroy(); reject(new MasterSocketError(`${command}: no answer from the HAProxy master within ${timeoutMs} ms`)) }, timeoutMs)
    sock.on('connect', () => { sock.end(`${command}\n`) })
    sock.on('data', c => chunks.push(c))
    sock.on('error', err => { clearTimeout(timer); reject(new MasterSocketError(`${command}: ${err.message}`)) })
    sock.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('utf8')) })
  })
}

/**
 * `show proc`:
 * ```
 * #<PID>          <type>          <reloads>       <uptime>        <version>
 * 9371            master          1 [failed: 0]   0d00h10m26s     2.6.12-1+deb12u4
 * # workers
 * 23459           worker          0               0d00h00m00s     2.6.12-1+deb12u4
 * ```
 */
export function parseShowProc (text: string): ProcInfo {
  const m = /^\d+\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]/m.exec(text)
  if (!m) throw new MasterSocketError(`unexpected answer to show proc: ${text.slice(0, 200)}`)
  const workers: number[] = []
  let section = ''
  for (const line of text.split('\n')) {
    if (line.startsWith('# ')) { section = line.slice(2).trim(); continue }
    const w = /^(\d+)\s+worker\s/.exec(line)
    if (w && section === 'workers') workers.push(Number(w[1]))
  }
  return { reloads: Number(m[1]), failed: Number(m[2]), workers }
}

export async function showProc (socketPath: string): Promise<ProcInfo> {
  return parseShowProc(await masterCommand(socketPath, 'show proc'))
}

/**
 * `show servers state` (format 1): a version line, a `#` header, then one line per server:
 * be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ... srv_port (field 18) ...
 */
export function parseServersState (text: string): ServerState[] {
  const out: ServerState[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || /^\d+$/.test(line.trim())) continue
    const f = line.trim().split(/\s+/)
    if (f.length < 19) continue
    out.push({ backend: f[1]!, name: f[3]!, addr: f[4]!, admin: Number(f[6]), port: Number(f[18]) })
  }
  return out
}

export async function serversState (socketPath: string): Promise<ServerState[]> {
  return parseServersState(await masterCommand(socketPath, '@1 show servers state'))
}
