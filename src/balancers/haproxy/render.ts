// HAProxy config from the balancer model. Pure; same model, same bytes.
// Every pool is a backend, even an empty one: HAProxy accepts a backend without servers, and keeping
// it lets the runtime API add a member later without a reload. An empty backend answers 503 itself
// (with our text via `http-error`), so a route whose service has no ONLINE instance is a fixed 503.
import { CONFIG_HEADER, HEALTH_PATH, type BalancerModel, type ModelRoute, type Pool } from '../model.js'

/** Backend that answers 404 when no route matches (there is no `/` route). */
export const NO_ROUTE_BACKEND = 'wakame_no_route'
export const FRONTEND = 'wakame'

/** The `server` line of a member, exactly as the runtime API's `add server` takes its arguments. */
export function serverArgs (m: { id: string, address: string }): string {
  return `${m.id} ${m.address}`
}

function acl (r: ModelRoute): string {
  return `{ path ${r.path} } || { path_beg ${r.path}/ }`
}

function backend (pool: Pool, routes: ModelRoute[]): string[] {
  const lines = [`backend ${pool.name}`, '    balance roundrobin']
  // Not an `nbsrv` rule: a process soft-stopping after a reload sees 0 servers and would 503 its last requests.
  lines.push('    # HAProxy answers 503 itself when no server is left; this gives it our text.')
  lines.push(`    http-error status 503 content-type text/plain string "no ONLINE instance of ${pool.service}"`)
  const strip = routes.find(r => r.pool === pool.name && r.stripPrefix && r.path !== '/')
  if (strip) lines.push(`    http-request replace-path ^${strip.path.replace(/\./g, '\\.')}/?(.*)$ /\\1`)
  for (const m of pool.members) lines.push(`    server ${serverArgs(m)}`)
  return lines
}

export function renderHaproxy (model: BalancerModel): string {
  const root = model.routes.find(r => r.path === '/')
  const out = [
    `# HAProxy config of ${model.instance}, rendered by wakame from the cluster's membership: do not edit,`,
    '# the next change replaces it. Membership changes reach the running process through the runtime',
    '# API first; this file is what the next reload or restart starts from.',
    `# config ${model.configId}`,
    'global',
    '    log stderr format raw local0 warning',
    '    # Old processes left after a reload serve their open connections this long at most.',
    '    hard-stop-after 30s',
    '    # 2.6 loads the system CA bundle at every start, check and reload (~25 ms) unless this is set;',
    '    # the balancer makes no TLS calls of its own.',
    '    httpclient.ssl.verify none',
    '',
    'defaults',
    '    mode http',
    '    log global',
    '    timeout connect 3s',
    '    timeout client 30s',
    '    timeout server 30s',
    '    timeout http-request 10s',
    '    timeout http-keep-alive 10s',
    '    # After a reload the old process closes an idle keep-alive connection only once it has answered',
    '    # on it, so a client never writes into a closing connection (0 errors measured under keep-alive).',
    '    option idle-close-on-response',
    '    option forwardfor',
    '    # A member that just went away refuses the connection: try another member instead of failing.',
    '    retries 3',
    '    option redispatch 1',
    '    retry-on conn-failure empty-response',
    '',
    `frontend ${FRONTEND}`,
    `    bind ${model.listen.address}`,
    `    http-request return status 200 content-type text/plain string "ok" hdr ${CONFIG_HEADER} ${model.configId} if { path ${HEALTH_PATH} }`
  ]
  for (const r of model.routes) if (r !== root) out.push(`    use_backend ${r.pool} if ${acl(r)}`)
  out.push(`    default_backend ${root ? root.pool : NO_ROUTE_BACKEND}`)
  for (const pool of model.pools) out.push('', ...backend(pool, model.routes))
  if (!root) out.push('', `backend ${NO_ROUTE_BACKEND}`, '    http-request return status 404 content-type text/plain string "no route"')
  return out.join('\n') + '\n'
}
