// `wakame status` as text: the tree Wakame printed, services with <current min max>, each
// instance with its state and node, and every agent with addresses, load and heartbeat age.
import type { StatusReport } from '../core/status.js'

export function formatStatus (s: StatusReport, color = false): string {
  const c = (code: string, t: string) => color ? `\x1b[${code}m${t}\x1b[0m` : t
  const stateColor = (st: string) => st === 'ONLINE' || st === 'alive' ? c('32', st) : st === 'FAIL' || st === 'dead' ? c('31', st) : c('33', st)
  const lines: string[] = []
  lines.push(`Cluster ${s.cluster} : ${s.phase.toUpperCase()}${s.settled ? '' : ' (changing)'}  leader ${s.leader ?? 'none'} (term ${s.term})`)
  if (s.services.length === 0) lines.push('  (not launched: run `wakame launch_cluster`)')
  for (const svc of s.services) {
    const target = svc.desired !== svc.current ? ` -> ${svc.desired}` : ''
    const urls = svc.urls?.length ? `  ${svc.urls.join(' ')}` : ''
    lines.push(`  ${svc.name} <${svc.current} ${svc.min} ${svc.max}>${target}${urls}`)
    if (svc.scale) {
      const now = svc.scale.value === undefined ? 'no value yet' : `now ${Number(svc.scale.value.toPrecision(3))} avg over ${svc.scale.reporting}`
      lines.push(`    autoscale: target ${svc.scale.metric} ${svc.scale.target}, ${now}`)
    }
    for (const i of svc.instances) {
      const where = i.node ? `${i.node} ${i.ip ?? ''}${i.port ? `:${i.port}` : ''}` : '(waiting for a node)'
      const extra = [i.migratingTo ? `migrating to ${i.migratingTo}` : '', i.replaces ? `replaces ${i.replaces}` : '', i.volume ? `volume ${i.volume}` : '', i.metric !== undefined ? `metric ${Number(i.metric.toPrecision(3))}` : '', i.failures ? `${i.failures} failure${i.failures === 1 ? '' : 's'}` : '', i.failedOn?.length ? `crash-looped on ${i.failedOn.join(',')}` : '', i.error ?? ''].filter(Boolean).join(', ')
      lines.push(`    ${i.id.padEnd(10)} ${stateColor(i.state.padEnd(9))} ${where}${extra ? `  (${extra})` : ''}`)
      // What it was told of its dependencies, and how its last on_change went.
      if (i.deps) {
        const given = Object.entries(i.deps).map(([svc, addrs]) => `${svc} ${addrs.length ? addrs.join(',') : '(none ONLINE)'}`).join('; ')
        const oc = i.onChange ? `; last ${i.onChange.action} ${i.onChange.ok ? 'ok' : c('31', 'FAILED')}${i.onChange.note ? ` (${i.onChange.note})` : ''}` : ''
        lines.push(`               -> ${given}${oc}`)
      }
      if (i.gaveUp) lines.push(`               not moved again: ${i.gaveUp.split('; last error:')[0]}`)
    }
  }
  lines.push('Agents:')
  for (const n of s.nodes) {
    const role = [n.leader ? 'leader' : '', n.voter ? 'voter' : '', n.terminating ? 'terminating' : ''].filter(Boolean).join(', ')
    const hb = n.heartbeatAgeS === undefined ? 'never heard' : `${n.heartbeatAgeS.toFixed(1)} sec(s)`
    lines.push(`  ${n.id.padEnd(8)} ${n.ip.padEnd(15)} ${stateColor(n.status.padEnd(7))} load=${n.load1 ?? '?'}, ${hb}${role ? `  [${role}]` : ''}`)
  }
  for (const a of s.addresses ?? []) lines.push(`  address ${a.name}${a.ip ? ` ${a.ip}` : ''} -> ${a.associatedTo ?? 'nothing'}${a.wantAt && a.wantAt !== a.associatedTo ? ` (moving to ${a.wantAt})` : ''}`)
  for (const l of s.launches) lines.push(`  ${l.id}: ${l.status}${l.vm ? ` (${l.vm})` : ''} — ${l.reason}${l.error ? `: ${l.error}` : ''}`)
  for (const w of s.warnings) lines.push(c('33', `warning: ${w}`))
  return lines.join('\n')
}
