// Schema-driven fuzz of the admin API with schemathesis (from PyPI; .ci/run installs it) against a
// disposable one-node cluster: with the token, no 5xx and nothing that breaks the documented schema;
// without it, protected routes answer only 401 (the check is in schemathesis_hooks.py).
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, startCluster, type TestCluster } from '../helpers/cluster.js'

const run = promisify(execFile)
const SPEC = resolve(ROOT, 'test/fixtures/api/cluster.yaml')
const CHECKS = ['not_a_server_error', 'status_code_conformance', 'content_type_conformance', 'response_headers_conformance', 'response_schema_conformance', 'negative_data_rejection', 'unsupported_method', 'allow_header_conformance']
let c: TestCluster

beforeAll(async () => {
  await run('python3', ['-m', 'schemathesis.cli', '--version']).catch(() => { throw new Error('schemathesis is not installed: pip install "schemathesis==4.32.5" (.ci/run does)') })
  c = await startCluster({ net: '127.0.33', spec: SPEC })
})
afterAll(async () => { await c?.cleanup() })

async function schemathesis (checks: string[], headers: string[], env: Record<string, string> = {}): Promise<{ code: number, out: string }> {
  const args = ['run', `${c.first}/v1/openapi.json`, '--checks', checks.join(','), '--max-examples', '40', '--workers', '1', '--seed', '20261203',
    '--request-timeout', '30', '--no-color', ...headers.flatMap(h => ['--header', h])]
  try {
    const r = await run('python3', ['-m', 'schemathesis.cli', ...args], { env: { ...process.env, ...env, PYTHONPATH: resolve(ROOT, 'test/e2e'), SCHEMATHESIS_HOOKS: 'schemathesis_hooks' }, timeout: 400_000, maxBuffer: 64 << 20 })
    return { code: 0, out: r.stdout + r.stderr }
  } catch (e) {
    const x = e as { code?: number, stdout?: string, stderr?: string }
    return { code: typeof x.code === 'number' ? x.code : 1, out: `${x.stdout ?? ''}${x.stderr ?? ''}` }
  }
}

describe('API fuzz (schemathesis)', () => {
  it('with the token: no server error, every answer as documented', async () => {
    const token = readFileSync(c.tokenFile, 'utf8').trim()
    const r = await schemathesis(CHECKS, [`Authorization: Bearer ${token}`])
    if (r.code !== 0) console.log(r.out)
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/passed/i)
    // The cluster still answers after the fuzz.
    expect((await c.status()).leader).not.toBeNull()
  }, 420_000)

  it('without the token: protected routes answer only 401', async () => {
    const before = await c.status()
    const r = await schemathesis(['only_401_without_token', 'not_a_server_error', 'response_schema_conformance'], [], { WAKAME_FUZZ_NO_TOKEN: '1' })
    if (r.code !== 0) console.log(r.out)
    expect(r.code).toBe(0)
    const after = await c.status()
    expect(after.committed).toEqual(before.committed)
  }, 420_000)

  it('the 401 check is not vacuous: given the token, it reports the protected routes', async () => {
    const token = readFileSync(c.tokenFile, 'utf8').trim()
    const r = await schemathesis(['only_401_without_token'], [`Authorization: Bearer ${token}`], { WAKAME_FUZZ_NO_TOKEN: '1' })
    expect(r.code).not.toBe(0)
    expect(r.out).toMatch(/POST \/v1\/services\/\S+\/scale without the token answered [0-9]+, not 401/)
  }, 420_000)
})
