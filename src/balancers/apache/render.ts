// Apache (mod_proxy_balancer) config from the balancer model. Pure; same model and options, same bytes.
// An empty pool gets no `<Proxy balancer://...>` section: its paths are excluded from proxying and
// answered 503 by mod_alias, so a route without ONLINE instances is a fixed 503.
// mod_proxy translates before mod_alias, so a longer route still proxies while a shorter one is a 503.
import { BalancerInputError, CONFIG_HEADER, HEALTH_PATH, pathRegex, type BalancerModel, type ModelRoute, type Pool } from '../model.js'

export interface ApacheOptions {
  /** Where mod_proxy.so and friends are (Debian: /usr/lib/apache2/modules). */
  modulesDir: string
  /** Set when the server starts as root: the children switch to this user and group. */
  runAs?: { user: string, group: string }
}

export const APACHE_MODULES = [
  'mpm_event', 'authz_core', 'alias', 'headers', 'proxy', 'proxy_http', 'proxy_balancer', 'slotmem_shm', 'lbmethod_byrequests'
] as const

const SAFE_PATH = /^\/[A-Za-z0-9._/@+-]*$/

function quotedPath (what: string, p: string): string {
  if (!SAFE_PATH.test(p)) throw new BalancerInputError(`${what} "${p}": an apache balancer needs a path of letters, digits and ._/@+- only`)
  return `"${p}"`
}

/** Anything but the health path: mod_alias redirects run before its aliases, so they must not catch it. */
const NOT_HEALTH = `(?!${HEALTH_PATH.replace(/[.]/g, '\\.')}$)`

function proxyLines (route: ModelRoute, pool: Pool | undefined): string[] {
  const re = route.path === '/' ? '^(/.*)$' : `^${route.path.replace(/[.]/g, '\\.')}(/.*)?$`
  if (!pool || pool.members.length === 0) {
    return [`ProxyPassMatch "${re}" "!"`]
  }
  const target = route.path === '/' ? '$1' : route.stripPrefix ? '$1' : `${route.path}$1`
  return [`ProxyPassMatch "${re}" "balancer://${pool.name}${target}"`]
}

export function renderApache (model: BalancerModel, opts: ApacheOptions): string {
  const pools = new Map(model.pools.map(p => [p.name, p]))
  const out = [
    `# Apache config of ${model.instance}, rendered by wakame from the cluster's membership: do not edit,`,
    '# the next change replaces it.',
    `# config ${model.configId}`,
    `ServerRoot ${quotedPath('instance directory', model.dir)}`,
    'DefaultRuntimeDir "run"',
    'PidFile "run/apache2.pid"',
    'ErrorLog "/dev/stderr"',
    'LogLevel warn'
  ]
  for (const m of APACHE_MODULES) out.push(`LoadModule ${m}_module ${quotedPath('modules directory', `${opts.modulesDir}/mod_${m}.so`)}`)
  if (opts.runAs) out.push(`User ${opts.runAs.user}`, `Group ${opts.runAs.group}`)
  out.push(
    `ServerName ${model.instance}`,
    'ServerTokens Prod',
    `Listen ${model.listen.address}`,
    'KeepAlive On',
    'KeepAliveTimeout 10',
    'Timeout 30',
    'ProxyRequests Off',
    'ProxyPreserveHost On',
    '<Directory />',
    '    AllowOverride None',
    '    Require all denied',
    '</Directory>',
    '',
    // Answered without a file (children started as root run as nobody and cannot read the instance
    // directory): 204 is a 2xx, which is all the health check needs.
    `ProxyPass "${HEALTH_PATH}" "!"`,
    `RedirectMatch 204 "^${HEALTH_PATH}$"`,
    `<Location "${HEALTH_PATH}">`,
    `    Header always set ${CONFIG_HEADER} "${model.configId}"`,
    '</Location>'
  )
  for (const pool of model.pools) {
    if (pool.members.length === 0) continue
    out.push('', `<Proxy "balancer://${pool.name}">`)
    // retry=1: a member refused once is tried again after 1 s, not the default 60 s (a lone member
    // would make its route 503 for a minute). ttl=4: idle connections close before Node's 5 s would.
    for (const m of pool.members) out.push(`    BalancerMember "http://${m.address}" route=${m.id} retry=1 ttl=4`)
    out.push('    ProxySet lbmethod=byrequests', '</Proxy>')
  }
  out.push('')
  for (const r of model.routes) out.push(...proxyLines(r, pools.get(r.pool)))
  for (const r of model.routes) {
    const pool = pools.get(r.pool)
    if (!pool || pool.members.length === 0) out.push(`RedirectMatch 503 "^${NOT_HEALTH}${pathRegex(r.path).slice(1)}"`)
  }
  if (!model.routes.some(r => r.path === '/')) out.push(`RedirectMatch 404 "^${NOT_HEALTH}/"`)
  return out.join('\n') + '\n'
}
