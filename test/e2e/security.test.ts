// The mesh refuses peers without the cluster's key; the API refuses changes without the token.
import '../../src/polyfill.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { encode } from '../../src/mesh/codec.js'
import { generatePsk, generateToken, loadPsk } from '../../src/mesh/keys.js'
import { createMeshNode } from '../../src/mesh/libp2p.js'
import type { Heartbeat } from '../../src/core/types.js'
import { BUNDLE, startCluster, type TestCluster } from '../helpers/cluster.js'

let c: TestCluster
const children: ChildProcess[] = []

beforeAll(async () => { c = await startCluster({ net: '127.0.23' }) })
afterAll(async () => {
  for (const ch of children) ch.kill('SIGKILL')
  await c?.cleanup()
})

function agent (name: string, ip: string, psk: string | undefined, extra: string[] = []): { child: ChildProcess, output: () => string, exited: Promise<number | null> } {
  const dir = join(c.dir, name)
  mkdirSync(dir, { recursive: true })
  const args = [BUNDLE, 'agent', '--cluster', 'e2e', '--node-id', name, '--bind', ip, '--data-dir', join(dir, 'data'),
    '--admin-token-file', c.tokenFile, '--bootstrap', `${c.vm('vm-1').ip}:7610`, '--bootstrap-expect', '0', '--log-level', 'info', ...extra]
  if (psk !== undefined) args.push('--psk-file', psk)
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  child.stdout!.on('data', d => { out += String(d) })
  child.stderr!.on('data', d => { out += String(d) })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  return { child, output: () => out, exited }
}

describe('security', () => {
  it('a node with the wrong pre-shared key never joins, and says why', async () => {
    const wrong = join(c.dir, 'wrong.key')
    writeFileSync(wrong, generatePsk(), { mode: 0o600 })
    const intruder = agent('intruder', `${c.net}.200`, wrong)
    const deadline = Date.now() + 8_000
    while (Date.now() < deadline) {
      const s = await c.status()
      expect(s.nodes.map(n => n.id)).not.toContain('intruder')
      await new Promise(r => setTimeout(r, 250))
    }
    const own = await (await fetch(`http://${c.net}.200:7600/v1/status`)).json() as { leader: string | null, nodes: Array<{ id: string }> }
    expect(own.leader).toBeNull()
    expect(own.nodes.map(n => n.id)).toEqual(['intruder'])
    expect(intruder.output()).toContain('pre-shared key mismatch?')
    intruder.child.kill('SIGKILL')
  })

  it('a node without a key, with a malformed key, or with a key readable by others refuses to start', async () => {
    const none = agent('nokey', `${c.net}.201`, undefined)
    expect(await none.exited).not.toBe(0)
    expect(none.output()).toMatch(/psk_file/)
    const bad = join(c.dir, 'bad.key')
    writeFileSync(bad, 'not a key\n', { mode: 0o600 })
    const malformed = agent('badkey', `${c.net}.202`, bad)
    expect(await malformed.exited).not.toBe(0)
    expect(malformed.output()).toContain('malformed')
    const open = join(c.dir, 'open.key')
    writeFileSync(open, readFileSync(c.pskFile))
    chmodSync(open, 0o644)
    const readable = agent('openkey', `${c.net}.203`, open)
    expect(await readable.exited).not.toBe(0)
    expect(readable.output()).toContain('readable by others')
  })

  it('forged, oversized and malformed gossip is dropped and logged where it enters, not forwarded, and changes nothing', async () => {
    // An insider with the key (a compromised machine) tries to speak for others. Its messages are
    // signed by its own peer key (StrictSign): it can lie in a message, not about who signed it.
    const member = agent('member', `${c.net}.210`, c.pskFile)
    const joined = await c.waitFor('member to join', s => s.nodes.some(n => n.id === 'member' && n.status === 'alive'), 30_000)
    const vm1 = joined.nodes.find(n => n.id === 'vm-1')!
    const vm1Peer = vm1.mesh!.split('/p2p/')[1]!
    const topics = { hb: '/wakame/e2e/heartbeat/1', control: '/wakame/e2e/control/1' }
    const rogue = await createMeshNode({ ip: `${c.net}.220`, port: 7610, psk: loadPsk(c.pskFile), privateKey: await generateKeyPair('Ed25519'), topics: Object.values(topics) })
    try {
      await rogue.start()
      const pubsub = rogue.services.pubsub
      pubsub.subscribe(topics.hb)
      pubsub.subscribe(topics.control)
      await rogue.dial(multiaddr(vm1.mesh!))
      const me = rogue.peerId.toString()
      const deadline = Date.now() + 10_000
      while (!pubsub.getSubscribers(topics.control).some(p => p.toString() === vm1Peer) && Date.now() < deadline) await new Promise(r => setTimeout(r, 100))
      const hb: Heartbeat = { node: 'rogue', peer: me, incarnation: 1, seq: 1, ip: `${c.net}.220`, mesh: `/ip4/${c.net}.220/tcp/7610/p2p/${me}`, api: `http://${c.net}.220:7600`, load1: 0, term: 0, leader: null, accepted: null, committed: null, joining: true, bootstrapExpect: 0, instances: {} }
      const before = await c.status()
      const forgeries: Array<[string, Uint8Array, RegExp]> = [
        [topics.hb, encode('e2e', { ...hb, node: 'member' }), /node member belongs to peer/],
        [topics.hb, encode('e2e', { ...hb, node: 'vm-1' }), /claims to come from this node/],
        [topics.hb, encode('e2e', { ...hb, peer: vm1Peer }), /heartbeat claims peer/],
        [topics.control, encode('e2e', { type: 'vote-req', term: before.term + 100, from: 'member', preVote: false, last: null }), /signed by another peer/],
        [topics.hb, encode('e2e', { ...hb, api: 'x'.repeat(70_000) }), /exceeds 65536/],
        [topics.hb, new TextEncoder().encode('{"v":"1.0","cluster":"e2e","body":{"node":"__proto__"'), /not UTF-8 JSON/],
        [topics.hb, new TextEncoder().encode(JSON.stringify({ v: '2.0', cluster: 'e2e', body: hb })), /protocol 2\.0/],
        [topics.hb, encode('other', hb), /cluster "other"/]
      ]
      for (const [topic, data] of forgeries) await pubsub.publish(topic, data).catch(() => {})
      const log = () => readFileSync(join(c.vmDir('vm-1'), 'agent.log'), 'utf8')
      const until = Date.now() + 10_000
      while (Date.now() < until && !forgeries.every(([, , why]) => why.test(log().replaceAll('\\"', '"')))) await new Promise(r => setTimeout(r, 200))
      const dropped = log().split('\n').filter(l => l.includes('dropped a gossip message') && l.includes(me)).map(l => (JSON.parse(l) as { reason: string }).reason)
      for (const [, , why] of forgeries) expect(dropped.some(l => why.test(l)), `vm-1 logged a drop matching ${why}`).toBe(true)
      // Not forwarded: the member, one hop further, never saw any of them.
      expect(member.output()).not.toContain(me)
      // And nothing changed: same term, same leader, no node "rogue", the member still itself.
      const after = await c.status()
      expect(after.term).toBe(before.term)
      expect(after.leader).toBe(before.leader)
      expect(after.nodes.map(n => n.id).sort()).toEqual(['member', 'vm-1'])
      expect(after.nodes.find(n => n.id === 'member')!.status).toBe('alive')
    } finally {
      await rogue.stop()
      member.child.kill('SIGKILL')
    }
  })

  it('a POST without the token, or with a wrong one, gets 401 and changes nothing', async () => {
    const before = await c.status()
    for (const auth of [undefined, `Bearer ${generateToken()}`, 'Basic abc']) {
      const res = await fetch(`${c.first}/v1/cluster/launch`, { method: 'POST', headers: auth ? { authorization: auth } : {} })
      expect(res.status).toBe(401)
      const res2 = await fetch(`${c.first}/v1/services/app/propagate`, { method: 'POST', headers: auth ? { authorization: auth } : {} })
      expect(res2.status).toBe(401)
      // Missing and rejected tokens are told apart.
      expect(((await res2.json()) as { error: { message: string } }).error.message).toMatch(auth ? /not accepted/ : /send the admin token/)
    }
    const after = await c.status()
    expect(after.phase).toBe(before.phase)
    expect(after.committed).toEqual(before.committed)
    // The CLI without a token says what to do.
    const r = await c.cli('--token-file', '/nonexistent', 'launch_cluster')
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain('does not exist')
  })

  it('bad input gets a clear error and changes nothing', async () => {
    const before = await c.status()
    const tok = readFileSync(c.tokenFile, 'utf8').trim()
    const post = async (path: string, body?: unknown) => await fetch(`${c.first}${path}`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) })
    const spec = await post('/v1/cluster/launch', { spec: { text: 'services:\n  www:\n    command: [a]\n  www:\n    command: [b]\n', file: 'dup.yaml', dir: '/tmp' } })
    expect(spec.status).toBe(400)
    expect(JSON.stringify(await spec.json())).toContain('duplicate key \\"www\\"')
    expect((await post('/v1/services/NOT_A_NAME/propagate')).status).toBe(400)
    // Names of members every object has must not reach an inherited value (this froze a leader once).
    expect((await post('/v1/services/constructor/propagate')).status).toBe(400)
    expect((await post('/v1/services/constructor/scale', { count: 1 })).status).toBe(400)
    expect((await post('/v1/instances/www-1/migrate', { to: 'constructor' })).status).toBe(400)
    expect((await post('/v1/services/app/scale', { count: 'many' })).status).toBe(400)
    expect((await post('/v1/instances/x/migrate')).status).toBe(400)
    const after = await c.status()
    expect(after.committed).toEqual(before.committed)
  })
})
