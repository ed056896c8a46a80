// nginx config from the balancer model. Pure; same model, same bytes.
// nginx refuses an `upstream` without servers (nginx -t fails, and then nothing reloads: case 01),
// so an empty pool has no upstream at all and its locations answer 503 themselves.
// Relative paths resolve against the prefix (`-p <instance dir>/`), so the server writes nothing
// outside its instance directory.
import { CONFIG_HEADER, HEALTH_PATH, type BalancerModel, type ModelRoute, type Pool } from '../model.js'

function proxyOrStatus (route: ModelRoute, pool: Pool | undefined): string {
  if (!pool || pool.members.length === 0) return `return 503 "no ONLINE instance of ${pool?.service ?? route.pool}\\n";`
  // With a URI part ("/"), nginx replaces the matched location prefix with it: the prefix is stripped.
  return `proxy_pass http://${pool.name}${route.stripPrefix && route.path !== '/' ? '/' : ''};`
}

function locations (route: ModelRoute, pool: Pool | undefined): string[] {
  const body = proxyOrStatus(route, pool)
  // `location /api` would also match `/apix`: an exact location plus a directory one match like the builtin.
  if (route.path === '/') return [`        location / { ${body} }`]
  return [`        location = ${route.path} { ${body} }`, `        location ${route.path}/ { ${body} }`]
}

export function renderNginx (model: BalancerModel): string {
  const pools = new Map(model.pools.map(p => [p.name, p]))
  const out = [
    `# nginx config of ${model.instance}, rendered by wakame from the cluster's membership: do not edit,`,
    '# the next change replaces it.',
    `# config ${model.configId}`,
    'pid nginx.pid;',
    'error_log stderr warn;',
    'worker_processes auto;',
    '# Old workers left after a reload close their remaining connections after this long.',
    'worker_shutdown_timeout 30s;',
    'events {',
    '    worker_connections 1024;',
    '}',
    'http {',
    '    access_log off;',
    '    default_type text/plain;',
    '    client_body_temp_path tmp/client_body;',
    '    proxy_temp_path tmp/proxy;',
    '    fastcgi_temp_path tmp/fastcgi;',
    '    uwsgi_temp_path tmp/uwsgi;',
    '    scgi_temp_path tmp/scgi;',
    '    keepalive_timeout 10s;',
    '    proxy_http_version 1.1;',
    '    proxy_set_header Connection "";',
    '    proxy_set_header Host $http_host;',
    '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '    proxy_set_header X-Forwarded-Proto $scheme;',
    '    proxy_connect_timeout 3s;',
    '    # Stream bodies instead of spooling them to temp files: workers started by root run as an',
    '    # unprivileged user that cannot write into the instance directory.',
    '    proxy_request_buffering off;',
    '    proxy_max_temp_file_size 0;',
    '    # A member that just went away refuses the connection: the request goes to the next one.',
    '    proxy_next_upstream error timeout;'
  ]
  for (const pool of model.pools) {
    if (pool.members.length === 0) continue
    out.push('', `    upstream ${pool.name} {`)
    for (const m of pool.members) out.push(`        server ${m.address}; # ${m.id}`)
    // Idle connections to members close before Node's 5 s server keep-alive would close them under us.
    out.push('        keepalive 16;', '        keepalive_timeout 4s;', '    }')
  }
  out.push(
    '',
    '    server {',
    `        listen ${model.listen.address};`,
    `        location = ${HEALTH_PATH} { add_header ${CONFIG_HEADER} ${model.configId} always; return 200 "ok\\n"; }`,
    '        # nginx found no member it could reach (the last one just died and is not yet out of the',
    '        # list): that is "no member", 503, as for an empty pool. A member\'s own 502 passes through.',
    '        error_page 502 504 =503 @unreachable;',
    '        location @unreachable { return 503 "no reachable instance\\n"; }'
  )
  for (const r of model.routes) out.push(...locations(r, pools.get(r.pool)))
  if (!model.routes.some(r => r.path === '/')) out.push('        location / { return 404 "no route\\n"; }')
  out.push('    }', '}')
  return out.join('\n') + '\n'
}
