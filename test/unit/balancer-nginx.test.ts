// The nginx renderer: golden files for zero, one, many members and IPv6; stable under shuffled
// input; an empty pool has no `upstream` (nginx -t refuses an empty one: case 01) and its locations
// answer 503; every case passes `nginx -t` when nginx is installed.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { findProgram } from '../../src/balancers/exec.js'
import { buildModel, type RenderInput } from '../../src/balancers/model.js'
import { renderNginx } from '../../src/balancers/nginx/render.js'
import { CASES, golden, realCheck, shuffledInput } from './balancer-fixtures.js'

const render = (input: RenderInput) => renderNginx(buildModel(input))
const installed = findProgram(['nginx']) !== undefined

describe('renderNginx', () => {
  for (const [name, input] of Object.entries(CASES)) {
    it(`${name}: golden`, () => golden('nginx', `${name}.conf`, render(input)))
  }

  it('gives byte-identical output for shuffled input', () => {
    for (const input of Object.values(CASES)) {
      const reference = render(input)
      for (let seed = 1; seed <= 30; seed++) expect(render(shuffledInput(input, seed)), `seed=${seed}`).toBe(reference)
    }
  })

  it('an empty pool renders no upstream; its locations return 503; without a "/" route the rest is 404', () => {
    const text = render({ ...CASES['zero-members']!, routes: [{ path: '/api', service: 'app' }] })
    expect(text).not.toMatch(/^\s*upstream /m)
    expect(text).toContain('location = /api { return 503 "no ONLINE instance of app\\n"; }')
    expect(text).toContain('location / { return 404 "no route\\n"; }')
  })

  it('matches /api and /api/x but not /apix (an exact and a directory location)', () => {
    const text = render(CASES['one-member']!)
    expect(text).toContain('location = /api { proxy_pass http://app; }')
    expect(text).toContain('location /api/ { proxy_pass http://app; }')
    expect(text).not.toMatch(/location \/api \{/)
  })

  it.skipIf(!installed)('every golden case passes nginx -t', async () => {
    for (const [name, input] of Object.entries(CASES)) {
      const r = await realCheck(['nginx'], (f, dir) => ['-t', '-q', '-p', `${dir}/`, '-c', f, '-e', 'stderr', '-g', 'daemon off;'], dir => render({ ...input, dir }), dir => { for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'tmp', d), { recursive: true }) })
      expect(r?.ok, `${name}: ${r?.output}`).toBe(true)
    }
  })
})
