// The live status page at GET /: the same tree as `wakame status` plus recent events. Rendered
// server-side first (so it shows something without script, and refreshes itself then), and kept
// current in place by a small inline script polling /v1/status and /v1/events. No external assets,
// so it works offline. Server side every value is HTML-escaped; the script sets only textContent.
import type { StatusReport } from '../core/status.js'
import type { ClusterEvent } from '../events/event.js'

/** Events the page shows (newest first). */
export const PAGE_EVENTS = 30
/** How often the page polls, in ms. */
const POLL_MS = 1_000

const esc = (v: unknown): string => String(v ?? '').replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)

function summary (s: StatusReport): string {
  return `phase ${s.phase} · leader ${s.leader ?? 'none'} (term ${s.term}) · answered by ${s.answeredBy} · ${s.settled ? 'settled' : 'changing'}`
}

function eventText (e: ClusterEvent): { change: string, text: string } {
  return { change: e.from !== undefined || e.to !== undefined ? `${e.from ?? '?'} → ${e.to ?? '?'}` : '', text: `${e.reason}${e.by ? ` (by ${e.by})` : ''}` }
}

export function renderStatusPage (s: StatusReport, events: ClusterEvent[] = []): string {
  const services = s.services.map(svc => `
    <tr class="svc" data-service="${esc(svc.name)}"><td colspan="5"><b>${esc(svc.name)}</b> &lt;${svc.current} ${svc.min} ${svc.max}&gt;${svc.desired !== svc.current ? ` → ${svc.desired}` : ''}${svc.urls?.length ? ` ${svc.urls.map(u => `<a href="${esc(u)}">${esc(u)}</a>`).join(' ')}` : ''}</td></tr>
    ${svc.instances.map(i => `<tr data-instance="${esc(i.id)}" data-state="${esc(i.state)}"><td>${esc(i.id)}</td><td class="st ${esc(i.state)}">${esc(i.state)}</td><td>${esc(i.node ?? '(waiting for a node)')}</td><td>${i.ip ? esc(`${i.ip}:${i.port ?? ''}`) : ''}</td><td>${esc(i.error ?? '')}</td></tr>`).join('')}`).join('')
  const nodes = s.nodes.map(n => `<tr data-node="${esc(n.id)}"><td>${esc(n.id)}${n.leader ? ' ★' : ''}</td><td>${esc(n.ip)}</td><td class="st ${esc(n.status)}">${esc(n.status)}</td><td>${n.voter ? 'voter' : ''}</td><td>${esc(n.load1 ?? '')}</td><td>${n.heartbeatAgeS === undefined ? '' : n.heartbeatAgeS.toFixed(1)}</td><td>${n.instances}</td></tr>`).join('')
  const evs = events.slice(-PAGE_EVENTS).reverse().map(e => {
    const t = eventText(e)
    return `<tr data-event="${esc(e.id)}"><td>${esc(e.at)}</td><td>${e.term}</td><td>${esc(e.node)}</td><td>${esc(e.kind)}</td><td>${esc(e.subject)}</td><td>${esc(t.change)}</td><td>${esc(t.text)}</td></tr>`
  }).join('')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<noscript><meta http-equiv="refresh" content="2"></noscript>
<title>wakame: ${esc(s.cluster)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:2em}
td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #eee}tr.svc td{background:#f6f6f6;padding-top:.6em}
.ONLINE,.alive{color:#080}.FAIL,.dead{color:#c00}.Starting,.Stopping,.Migrating,.suspect{color:#b60}.warn{color:#b60}
#live{color:#888;font-size:12px}#live.lost{color:#c00}#events td{font-size:12px}
</style></head><body>
<h1>wakame cluster <code>${esc(s.cluster)}</code></h1>
<p id="summary">${esc(summary(s))}</p>
<p id="live">server-rendered; live updates need script</p>
<ul id="warnings">${s.warnings.map(w => `<li class="warn">${esc(w)}</li>`).join('')}</ul>
<h2>Services</h2><table><thead><tr><th>instance</th><th>state</th><th>node</th><th>address</th><th>note</th></tr></thead><tbody id="services">${services || '<tr><td colspan="5">not launched</td></tr>'}</tbody></table>
<h2>Agents</h2><table><thead><tr><th>node</th><th>address</th><th>status</th><th></th><th>load</th><th>heartbeat (s ago)</th><th>instances</th></tr></thead><tbody id="nodes">${nodes}</tbody></table>
<h2>Recent events</h2><table id="events"><thead><tr><th>time</th><th>term</th><th>recorded by</th><th>kind</th><th>subject</th><th>change</th><th>reason</th></tr></thead><tbody id="event-rows">${evs}</tbody></table>
<script>${CLIENT_SCRIPT}</script>
</body></html>`
}

// The page's script: plain ES2017 (no build step, no dependencies). It builds every row with
// createElement and textContent, so nothing from the cluster is ever parsed as HTML.
const CLIENT_SCRIPT = `
(function () {
  'use strict'
  var POLL = ${POLL_MS}, EVENTS = ${PAGE_EVENTS}
  function $ (id) { return document.getElementById(id) }
  function el (tag, text, cls) { var e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e }
  function row (cells, attrs) {
    var tr = document.createElement('tr')
    for (var k in attrs) tr.setAttribute(k, attrs[k])
    cells.forEach(function (c) { tr.appendChild(c instanceof Node ? c : el('td', c)) })
    return tr
  }
  function fill (tbody, rows) { while (tbody.firstChild) tbody.removeChild(tbody.firstChild); rows.forEach(function (r) { tbody.appendChild(r) }) }
  function status (s) {
    $('summary').textContent = 'phase ' + s.phase + ' · leader ' + (s.leader || 'none') + ' (term ' + s.term + ') · answered by ' + s.answeredBy + ' · ' + (s.settled ? 'settled' : 'changing')
    document.title = 'wakame: ' + s.cluster
    fill($('warnings'), s.warnings.map(function (w) { return el('li', w, 'warn') }))
    var rows = []
    s.services.forEach(function (svc) {
      var head = document.createElement('td'); head.colSpan = 5
      head.appendChild(el('b', svc.name))
      head.appendChild(document.createTextNode(' <' + svc.current + ' ' + svc.min + ' ' + svc.max + '>' + (svc.desired !== svc.current ? ' → ' + svc.desired : '') + ' '))
      ;(svc.urls || []).forEach(function (u) { var a = el('a', u); if (/^https?:/.test(u)) a.href = u; head.appendChild(a); head.appendChild(document.createTextNode(' ')) })
      rows.push(row([head], { 'class': 'svc', 'data-service': svc.name }))
      svc.instances.forEach(function (i) {
        rows.push(row([i.id, el('td', i.state, 'st ' + i.state), i.node || '(waiting for a node)', i.ip ? i.ip + ':' + (i.port || '') : '', i.error || ''], { 'data-instance': i.id, 'data-state': i.state }))
      })
    })
    if (rows.length === 0) { var td = el('td', 'not launched'); td.colSpan = 5; rows.push(row([td], {})) }
    fill($('services'), rows)
    fill($('nodes'), s.nodes.map(function (n) {
      return row([n.id + (n.leader ? ' ★' : ''), n.ip, el('td', n.status, 'st ' + n.status), n.voter ? 'voter' : '', n.load1 === undefined ? '' : n.load1, n.heartbeatAgeS === undefined ? '' : n.heartbeatAgeS.toFixed(1), n.instances], { 'data-node': n.id })
    }))
  }
  function events (r) {
    fill($('event-rows'), r.events.slice(-EVENTS).reverse().map(function (e) {
      var change = e.from !== undefined || e.to !== undefined ? (e.from || '?') + ' → ' + (e.to || '?') : ''
      return row([e.at, e.term, e.node, e.kind, e.subject, change, e.reason + (e.by ? ' (by ' + e.by + ')' : '')], { 'data-event': e.id, 'data-kind': e.kind })
    }))
  }
  async function get (path) {
    var res = await fetch(path, { cache: 'no-store' })
    if (!res.ok) throw new Error(path + ': HTTP ' + res.status)
    return await res.json()
  }
  async function poll () {
    try {
      var both = await Promise.all([get('/v1/status'), get('/v1/events?limit=' + EVENTS)])
      status(both[0]); events(both[1])
      $('live').textContent = 'live · updated ' + new Date().toLocaleTimeString()
      $('live').className = ''
    } catch (err) {
      $('live').textContent = 'cannot reach the node (' + err.message + '); retrying'
      $('live').className = 'lost'
    }
    setTimeout(poll, POLL)
  }
  poll()
})()
`
