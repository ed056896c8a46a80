// The single executable (dist/wakame, `npm run build:sea`): what the AMI ships. It answers
// --version; two of them (one started as `wakameadm`, the name the AMI gives the admin CLI) form a
// mesh on loopback with a key and token the binary made itself, elect a leader and answer status;
// and a service whose spec says `node` runs on the binary's own Node (24). Skipped, saying so, when
// the binary is missing; in CI (which builds it first in .ci/run) a missing binary fails instead.
import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, openSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusReport } from '../../src/core/status.js'

const ROOT = resolve(import.meta.dirname, '../..')
const SEA = join(ROOT, 'dist/wakame')
const built = existsSync(SEA)
const NET = '127.0.40'
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }

interface Ran { code: number, stdout: string, stderr: string }

async function run (bin: string, args: string[], timeoutMs = 30_000): Promise<Ran> {
  return await new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, env: { ...process.env, WAKAME_NODE: '', WAKAME_TOKEN_FILE: '' } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** Polls `probe` until it returns a value, or fails after the deadline with the last problem. */
async function waitFor<T> (what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      const v = await probe()
      if (v !== undefined) return v
    } catch (err) { last = (err as Error).message }
    await new Promise(r => setTimeout(r, 200))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last: ${last})` : ''}`)
}

describe('the single executable', () => {
  if (!built) {
    if (process.env.CI) {
      it('is built', () => { expect.fail(`${SEA} is missing: .ci/run must run \`npm run build:sea\` before the tests`) })
    } else {
      const why = `${SEA} is missing: run \`npm run build:sea\` to test the single executable`
      console.warn(`skipped: ${why}`)
      it.skip(why, () => {})
    }
    return
  }

  let dir = ''
  let adm = ''
  const daemons: number[] = []

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wakame-sea-'))
    // The AMI installs the binary with a `wakameadm` symlink beside it; so does this test.
    adm = join(dir, 'wakameadm')
    symlinkSync(SEA, adm)
    const newest = Math.max(...['src', 'package.json'].map(p => statSync(join(ROOT, p)).mtimeMs))
    if (statSync(SEA).mtimeMs < newest) console.warn(`note: ${SEA} may be older than the sources; \`npm run build:sea\` rebuilds it`)
  })

  afterAll(async () => {
    // Each daemon leads its own process group (detached), with the services it started: kill the
    // groups, and wait until they are gone so that no later test meets a leftover on 127.0.40.x.
    for (const pid of daemons) { try { process.kill(-pid, 'SIGKILL') } catch {} }
    const alive = (pid: number) => { try { process.kill(-pid, 0); return true } catch { return false } }
    const deadline = Date.now() + 10_000
    while (daemons.some(alive) && Date.now() < deadline) await new Promise(r => setTimeout(r, 50))
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('answers --version, as wakame and as wakameadm', async () => {
    for (const bin of [SEA, adm]) {
      const r = await run(bin, ['--version'])
      expect(r, r.stderr).toMatchObject({ code: 0 })
      expect(r.stdout.trim()).toBe(pkg.version)
    }
    const help = await run(adm, ['--help'])
    expect(help.stdout).toMatch(/^Usage: wakameadm /)
  })

  it('forms a two-node mesh on loopback and answers status (one started as wakameadm)', async () => {
    // Secrets made by the binary itself, as an operator would on a workstation.
    const psk = join(dir, 'psk.key')
    const token = join(dir, 'admin.token')
    expect((await run(SEA, ['keygen', '--out', psk])).code).toBe(0)
    expect((await run(adm, ['token', '--out', token])).code).toBe(0)
    expect(statSync(psk).mode & 0o777).toBe(0o600)
    expect(statSync(token).mode & 0o777).toBe(0o600)

    // A one-service spec: `node` in its command means the Node inside the binary.
    writeFileSync(join(dir, 'hello.mjs'), [
      "import { createServer } from 'node:http'",
      'createServer((req, res) => {',
      "  res.setHeader('content-type', 'application/json')",
      '  res.end(JSON.stringify({ node: process.version, argv: process.argv.slice(2) }))',
      '}).listen(Number(process.env.PORT), process.env.WAKAME_BIND)'
    ].join('\n'))
    writeFileSync(join(dir, 'cluster.yaml'), [
      'cluster: { min_nodes: 2, max_nodes: 2 }',
      'services:',
      '  hello:',
      '    command: [node, hello.mjs, --greeting, hi]',
      '    port: 8090',
      '    health: { http: { path: /health } }',
      '    min: 1',
      '    max: 1'
    ].join('\n'))

    const start = (bin: string, host: number, peer: number) => {
      const cfg = join(dir, `node-${host}.yaml`)
      writeFileSync(cfg, [
        'cluster: sea',
        `node_id: sea-${host}`,
        `psk_file: ${psk}`,
        `admin_token_file: ${token}`,
        `bind: ${NET}.${host}`,
        `data_dir: ${join(dir, `data-${host}`)}`,
        `bootstrap: ["${NET}.${peer}:7610"]`,
        'bootstrap_expect: 2',
        'provider: local',
        // The leader never needs a VM here (min_nodes 2 are there); if it did, they would stay on 127.0.40.x.
        `local: { cluster_dir: ${join(dir, 'vms')}, net: ${NET}, first_host: 10 }`,
        `spec: ${join(dir, 'cluster.yaml')}`
      ].join('\n'))
      const log = openSync(join(dir, `node-${host}.log`), 'a')
      const child = spawn(bin, ['agent', '--config', cfg], {
        cwd: dir,
        detached: true,
        stdio: ['ignore', log, log],
        // If this test process dies, the daemons take themselves (their process group) down.
        env: { ...process.env, WAKAME_LOCAL_OWNER_PID: String(process.pid) }
      })
      closeSync(log)
      daemons.push(child.pid!)
      child.unref()
    }
    start(SEA, 2, 3)
    start(adm, 3, 2)

    const status = async (host: number): Promise<StatusReport> => {
      const r = await run(adm, ['--node', `http://${NET}.${host}:7600`, 'status', '--json'], 10_000)
      if (r.code !== 0) throw new Error(r.stderr.trim())
      return JSON.parse(r.stdout) as StatusReport
    }
    const formed = await waitFor('both nodes alive with one leader', async () => {
      const s = await status(3)
      const alive = s.nodes.filter(n => n.status === 'alive').map(n => n.id).sort()
      return s.leader !== null && alive.join() === 'sea-2,sea-3' ? s : undefined
    }, 60_000)
    expect(formed.nodes.filter(n => n.leader).map(n => n.id)).toEqual([formed.leader])
    // The other node agrees on the leader.
    const other = await waitFor('sea-2 to see the same leader', async () => {
      const s = await status(2)
      return s.leader === formed.leader ? s : undefined
    }, 15_000)
    expect(other.answeredBy).toBe('sea-2')

    const text = await run(adm, ['--node', `http://${NET}.2:7600`, 'status'])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain(`leader ${formed.leader}`)
    expect(text.stdout).toMatch(/sea-2\s+127\.0\.40\.2\s+alive/)
    expect(text.stdout).toMatch(/sea-3\s+127\.0\.40\.3\s+alive/)

    // launch_cluster through the symlink, with the token; the service runs on the binary's Node.
    const launched = await run(adm, ['--node', `http://${NET}.2:7600`, '--token-file', token, 'launch_cluster', '--timeout', '60'], 90_000)
    expect(launched.code, `${launched.stdout}\n${launched.stderr}`).toBe(0)
    const s = await status(2)
    const inst = s.services.find(x => x.name === 'hello')?.instances[0]
    expect(inst?.state).toBe('ONLINE')
    const res = await fetch(`http://${inst!.ip}:${inst!.port}/`)
    const body = await res.json() as { node: string, argv: string[] }
    expect(body.node).toMatch(/^v24\./)
    expect(body.argv).toEqual(['--greeting', 'hi'])

    // The key and the token never reach a log.
    const secrets = [readFileSync(psk, 'utf8').trim().split('\n').pop()!, readFileSync(token, 'utf8').trim()]
    for (const host of [2, 3]) {
      const log = readFileSync(join(dir, `node-${host}.log`), 'utf8')
      expect(log.length).toBeGreaterThan(0)
      for (const secret of secrets) expect(log.includes(secret), `a secret in node-${host}.log`).toBe(false)
    }
  })
})
