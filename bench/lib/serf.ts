// Serf agents (Debian's `serf`, default LAN profile) on 127.0.<net>.x, and a client for serf's RPC
// protocol (msgpack over TCP): members, user events, and event streams. Polling `members` over a
// kept-open RPC connection is what `serf members` does, without a process spawn per poll.
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, openSync, closeSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { onCleanup, runDir, trackGroup, untrackGroup } from './cleanup.js'
import { decode, encode, Incomplete } from './msgpack.js'
import { alive, signal, sleep, waitUntil } from './proc.js'

export const SERF_PORT = 7946
export const SERF_RPC_PORT = 7373

export function ensurePackages (pkgs: Array<{ bin: string, pkg: string }>): void {
  const missing = pkgs.filter(p => { try { execFileSync('sh', ['-c', `command -v ${p.bin}`], { stdio: 'ignore' }); return false } catch { return true } })
  if (missing.length === 0) return
  console.log(`installing ${missing.map(p => p.pkg).join(' ')} (apt-get)...`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  try {
    execFileSync('apt-get', ['install', '-y', ...missing.map(p => p.pkg)], { stdio: 'inherit', env })
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'inherit', env })
    execFileSync('apt-get', ['install', '-y', ...missing.map(p => p.pkg)], { stdio: 'inherit', env })
  }
}

export interface Member { Name: string, Status: string, Addr: unknown, Port: number }
export interface UserEvent { Event: string, Name?: string, Payload?: Buffer, LTime?: number }

export class SerfRpc {
  private sock!: Socket
  private buf: Buffer = Buffer.alloc(0)
  private seq = 0
  private readonly pending = new Map<number, { body: boolean, resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  private readonly streams = new Map<number, (e: UserEvent) => void>()
  private waitingBodyFor: number | undefined
  closed = false

  constructor (readonly addr: string) {}

  async open (): Promise<void> {
    const [host, port] = this.addr.split(':') as [string, string]
    await new Promise<void>((resolve, reject) => {
      this.sock = connect({ host, port: Number(port) }, resolve)
      this.sock.once('error', reject)
    })
    this.sock.setNoDelay(true)
    this.sock.on('data', (d: Buffer) => this.onData(d))
    this.sock.on('error', () => {})
    this.sock.on('close', () => {
      this.closed = true
      for (const p of this.pending.values()) p.reject(new Error(`${this.addr}: RPC connection closed`))
      this.pending.clear()
    })
    await this.call('handshake', { Version: 1 }, false)
  }

  private onData (d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d])
    for (;;) {
      let r: { value: unknown, pos: number }
      try { r = decode(this.buf, 0) } catch (err) { if (err instanceof Incomplete) return; throw err }
      this.buf = this.buf.subarray(r.pos)
      this.onValue(r.value)
    }
  }

  private onValue (v: unknown): void {
    if (this.waitingBodyFor !== undefined) {
      const seq = this.waitingBodyFor
      this.waitingBodyFor = undefined
      const p = this.pending.get(seq)
      if (p) { this.pending.delete(seq); p.resolve(v); return }
      const s = this.streams.get(seq)
      if (s) s(v as UserEvent)
      return
    }
    const h = v as { Seq: number, Error: string }
    const p = this.pending.get(h.Seq)
    if (h.Error) {
      if (p) { this.pending.delete(h.Seq); p.reject(new Error(`${this.addr}: ${h.Error}`)) }
      return
    }
    if (p && !p.body) { this.pending.delete(h.Seq); p.resolve(undefined); return }
    // A body follows: the answer to a call, or an event of a stream.
    this.waitingBodyFor = h.Seq
  }

  async call (command: string, body: unknown, expectBody: boolean): Promise<unknown> {
    const seq = this.seq++
    const p = new Promise<unknown>((resolve, reject) => this.pending.set(seq, { body: expectBody, resolve, reject }))
    this.sock.write(body === undefined ? encode({ Command: command, Seq: seq }) : Buffer.concat([encode({ Command: command, Seq: seq }), encode(body)]))
    return await p
  }

  async members (): Promise<Member[]> {
    return ((await this.call('members', undefined, true)) as { Members: Member[] }).Members
  }

  async userEvent (name: string, payload: string, coalesce = false): Promise<void> {
    await this.call('event', { Name: name, Payload: Buffer.from(payload), Coalesce: coalesce }, false)
  }

  /** Streams user events to `on` (arrival time is taken by the caller). */
  async stream (type: string, on: (e: UserEvent) => void): Promise<void> {
    const seq = this.seq
    this.streams.set(seq, on)
    await this.call('stream', { Type: type }, false)
  }

  close (): void { this.closed = true; this.sock?.destroy() }
}

export interface SerfAgent { name: string, ip: string, pid: number, rpc: SerfRpc }

export interface SerfCluster {
  agents: SerfAgent[]
  start: (name: string, ip: string, join?: string) => Promise<SerfAgent>
  stop: () => Promise<void>
}

export async function startSerf (opts: { net: string, n: number, name: string }): Promise<SerfCluster> {
  ensurePackages([{ bin: 'serf', pkg: 'serf' }])
  const dir = join(runDir(), `serf-${opts.name}`)
  mkdirSync(dir, { recursive: true })
  const agents: SerfAgent[] = []
  const start = async (name: string, ip: string, joinAddr?: string): Promise<SerfAgent> => {
    const log = openSync(join(dir, `${name}.log`), 'a')
    const args = ['agent', '-node', name, '-bind', `${ip}:${SERF_PORT}`, '-rpc-addr', `${ip}:${SERF_RPC_PORT}`, '-log-level', 'warn', ...(joinAddr ? ['-join', joinAddr] : [])]
    const child = spawn('serf', args, { detached: true, stdio: ['ignore', log, log] })
    closeSync(log)
    child.unref()
    const pid = child.pid!
    trackGroup(pid)
    const rpc = new SerfRpc(`${ip}:${SERF_RPC_PORT}`)
    await waitUntil(`serf ${name} RPC`, async () => { try { await rpc.open(); return true } catch { return false } }, 15_000, 50)
    const a = { name, ip, pid, rpc }
    agents.push(a)
    return a
  }
  const stop = onCleanup(`serf ${opts.name}`, async () => {
    for (const a of agents) { a.rpc.close(); signal(-a.pid, 'SIGCONT'); signal(-a.pid, 'SIGKILL'); untrackGroup(a.pid) }
    await waitUntil('serf agents gone', () => agents.every(a => !alive(a.pid)), 5_000, 50).catch(() => {})
  })
  const c = { agents, start, stop }
  try {
    const firstIp = `${opts.net}.2`
    await start('serf-2', firstIp)
    // Join in parallel batches: each new agent joins through the first one.
    const rest = Array.from({ length: opts.n - 1 }, (_, i) => i + 3)
    for (let i = 0; i < rest.length; i += 10) {
      await Promise.all(rest.slice(i, i + 10).map(async h => await start(`serf-${h}`, `${opts.net}.${h}`, `${firstIp}:${SERF_PORT}`)))
    }
    await waitUntil(`${opts.n} serf agents alive everywhere`, async () => {
      const all = await Promise.all(agents.map(async a => (await a.rpc.members()).filter(m => m.Status === 'alive').length))
      return all.every(k => k === opts.n)
    }, 60_000, 250)
    return c
  } catch (err) {
    await stop()
    throw err
  }
}

/** Waits until every agent in `observers` shows `name` with the status (polling members over RPC). Returns each observer's first-seen time. */
export async function watchStatus (observers: SerfAgent[], name: string, status: string, timeoutMs: number, pollMs = 50): Promise<Map<string, number>> {
  const seen = new Map<string, number>()
  const deadline = Date.now() + timeoutMs
  while (seen.size < observers.length) {
    if (Date.now() > deadline) throw new Error(`serf: ${name} not ${status} on ${observers.length - seen.size} agents after ${timeoutMs} ms`)
    await Promise.all(observers.filter(o => !seen.has(o.name)).map(async o => {
      const sent = Date.now()
      try {
        const ms = await o.rpc.members()
        if (ms.some(m => m.Name === name && m.Status === status)) seen.set(o.name, (sent + Date.now()) / 2)
      } catch {}
    }))
    await sleep(pollMs)
  }
  return seen
}
