// The plain HTML status page at GET /: the same tree as `wakame status`, refreshed every 2 s.
// No external assets, so it works offline. Every value is HTML-escaped.
import type { StatusReport } from '../core/status.js'

const esc = (v: unknown): string => String(v ?? '').replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)

export function renderStatusPage (s: StatusReport): string {
  const services = s.services.map(svc => `
    <tr class="svc"><td colspan="5"><b>${esc(svc.name)}</b> &lt;${svc.current} ${svc.min} ${svc.max}&gt;${svc.desired !== svc.current ? ` → ${svc.desired}` : ''}${svc.urls?.length ? ` ${svc.urls.map(u => `<a href="${esc(u)}">${esc(u)}</a>`).join(' ')}` : ''}</td></tr>
    ${svc.instances.map(i => `<tr><td>${esc(i.id)}</td><td class="st ${esc(i.state)}">${esc(i.state)}</td><td>${esc(i.node ?? '(waiting for a node)')}</td><td>${i.ip ? esc(`${i.ip}:${i.port ?? ''}`) : ''}</td><td>${esc(i.error ?? '')}</td></tr>`).join('')}`).join('')
  const nodes = s.nodes.map(n => `<tr><td>${esc(n.id)}${n.leader ? ' ★' : ''}</td><td>${esc(n.ip)}</td><td class="st ${esc(n.status)}">${esc(n.status)}</td><td>${n.voter ? 'voter' : ''}</td><td>${n.load1 ?? ''}</td><td>${n.heartbeatAgeS === undefined ? '' : n.heartbeatAgeS.toFixed(1)}</td><td>${n.instances}</td></tr>`).join('')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>wakame: ${esc(s.cluster)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:2em}
td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #eee}tr.svc td{background:#f6f6f6;padding-top:.6em}
.ONLINE,.alive{color:#080}.FAIL,.dead{color:#c00}.Starting,.Stopping,.Migrating,.suspect{color:#b60}.warn{color:#b60}
</style></head><body>
<h1>wakame cluster <code>${esc(s.cluster)}</code></h1>
<p>phase <b>${esc(s.phase)}</b> · leader <b>${esc(s.leader ?? 'none')}</b> (term ${s.term}) · answered by ${esc(s.answeredBy)} · ${s.settled ? 'settled' : 'changing'}</p>
${s.warnings.length ? `<ul>${s.warnings.map(w => `<li class="warn">${esc(w)}</li>`).join('')}</ul>` : ''}
<h2>Services</h2><table><tr><th>instance</th><th>state</th><th>node</th><th>address</th><th>note</th></tr>${services || '<tr><td colspan="5">not launched</td></tr>'}</table>
<h2>Agents</h2><table><tr><th>node</th><th>address</th><th>status</th><th></th><th>load</th><th>heartbeat (s ago)</th><th>instances</th></tr>${nodes}</table>
</body></html>`
}
