// The libp2p node: TCP (dialing from the node's own address), a pre-shared-key private network,
// Noise, yamux, identify, ping and gossipsub, tuned for a LAN cluster.
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { ping, type Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import type { PrivateKey } from '@libp2p/interface'
import { createLibp2p, type Libp2p } from 'libp2p'
import { MAX_CONTROL_BYTES } from './codec.js'
import { fastMessageId } from './fast-msg-id.js'
import { keyRingProtector } from './key-ring.js'

export interface MeshTuning {
  /**
   * The connection monitor pings every connection this often: a backstop only. A member whose
   * heartbeats go quiet is probed at once (Mesh.probe), so a hung peer is still noticed in ~2 s
   * without a ping per peer per second (those were ~40 % of an idle mesh's packets). @default 10000
   */
  pingIntervalMs: number
  /** A ping (probe or backstop) slower than this aborts the connection (the peer becomes suspect, not dead). @default 1000 */
  pingTimeoutMs: number
  /** Dials give up after this long. @default 2000 */
  dialTimeoutMs: number
  /** Gossipsub's own heartbeat (mesh upkeep). @default 700 */
  gossipHeartbeatMs: number
}

export const DEFAULT_MESH_TUNING: MeshTuning = {
  pingIntervalMs: 10_000,
  pingTimeoutMs: 1_000,
  dialTimeoutMs: 2_000,
  gossipHeartbeatMs: 700
}

export type WakameLibp2p = Libp2p<{ pubsub: GossipSub, identify: unknown, ping: Ping }>

export interface Libp2pOptions {
  ip: string
  port: number
  /** The pre-shared key this node sends with (32 bytes). */
  psk: Uint8Array
  /** More keys it accepts, during a key rollover. */
  acceptedPsks?: Uint8Array[]
  privateKey: PrivateKey
  topics: string[]
  tuning?: Partial<MeshTuning>
}

export async function createMeshNode (opts: Libp2pOptions): Promise<WakameLibp2p> {
  const t = { ...DEFAULT_MESH_TUNING, ...opts.tuning }
  const family = opts.ip.includes(':') ? 'ip6' : 'ip4'
  return await createLibp2p({
    privateKey: opts.privateKey,
    addresses: { listen: [`/${family}/${opts.ip}/tcp/${opts.port}`] },
    // Dial from our own address so traffic between VMs comes from each VM's IP (one link can be cut).
    transports: [tcp({ dialOpts: { localAddress: opts.ip } as Record<string, unknown> })],
    // Like @libp2p/pnet (same protocol), but holding several keys for rotation without downtime.
    connectionProtector: keyRingProtector({ primary: opts.psk, accepted: opts.acceptedPsks ?? [] }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { dialTimeout: t.dialTimeoutMs },
    connectionMonitor: {
      pingInterval: t.pingIntervalMs,
      pingTimeout: { minTimeout: t.pingTimeoutMs, maxTimeout: t.pingTimeoutMs }
    },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        floodPublish: true,
        // floodPublish already hands every message to every connected peer in one hop; the mesh
        // only repairs cut links (and routine heartbeats are not forwarded at all: Mesh.relay).
        // Its default (D 6, up to 12) meant each node received each message up to 8 more times
        // at N=10 (BENCHMARKS.md); 3 keeps a redundant path.
        D: 3, Dlo: 2, Dhi: 4, Dout: 1, Dscore: 2, Dlazy: 3,
        heartbeatInterval: t.gossipHeartbeatMs,
        globalSignaturePolicy: 'StrictSign',
        // Duplicates forwarded by mesh peers are dropped before their signature is checked again.
        fastMsgIdFn: fastMessageId,
        // No IDONTWANT: the publisher floods every peer at once on a LAN, so the notice rarely beats
        // the forward it would cancel; measured, it was ~13 % of the mesh's idle packets (BENCHMARKS.md).
        idontwantMinDataSize: Number.MAX_SAFE_INTEGER,
        allowedTopics: opts.topics,
        maxInboundDataLength: MAX_CONTROL_BYTES
      })
    }
  }) as unknown as WakameLibp2p
}
