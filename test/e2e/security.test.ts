// The mesh refuses peers without the cluster's key; the API refuses changes without the token.
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generatePsk, generateToken } from '../../src/mesh/keys.js'
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

  it('a POST without the token, or with a wrong one, gets 401 and changes nothing', async () => {
    const before = await c.status()
    for (const auth of [undefined, `Bearer ${generateToken()}`, 'Basic abc']) {
      const res = await fetch(`${c.first}/v1/cluster/launch`, { method: 'POST', headers: auth ? { authorization: auth } : {} })
      expect(res.status).toBe(401)
      const res2 = await fetch(`${c.first}/v1/services/app/propagate`, { method: 'POST', headers: auth ? { authorization: auth } : {} })
      expect(res2.status).toBe(401)
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
