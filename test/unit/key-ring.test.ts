// Key rotation without downtime: nodes that hold a key the other sends with connect, whichever is
// their primary; a node without any shared key never gets in; the protocol is @libp2p/pnet's.
import '../../src/polyfill.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { preSharedKey } from '@libp2p/pnet'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { generatePsk } from '../../src/mesh/keys.js'
import { createMeshNode } from '../../src/mesh/libp2p.js'

const key = () => crypto.getRandomValues(new Uint8Array(32))
const nodes: Libp2p[] = []
afterEach(async () => { await Promise.all(nodes.splice(0).map(n => n.stop())) })

async function node (primary: Uint8Array, accepted: Uint8Array[] = []): Promise<Libp2p> {
  const n = await createMeshNode({ ip: '127.0.0.1', port: 0, psk: primary, acceptedPsks: accepted, privateKey: await generateKeyPair('Ed25519'), topics: ['/t'], tuning: { dialTimeoutMs: 1_500 } })
  await n.start()
  nodes.push(n)
  return n
}

async function connects (a: Libp2p, b: Libp2p): Promise<boolean> {
  try {
    // A dial completes only after the Noise handshake and muxer negotiation, which carry data both
    // ways through the protector: keys that do not match fail here.
    const conn = await a.dial(multiaddr(b.getMultiaddrs()[0]!.toString()), { signal: AbortSignal.timeout(3_000) })
    return conn.status === 'open' && conn.remotePeer.equals(b.peerId)
  } catch {
    return false
  }
}

describe('key ring (pre-shared key rotation)', () => {
  it('nodes with the same single key connect', async () => {
    const k = key()
    expect(await connects(await node(k), await node(k))).toBe(true)
  })

  it('during a rollover, every pair that holds a key the other sends with connects, both ways', async () => {
    const old = key()
    const next = key()
    const stillOld = await node(old, [next]) // step 1: accepts the next key, sends with the old
    const switched = await node(next, [old]) // step 2: sends with the next key, still accepts the old
    const done = await node(next) // step 3: the old key retired
    expect(await connects(stillOld, switched)).toBe(true)
    expect(await connects(switched, stillOld)).toBe(true)
    expect(await connects(switched, done)).toBe(true)
    expect(await connects(done, switched)).toBe(true)
    // Steps 1 and 3 must never overlap: a node still sending the old key cannot reach one that
    // retired it. Hence step 3 starts only once every node has done step 2 (SECURITY.md).
    expect(await connects(stillOld, done)).toBe(false)
  })

  it('a node without a shared key never connects (either direction)', async () => {
    const a = await node(key())
    const stranger = await node(key())
    expect(await connects(a, stranger)).toBe(false)
    expect(await connects(stranger, a)).toBe(false)
  })

  it('speaks @libp2p/pnet: a plain pnet node with the same key connects', async () => {
    const k = key()
    const ours = await node(k)
    const swarm = new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${Buffer.from(k).toString('hex')}\n`)
    const theirs = await createLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionProtector: preSharedKey({ psk: swarm }),
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true }) }
    })
    await theirs.start()
    nodes.push(theirs)
    expect(await connects(ours, theirs)).toBe(true)
    expect(await connects(theirs, ours)).toBe(true)
  })

  it('wakame keygen writes a key in the swarm-key format pnet reads', () => {
    expect(generatePsk()).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
  })
})
