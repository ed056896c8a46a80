// Inputs shared by the renderer tests of every balancer kind (golden files pin the exact bytes:
// the daemon reloads only when they change). UPDATE_GOLDEN=1 rewrites the golden files.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { findProgram, runCheck } from '../../src/balancers/exec.js'
import type { BalancerEndpoint, BalancerRoute, RenderInput } from '../../src/balancers/model.js'

export const ep = (id: string, ip: string, port: number, node = 'vm-1'): BalancerEndpoint => ({ id, node, ip, port })

const routes: BalancerRoute[] = [{ path: '/api', service: 'app' }, { path: '/', service: 'www' }]
const base = { listen: { host: '127.0.0.2', port: 8080 }, instance: 'lb-1', dir: '/srv/wakame/instances/lb-1' }

/** The four cases every kind is pinned on. */
export const CASES: Record<string, RenderInput> = {
  'zero-members': { ...base, routes, view: { app: [], www: [] } },
  'one-member': { ...base, routes, view: { app: [ep('app-1', '127.0.0.3', 8081, 'vm-2')], www: [] } },
  'many-members': {
    ...base,
    routes: [...routes, { path: '/api/admin/', service: 'admin', strip_prefix: true }],
    view: {
      www: [ep('www-3', '127.0.0.4', 8082, 'vm-3'), ep('www-1', '127.0.0.2', 8082), ep('www-2', '127.0.0.3', 8082, 'vm-2')],
      app: [ep('app-10', '127.0.0.2', 8081), ep('app-2', '127.0.0.3', 8081, 'vm-2')],
      admin: [ep('admin-1', '127.0.0.5', 9000, 'vm-5')]
    }
  },
  ipv6: {
    ...base,
    listen: { host: '::1', port: 8080 },
    routes,
    view: { www: [ep('www-1', '::1', 8082), ep('www-2', 'fd00::2', 8082, 'vm-2')], app: [ep('app-1', '[fd00::3]', 8081, 'vm-3')] }
  }
}

export function golden (kind: string, name: string, text: string): void {
  const path = fileURLToPath(new URL(`./golden/${kind}/${name}`, import.meta.url))
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(path, text)
  expect(text).toBe(readFileSync(path, 'utf8'))
}

/** Seeded Fisher–Yates, so a failing shuffle can be replayed. */
export function shuffled<T> (items: readonly T[], seed: number): T[] {
  const out = [...items]
  let s = seed >>> 0
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/** The same input with routes, services and members in another order. */
export function shuffledInput (input: RenderInput, seed: number): RenderInput {
  const view = Object.fromEntries(shuffled(Object.entries(input.view), seed).map(([k, v]) => [k, shuffled(v, seed * 7)]))
  return { ...input, routes: shuffled(input.routes, seed), view }
}

/** Check a config with the real server's checker, in a scratch instance directory; undefined when it is not installed. */
export async function realCheck (program: string[], argv: (file: string, dir: string) => string[], text: (dir: string) => string, setup?: (dir: string) => void): Promise<{ ok: boolean, output: string } | undefined> {
  const bin = findProgram(program)
  if (!bin) return undefined
  const dir = mkdtempSync(join(tmpdir(), 'wakame-check-'))
  setup?.(dir)
  const file = join(dir, 'candidate.conf')
  writeFileSync(file, text(dir))
  return await runCheck([bin, ...argv(file, dir)], 10_000)
}
