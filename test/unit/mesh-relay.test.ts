// Heartbeat relaying, on three real meshes in a line (A–B–C, no A–C link): a heartbeat that says
// something new (a new node, incarnation or content revision) is forwarded, so A learns of C and of
// C's changes through B; a routine beat (only seq and load changed) is not, so A hears it only
// over a link of its own.
import '../../src/polyfill.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { afterEach, describe, expect, it } from 'vitest'
import type { Heartbeat } from '../../src/core/types.js'
import { Mesh } from '../../src/mesh/mesh.js'
import { silentLogger } from '../../src/util/log.js'
import { freePort } from '../helpers/ports.js'
import { waitUntil } from '../helpers/wait.js'

const meshes: Mesh[] = []
afterEach(async () => { await Promise.all(meshes.splice(0).map(m => m.stop())) })

async function mesh (node: string, psk: Uint8Array): Promise<{ m: Mesh, got: Heartbeat[] }> {
  const m = new Mesh({ cluster: 'relay', node, ip: '127.0.0.1', port: await freePort(), psk, privateKey: await generateKeyPair('Ed25519'), logger: silentLogger() })
  await m.start()
  meshes.push(m)
  const got: Heartbeat[] = []
  m.on('heartbeat', hb => got.push(hb))
  return { m, got }
}

const beat = (m: Mesh, node: string, seq: number, rev: number): Heartbeat => ({
  node, peer: m.peerId, incarnation: 1, seq, rev, ip: '127.0.0.1', mesh: m.address, api: 'http://127.0.0.1:1', load1: 0,
  term: 0, leader: null, accepted: null, committed: null, joining: true, bootstrapExpect: 0, instances: {}
})

describe('heartbeat relaying', () => {
  it('forwards news (first heartbeat, new revision), not routine beats', async () => {
    const psk = crypto.getRandomValues(new Uint8Array(32))
    const a = await mesh('a', psk)
    const b = await mesh('b', psk)
    const c = await mesh('c', psk)
    expect(await a.m.dial(b.m.address)).toBe('connected')
    expect(await c.m.dial(b.m.address)).toBe('connected')
    expect(a.m.isConnected(c.m.peerId)).toBe(false)

    let seq = 0
    const publish = async (rev: number) => { await c.m.publishHeartbeat(beat(c.m, 'c', ++seq, rev)) }
    const seqs = (got: Heartbeat[]) => got.filter(h => h.node === 'c').map(h => h.seq)
    // Gossipsub needs a moment after connecting to exchange subscriptions and graft its mesh: each
    // try is a new revision (news), until one reaches A through B.
    let rev = 0
    await waitUntil('a heartbeat of C relayed to A through B', async () => { await publish(++rev); return seqs(a.got).length > 0 }, 10_000)
    const news = seq

    // Routine beats (same revision): B hears them all, A none.
    for (let k = 0; k < 5; k++) await publish(rev)
    await waitUntil('B hears C\'s routine beats', () => seqs(b.got).includes(news + 5))
    // The next revision is news again: relayed.
    await publish(rev + 1)
    await waitUntil('C\'s next revision relayed to A', () => seqs(a.got).includes(news + 6))
    expect(seqs(a.got).filter(s => s > news && s <= news + 5)).toEqual([])
    expect(seqs(b.got)).toEqual(expect.arrayContaining([news + 1, news + 2, news + 3, news + 4, news + 5, news + 6]))
  }, 30_000)
})
