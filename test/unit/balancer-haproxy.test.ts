// The HAProxy renderer: golden files for zero, one, many members and IPv6; stable under shuffled
// input; an empty pool is a backend that answers 503 (never a missing or invalid one); and every
// case passes `haproxy -c` when HAProxy is installed.
import { describe, expect, it } from 'vitest'
import { findProgram } from '../../src/balancers/exec.js'
import { renderHaproxy } from '../../src/balancers/haproxy/render.js'
import { parseServersState, parseShowProc } from '../../src/balancers/haproxy/master.js'
import { buildModel, BalancerInputError, type RenderInput } from '../../src/balancers/model.js'
import { renderBalancerTemplate } from '../../src/balancers/template.js'
import { CASES, ep, golden, realCheck, shuffledInput } from './balancer-fixtures.js'

const render = (input: RenderInput) => renderHaproxy(buildModel(input))
const installed = findProgram(['haproxy']) !== undefined

describe('renderHaproxy', () => {
  for (const [name, input] of Object.entries(CASES)) {
    it(`${name}: golden`, () => golden('haproxy', `${name}.cfg`, render(input)))
  }

  it('gives byte-identical output for shuffled input', () => {
    for (const input of Object.values(CASES)) {
      const reference = render(input)
      for (let seed = 1; seed <= 30; seed++) expect(render(shuffledInput(input, seed)), `seed=${seed}`).toBe(reference)
    }
  })

  it('an empty pool is a backend without servers that answers 503, and a route without "/" falls to a 404', () => {
    const text = render({ ...CASES['zero-members']!, routes: [{ path: '/api', service: 'app' }] })
    expect(text).toContain('backend app\n    balance roundrobin\n    # HAProxy answers 503 itself')
    expect(text).not.toMatch(/^\s+server /m)
    expect(text).toContain('default_backend wakame_no_route')
  })

  it('refuses addresses and ids that are not what they claim to be (the view comes from gossip)', () => {
    expect(() => render({ ...CASES['one-member']!, view: { app: [ep('app-1', '127.0.0.3\n    server evil 1.2.3.4', 8081)] } })).toThrow(BalancerInputError)
    expect(() => render({ ...CASES['one-member']!, view: { app: [ep('app 1', '127.0.0.3', 8081)] } })).toThrow(BalancerInputError)
    expect(() => render({ ...CASES['one-member']!, view: { app: [ep('app-1', '127.0.0.3', 70_000)] } })).toThrow(BalancerInputError)
  })

  it.skipIf(!installed)('every golden case passes haproxy -c', async () => {
    for (const [name, input] of Object.entries(CASES)) {
      const r = await realCheck(['haproxy'], f => ['-c', '-q', '-f', f], dir => render({ ...input, dir }))
      expect(r?.ok, `${name}: ${r?.output}`).toBe(true)
    }
  })

  it('a user template sees the model and escapes values as config tokens', () => {
    const tpl = 'frontend f\n    bind <%= it.listen.address %>\n<% for (const p of it.pools) { %>backend <%= p.name %>\n<% for (const m of p.members) { %>    server <%= m.id %> <%= m.address %>\n<% } %><% } %>'
    const text = renderBalancerTemplate('mine.cfg', tpl, buildModel(CASES['one-member']!))
    expect(text).toBe('frontend f\n    bind 127.0.0.2:8080\nbackend app\n    server app-1 127.0.0.3:8081\nbackend www\n')
    expect(() => renderBalancerTemplate('mine.cfg', '<%= it.instance + " x" %>', buildModel(CASES['one-member']!))).toThrow(/one token/)
  })
})

describe('master CLI answers', () => {
  it('parses show proc: reload and failure counters, current workers', () => {
    const text = '#<PID>          <type>          <reloads>       <uptime>        <version>      \n9371            master          3 [failed: 1]   0d00h10m26s     2.6.12\n# workers\n23459           worker          0               0d00h00m00s     2.6.12\n# old workers\n23001           worker          1               0d00h00m05s     2.6.12\n# programs\n\n'
    expect(parseShowProc(text)).toEqual({ reloads: 3, failed: 1, workers: [23459] })
  })

  it('parses show servers state', () => {
    const text = '1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n2 www 1 www-1 127.0.0.1 2 0 1 1 0 1 0 0 0 0 0 0 - 18081 - 0 0 - - 0\n2 www 2 www-2 ::1 0 1 3 3 0 1 0 0 0 0 0 0 - 18082 - 0 0 - - 0\n\n'
    expect(parseServersState(text)).toEqual([
      { backend: 'www', name: 'www-1', addr: '127.0.0.1', port: 18081, admin: 0 },
      { backend: 'www', name: 'www-2', addr: '::1', port: 18082, admin: 1 }
    ])
  })
})
