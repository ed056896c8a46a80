// The mesh adapter: two gossip topics (heartbeats, control), validation before delivery and
// forwarding, and connection upkeep with failure signals (disconnect → suspect, refused → dead).
import { EventEmitter } from 'node:events'
import { connect } from 'node:net'
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { ConsensusMsg } from '../core/consensus/messages.js'
import type { Heartbeat } from '../core/types.js'
import type { Logger } from '../util/log.js'
import { decodeControl, decodeHeartbeat, encode } from './codec.js'
import { createMeshNode, DEFAULT_MESH_TUNING, type MeshTuning, type WakameLibp2p } from './libp2p.js'

export interface MeshOptions {
  cluster: string
  /** This node's id: a message from another peer claiming it is a forgery. */
  node: string
  ip: string
  port: number
  psk: Uint8Array
  acceptedPsks?: Uint8Array[]
  privateKey: PrivateKey
  logger: Logger
  tuning?: Partial<MeshTuning>
}

export type ProbeResult = 'connected' | 'refused' | 'unreachable'

export interface MeshEvents {
  heartbeat: [Heartbeat]
  control: [ConsensusMsg]
  disconnect: [string]
  connect: [string]
}

export class Mesh extends EventEmitter<MeshEvents> {
  readonly topics: { heartbeat: string, control: string }
  private node!: WakameLibp2p
  private readonly dialing = new Map<string, Promise<ProbeResult>>()
  /** Node id each peer claims in its heartbeats; messages naming another node are rejected. */
  private readonly peerNode = new Map<string, string>()
  /** The peer (signing key) each node id belongs to, and the incarnation it last claimed it with. */
  private readonly nodePeer = new Map<string, { peer: string, incarnation: number }>()
  private readonly decoded = new WeakMap<Uint8Array, Heartbeat | ConsensusMsg>()
  /** Incarnation and content revision of the last heartbeat relayed for each node. */
  private readonly relayed = new Map<string, { incarnation: number, rev: number }>()
  private readonly tuning: MeshTuning

  constructor (private readonly opts: MeshOptions) {
    super()
    this.tuning = { ...DEFAULT_MESH_TUNING, ...opts.tuning }
    this.topics = { heartbeat: `/wakame/${opts.cluster}/heartbeat/1`, control: `/wakame/${opts.cluster}/control/1` }
  }

  get peerId (): string { return this.node.peerId.toString() }

  /** The address other nodes dial, with our peer id. */
  get address (): string {
    const family = this.opts.ip.includes(':') ? 'ip6' : 'ip4'
    return `/${family}/${this.opts.ip}/tcp/${this.opts.port}/p2p/${this.peerId}`
  }

  async start (): Promise<void> {
    this.node = await createMeshNode({ ip: this.opts.ip, port: this.opts.port, psk: this.opts.psk, acceptedPsks: this.opts.acceptedPsks ?? [], privateKey: this.opts.privateKey, topics: Object.values(this.topics), tuning: this.tuning })
    const pubsub = this.node.services.pubsub
    pubsub.topicValidators.set(this.topics.heartbeat, (peer, msg) => this.validate(peer, msg, 'heartbeat'))
    pubsub.topicValidators.set(this.topics.control, (peer, msg) => this.validate(peer, msg, 'control'))
    pubsub.addEventListener('message', (evt) => {
      const body = this.decoded.get(evt.detail.data)
      if (!body) return
      if (evt.detail.topic === this.topics.heartbeat) this.emit('heartbeat', body as Heartbeat)
      else if (evt.detail.topic === this.topics.control) this.emit('control', body as ConsensusMsg)
    })
    this.node.addEventListener('peer:disconnect', (evt) => this.emit('disconnect', evt.detail.toString()))
    this.node.addEventListener('peer:connect', (evt) => this.emit('connect', evt.detail.toString()))
    await this.node.start()
    pubsub.subscribe(this.topics.heartbeat)
    pubsub.subscribe(this.topics.control)
  }

  async stop (): Promise<void> {
    await this.node?.stop()
  }

  // Runs before delivery and before forwarding: a bad message goes no further than this node.
  private validate (peer: PeerId, msg: Message, kind: 'heartbeat' | 'control'): TopicValidatorResult {
    if (msg.type !== 'signed') return TopicValidatorResult.Reject
    const from = msg.from.toString()
    const r = kind === 'heartbeat' ? decodeHeartbeat(msg.data, this.opts.cluster) : decodeControl(msg.data, this.opts.cluster)
    if (!r.ok) {
      this.opts.logger.warn({ peer: peer.toString(), from, topic: kind, reason: r.reason }, 'dropped a gossip message')
      return TopicValidatorResult.Reject
    }
    if (kind === 'heartbeat') {
      const hb = r.value as Heartbeat
      // The signer must be the peer the heartbeat claims, and one peer speaks for one node.
      if (hb.peer !== from) return this.reject(peer, from, kind, `heartbeat claims peer ${hb.peer}`)
      if (hb.node === this.opts.node) return this.reject(peer, from, kind, `heartbeat claims to come from this node (${hb.node})`)
      const known = this.peerNode.get(from)
      if (known !== undefined && known !== hb.node) return this.reject(peer, from, kind, `peer spoke for ${known}, now claims ${hb.node}`)
      // A node id belongs to one peer; another takes it over only as a newer incarnation of the
      // node (a restart that lost its identity key). A newer incarnation also wins at membership.
      const owner = this.nodePeer.get(hb.node)
      if (owner && owner.peer !== from && hb.incarnation <= owner.incarnation) return this.reject(peer, from, kind, `node ${hb.node} belongs to peer ${owner.peer}`)
      if (owner && owner.peer !== from) this.peerNode.delete(owner.peer)
      this.peerNode.set(from, hb.node)
      this.nodePeer.set(hb.node, { peer: from, incarnation: Math.max(hb.incarnation, owner?.peer === from ? owner.incarnation : 0) })
      if (!this.relay(hb)) {
        // Taken here, not forwarded: every connected peer got it straight from its sender.
        try { this.emit('heartbeat', hb) } catch (err) { this.opts.logger.error({ err: String(err) }, 'heartbeat handler failed') }
        return TopicValidatorResult.Ignore
      }
    } else {
      const m = r.value as ConsensusMsg
      if (m.from === this.opts.node) return this.reject(peer, from, kind, `message claims to come from this node (${m.from})`)
      const owner = this.nodePeer.get(m.from)
      // Control messages only from a node whose heartbeats we know, signed by that node's peer.
      // An unknown sender is ignored (not penalised): its first heartbeat may simply be late.
      if (owner === undefined) return this.ignore(from, kind, `sender ${m.from} has not sent a heartbeat yet`)
      if (owner.peer !== from) return this.reject(peer, from, kind, `message from ${m.from} signed by another peer than ${m.from}'s`)
    }
    this.decoded.set(msg.data, r.value)
    return TopicValidatorResult.Accept
  }

  /**
   * Whether gossipsub should forward this heartbeat: only when it says something new (a node,
   * incarnation or content revision not relayed before), so discovery and state changes still reach
   * a node through others when its own link is cut. A routine beat (only seq, load, the lease)
   * already reached every connected peer in one hop (floodPublish); forwarding it too was most of
   * an idle mesh's frames. A node heard only through others goes quiet and, unreachable, is
   * suspected: liveness is per link, as the simulator models it.
   */
  private relay (hb: Heartbeat): boolean {
    if (hb.rev === undefined) return true // a sender without revisions: every beat may be news
    const last = this.relayed.get(hb.node)
    if (last?.incarnation === hb.incarnation && last.rev === hb.rev) return false
    this.relayed.set(hb.node, { incarnation: hb.incarnation, rev: hb.rev })
    return true
  }

  private ignore (from: string, topic: string, reason: string): TopicValidatorResult {
    this.opts.logger.debug({ from, topic, reason }, 'ignored a gossip message')
    return TopicValidatorResult.Ignore
  }

  private reject (peer: PeerId, from: string, topic: string, reason: string): TopicValidatorResult {
    this.opts.logger.warn({ peer: peer.toString(), from, topic, reason }, 'dropped a gossip message')
    return TopicValidatorResult.Reject
  }

  /** Publish; returns how many peers it was sent to (publish itself never says whether anyone got it). */
  async publishHeartbeat (hb: Heartbeat): Promise<number> {
    return await this.publish(this.topics.heartbeat, encode(this.opts.cluster, hb))
  }

  async publishControl (msg: ConsensusMsg): Promise<number> {
    return await this.publish(this.topics.control, encode(this.opts.cluster, msg))
  }

  private async publish (topic: string, data: Uint8Array): Promise<number> {
    try {
      const r = await this.node.services.pubsub.publish(topic, data)
      return r.recipients.length
    } catch (err) {
      this.opts.logger.debug({ err, topic }, 'publish failed')
      return 0
    }
  }

  /**
   * Ping a connected peer whose heartbeats went quiet (SWIM's probe, instead of pinging every peer
   * every second). No answer within the ping timeout: its connection is closed, which makes it
   * suspect and starts a redial (refused → dead). Returns whether it answered.
   */
  async probe (peer: string): Promise<boolean> {
    const conn = this.node.getConnections().find(c => c.remotePeer.toString() === peer && c.status === 'open')
    if (!conn) return false
    const timeoutMs = this.tuning.pingTimeoutMs
    try {
      await this.node.services.ping.ping(conn.remotePeer, { signal: AbortSignal.timeout(timeoutMs) })
      return true
    } catch (err) {
      this.opts.logger.info({ peer, err: String((err as Error)?.message ?? err) }, `a quiet peer did not answer a ping within ${timeoutMs} ms; closing its connection`)
      await this.node.hangUp(conn.remotePeer).catch(() => {})
      return false
    }
  }

  isConnected (peer: string): boolean {
    return this.node.getConnections().some(c => c.remotePeer.toString() === peer && c.status === 'open')
  }

  connectedPeers (): string[] {
    return [...new Set(this.node.getConnections().filter(c => c.status === 'open').map(c => c.remotePeer.toString()))]
  }

  /**
   * Dial an address (a multiaddr, or host:port). `refused` means the host answered with a reset:
   * nothing listens there, so the daemon is gone — a far stronger signal than a timeout.
   */
  async dial (addr: string, opts: { diagnose?: boolean } = {}): Promise<ProbeResult> {
    const existing = this.dialing.get(addr)
    if (existing) return await existing
    const p = this.doDial(addr, opts.diagnose ?? false).finally(() => this.dialing.delete(addr))
    this.dialing.set(addr, p)
    return await p
  }

  /** `diagnose`: for peers never heard from (bootstrap), explain a failed handshake. */
  private async doDial (addr: string, diagnose: boolean): Promise<ProbeResult> {
    const ma = multiaddr(toMultiaddr(addr))
    try {
      await this.node.dial(ma, { signal: AbortSignal.timeout(this.tuning.dialTimeoutMs) })
      return 'connected'
    } catch (err) {
      if (hasCode(err, 'ECONNREFUSED')) return 'refused'
      // TCP reaches the peer but libp2p cannot: with a private network, the usual cause is a
      // different pre-shared key (libp2p only reports a generic failure or a timeout).
      const parts = ma.getComponents()
      const ip = parts.find(p => p.name === 'ip4' || p.name === 'ip6')?.value
      const port = Number(parts.find(p => p.name === 'tcp')?.value)
      if (diagnose && ip && port && await tcpReachable(ip, port, 500)) this.hintKeyMismatch(addr, String((err as Error)?.message ?? err))
      return 'unreachable'
    }
  }

  private readonly hinted = new Map<string, number>()
  private hintKeyMismatch (addr: string, err: string): void {
    const last = this.hinted.get(addr) ?? -Infinity
    if (Date.now() - last < 30_000) return
    this.hinted.set(addr, Date.now())
    this.opts.logger.warn({ addr, err }, 'the peer answers on TCP but the libp2p handshake failed: pre-shared key mismatch? (nodes must share a key: psk_file, or one of psk_accept_files during a rollover)')
  }
}

/** `host:port` → multiaddr; multiaddrs pass through. */
export function toMultiaddr (addr: string): string {
  if (addr.startsWith('/')) return addr
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(addr)
  if (!m) throw new Error(`bad peer address "${addr}": use host:port or a multiaddr`)
  return `/${m[1]!.includes(':') ? 'ip6' : 'ip4'}/${m[1]}/tcp/${m[2]}`
}

function hasCode (err: unknown, code: string, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 5) return false
  const e = err as { code?: unknown, cause?: unknown, errors?: unknown[] }
  if (e.code === code) return true
  if (typeof (err as Error).message === 'string' && (err as Error).message.includes(code)) return true
  if (Array.isArray(e.errors) && e.errors.some(x => hasCode(x, code, depth + 1))) return true
  return hasCode(e.cause, code, depth + 1)
}

/** Whether a plain TCP connection to host:port opens within `timeoutMs`. */
function tcpReachable (host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise(resolve => {
    const sock = connect({ host, port, timeout: timeoutMs })
    const done = (ok: boolean) => { sock.destroy(); resolve(ok) }
    sock.once('connect', () => done(true))
    sock.once('timeout', () => done(false))
    sock.once('error', () => done(false))
  })
}
