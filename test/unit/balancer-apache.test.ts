// The Apache (mod_proxy_balancer) renderer: golden files for zero, one, many members and IPv6;
// stable under shuffled input; an empty pool has no balancer section and its paths answer 503;
// every case passes `apache2 -t` when Apache is installed.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { apacheOptions } from '../../src/balancers/apache/adapter.js'
import { renderApache, type ApacheOptions } from '../../src/balancers/apache/render.js'
import { findProgram } from '../../src/balancers/exec.js'
import { BalancerInputError, buildModel, type RenderInput } from '../../src/balancers/model.js'
import { CASES, golden, realCheck, shuffledInput } from './balancer-fixtures.js'

const opts: ApacheOptions = { modulesDir: '/usr/lib/apache2/modules' }
const render = (input: RenderInput, o = opts) => renderApache(buildModel(input), o)
const installed = findProgram(['apache2', 'httpd']) !== undefined

describe('renderApache', () => {
  for (const [name, input] of Object.entries(CASES)) {
    it(`${name}: golden`, () => golden('apache', `${name}.conf`, render(input)))
  }

  it('gives byte-identical output for shuffled input', () => {
    for (const input of Object.values(CASES)) {
      const reference = render(input)
      for (let seed = 1; seed <= 30; seed++) expect(render(shuffledInput(input, seed)), `seed=${seed}`).toBe(reference)
    }
  })

  it('an empty pool has no balancer; its paths are kept from the proxy and answered 503, never the health path', () => {
    const text = render(CASES['zero-members']!)
    expect(text).not.toContain('<Proxy')
    expect(text).toContain('ProxyPassMatch "^/api(/.*)?$" "!"')
    expect(text).toContain('RedirectMatch 503 "^(?!/_wakame/health$)/api(/|$)"')
    expect(text).toContain('RedirectMatch 503 "^(?!/_wakame/health$)/"')
  })

  it('names the user and group for children when started as root', () => {
    expect(render(CASES['one-member']!, { ...opts, runAs: { user: 'nobody', group: 'nogroup' } })).toContain('User nobody\nGroup nogroup\n')
  })

  it('refuses an instance directory that cannot be quoted safely', () => {
    expect(() => render({ ...CASES['one-member']!, dir: '/srv/my "lb"' })).toThrow(BalancerInputError)
  })

  it.skipIf(!installed)('every golden case passes apache2 -t', async () => {
    for (const [name, input] of Object.entries(CASES)) {
      const r = await realCheck(['apache2', 'httpd'], (f, dir) => ['-t', '-d', dir, '-f', f], dir => render({ ...input, dir }, apacheOptions()), dir => mkdirSync(join(dir, 'run')))
      expect(r?.ok, `${name}: ${r?.output}`).toBe(true)
    }
  })
})
