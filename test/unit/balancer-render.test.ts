// The builtin balancer renderer: golden files pin the exact bytes (the daemon reloads only on a byte
// change), and shuffled input must give the same bytes. UPDATE_GOLDEN=1 rewrites the files.
import { describe, expect, it } from 'vitest'
import { golden as goldenFile, shuffled } from './balancer-fixtures.js'
import { backendUrl, parseBuiltinConfig, renderBuiltinConfig, BuiltinConfigError, type BuiltinEndpoint, type BuiltinRouteSpec } from '../../src/balancers/builtin/render.js'

const golden = (name: string, text: string): void => { goldenFile('builtin', name, text) }

const ep = (id: string, ip: string, port: number, node = 'vm-1'): BuiltinEndpoint => ({ id, node, ip, port })

const routes: BuiltinRouteSpec[] = [
  { path: '/', service: 'www' },
  { path: '/api', service: 'app' },
  { path: '/api/admin', service: 'admin' }
]


describe('renderBuiltinConfig', () => {
  it('renders a route with zero members as an empty backend list', () => {
    golden('zero-members.json', renderBuiltinConfig(routes, { www: [], app: [] }))
  })

  it('renders one member', () => {
    golden('one-member.json', renderBuiltinConfig([{ path: '/', service: 'www' }], { www: [ep('www-1', '127.0.0.2', 8082)] }))
  })

  it('renders many members sorted by id, routes longest path first', () => {
    const view = {
      www: [ep('www-3', '127.0.0.4', 8082, 'vm-3'), ep('www-1', '127.0.0.2', 8082), ep('www-2', '127.0.0.3', 8082, 'vm-2')],
      app: [ep('app-10', '127.0.0.2', 8081), ep('app-2', '127.0.0.3', 8081, 'vm-2')],
      admin: [ep('admin-1', '127.0.0.5', 9000, 'vm-5')]
    }
    const text = renderBuiltinConfig(routes, view)
    golden('many-members.json', text)
    const parsed = parseBuiltinConfig(text)
    expect(parsed.routes.map(r => r.path)).toEqual(['/api/admin', '/api', '/'])
    expect(parsed.routes[2]!.backends.map(b => b.id)).toEqual(['www-1', 'www-2', 'www-3'])
  })

  it('brackets IPv6 addresses', () => {
    const text = renderBuiltinConfig([{ path: '/', service: 'www' }], { www: [ep('www-1', '::1', 8082), ep('www-2', 'fd00::2', 8082)] })
    golden('ipv6.json', text)
    expect(parseBuiltinConfig(text).routes[0]!.backends.map(b => b.url)).toEqual(['http://[::1]:8082', 'http://[fd00::2]:8082'])
  })

  it('gives byte-identical output for shuffled input', () => {
    const members = Array.from({ length: 12 }, (_, i) => ep(`www-${i + 1}`, `127.0.0.${i + 2}`, 8082, `vm-${i}`))
    const apps = Array.from({ length: 5 }, (_, i) => ep(`app-${i + 1}`, `127.0.0.${i + 2}`, 8081, `vm-${i}`))
    const reference = renderBuiltinConfig(routes, { www: members, app: apps, admin: [] })
    for (let seed = 1; seed <= 50; seed++) {
      const view = Object.fromEntries(shuffled(Object.entries({ www: members, app: apps, admin: [] }), seed)
        .map(([k, v]) => [k, shuffled(v, seed * 7)]))
      expect(renderBuiltinConfig(shuffled(routes, seed), view), `seed=${seed}`).toBe(reference)
    }
  })

  it('treats a service missing from the view as having no members', () => {
    expect(parseBuiltinConfig(renderBuiltinConfig([{ path: '/', service: 'www' }], {})).routes[0]!.backends).toEqual([])
  })
})

describe('parseBuiltinConfig', () => {
  it('rejects text that is not JSON, naming the source', () => {
    expect(() => parseBuiltinConfig('{', 'lb.json')).toThrow(/lb\.json: not valid JSON/)
  })

  it('rejects a bad shape with the field path', () => {
    const bad = JSON.stringify({ routes: [{ path: 'api', service: 'app', backends: [{ id: 'a', url: 'ftp://x:1' }] }] })
    let caught: unknown
    try { parseBuiltinConfig(bad) } catch (err) { caught = err }
    expect(caught).toBeInstanceOf(BuiltinConfigError)
    expect((caught as BuiltinConfigError).code).toBe('BALANCER_CONFIG_INVALID')
    expect(String(caught)).toMatch(/routes\.0\.path/)
    expect(String(caught)).toMatch(/routes\.0\.backends\.0\.url/)
  })

  it('rejects duplicate route paths and unknown fields', () => {
    const dup = { routes: [{ path: '/', service: 'a', backends: [] }, { path: '/', service: 'b', backends: [] }] }
    expect(() => parseBuiltinConfig(JSON.stringify(dup))).toThrow(/duplicate route path/)
    expect(() => parseBuiltinConfig(JSON.stringify({ routes: [], extra: 1 }))).toThrow(BuiltinConfigError)
  })
})

describe('backendUrl', () => {
  it('leaves IPv4 alone and does not double-bracket', () => {
    expect(backendUrl('127.0.0.3', 8081)).toBe('http://127.0.0.3:8081')
    expect(backendUrl('[::1]', 80)).toBe('http://[::1]:80')
  })
})
