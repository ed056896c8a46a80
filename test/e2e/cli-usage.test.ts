// A bad command line is bad input: exit 2 with the reason, before anything is asked of a node.
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { BUNDLE, ROOT } from '../helpers/cluster.js'

// Nothing listens there: a command that got past parsing would fail with exit 1 instead.
const run = (...args: string[]) => spawnSync(process.execPath, [BUNDLE, '--node', 'http://127.0.0.1:9', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 })

describe('command line errors', () => {
  for (const args of [['scale', 'www', 'abc'], ['scale', 'www', '-1'], ['events', '--limit', '-1'], ['no-such-command'], ['scale', 'www', '2', '--timeout', '-5'], ['migrate_service']]) {
    it(`wakame ${args.join(' ')}: exit 2, says why`, () => {
      const r = run(...args)
      expect(r.status, r.stdout + r.stderr).toBe(2)
      expect(r.stderr).toMatch(/^error: .*(invalid|unknown command|missing required argument)/m)
    })
  }

  it('a --node that is not a URL: exit 2, says what one looks like', () => {
    const r = run('--node', 'notaurl', 'status')
    expect(r.status, r.stdout + r.stderr).toBe(2)
    expect(r.stderr).toContain('"notaurl" is not a node URL; give one like http://')
  })

  it('an empty --node: exit 2, says it names no node', () => {
    const r = run('--node', '', 'status')
    expect(r.status, r.stdout + r.stderr).toBe(2)
    expect(r.stderr).toContain('names no node; give one like http://')
  })

  it('a port fetch refuses: exit 1, says so instead of "bad port"', () => {
    const r = run('--node', 'http://127.0.0.1:1', 'status')
    expect(r.status, r.stdout + r.stderr).toBe(1)
    expect(r.stderr).toContain('fetch refuses this port')
  })

  it('--version and help exit 0', () => {
    expect(run('--version').status).toBe(0)
    const h = run('help', 'scale')
    expect(h.status).toBe(0)
    expect(h.stdout).toContain('Usage: wakame scale')
  })
})
