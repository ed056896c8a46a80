// Loads and validates a cluster spec. Every problem names the file, line and field; a rejected
// spec is never partially applied (the caller gets an InputError and changes nothing).
import { accessSync, constants, readFileSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { InputError, type InputProblem } from '../util/errors.js'
import { loadYamlWith, positionOf, type LoadedYaml } from '../util/yaml.js'
import { findCycle } from './graph.js'
import { SpecSchema, type Spec, type ServiceSpec } from './schema.js'

export function loadSpecFile (path: string): Spec {
  const abs = resolve(path)
  let text: string
  try {
    text = readFileSync(abs, 'utf8')
  } catch (err) {
    throw new InputError([{ file: abs, message: `cannot read the spec: ${(err as Error).message}` }])
  }
  return loadSpecText(text, abs, dirname(abs))
}

/** Parse and validate spec text. `dir` is where relative command paths resolve. */
export function loadSpecText (text: string, file: string, dir: string): Spec {
  const { value, loaded } = loadYamlWith(text, file, SpecSchema)
  const services: Record<string, ServiceSpec> = {}
  for (const [name, s] of Object.entries(value.services)) services[name] = { ...s, max: s.max ?? Math.max(s.min, 1) }
  const spec: Spec = { cluster: value.cluster, services, dir }
  const problems = [...checkSpec(spec), ...checkFiles(spec)].map(p => located(loaded, p))
  if (problems.length > 0) throw new InputError(problems)
  return spec
}

/**
 * Template files the spec names must be readable now: found missing only when an instance renders,
 * they would make every instance of the service FAIL at once (the same path holds on every node
 * booted from one image).
 */
function checkFiles (spec: Spec): PathProblem[] {
  const problems: PathProblem[] = []
  const check = (source: string | undefined, path: Array<string | number>): void => {
    if (source === undefined) return
    const abs = resolve(spec.dir, source)
    try {
      if (!statSync(abs).isFile()) problems.push({ path, message: `${abs} is not a file` })
      else accessSync(abs, constants.R_OK)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      problems.push({ path, message: code === 'ENOENT' ? `no template file ${abs} (paths are relative to the spec's directory)` : `cannot read ${abs}: ${(err as Error).message}` })
    }
  }
  for (const [name, svc] of Object.entries(spec.services)) {
    svc.templates.forEach((t, i) => check(t.source, ['services', name, 'templates', i, 'source']))
    check(svc.balancer?.template?.source, ['services', name, 'balancer', 'template', 'source'])
  }
  return problems
}

/** Files wakame keeps in an instance's directory. */
const RESERVED_FILES = new Set(['deps.json', 'balancer.json', 'output.log', 'pid.json'])

interface PathProblem { path: Array<string | number>, message: string }

function located (loaded: LoadedYaml, p: PathProblem): InputProblem {
  const pos = positionOf(loaded, p.path)
  return { file: loaded.file, line: pos?.line, column: pos?.column, field: p.path.join('.'), message: p.message }
}

/** Checks across fields that a schema cannot express. Pure; also run on specs received by the API. */
export function checkSpec (spec: Pick<Spec, 'cluster' | 'services'>): PathProblem[] {
  const problems: PathProblem[] = []
  const names = Object.keys(spec.services)
  if (names.length === 0) problems.push({ path: ['services'], message: 'the spec defines no services' })
  const c = spec.cluster
  if (c.min_nodes > c.max_nodes) problems.push({ path: ['cluster', 'min_nodes'], message: `min_nodes (${c.min_nodes}) is above max_nodes (${c.max_nodes})` })
  const ports = new Map<number, string>()
  for (const [name, s] of Object.entries(spec.services)) {
    const at = (...rest: Array<string | number>) => ['services', name, ...rest]
    if (s.min > s.max) problems.push({ path: at('min'), message: `min (${s.min}) is above max (${s.max})` })
    if (!s.command && !s.balancer) problems.push({ path: at(), message: 'give a command (or a balancer section)' })
    s.depends_on.forEach((dep, i) => {
      if (!(dep in spec.services)) problems.push({ path: at('depends_on', i), message: `unknown service "${dep}"; known: ${names.join(', ')}` })
      if (dep === name) problems.push({ path: at('depends_on', i), message: 'a service cannot depend on itself' })
    })
    if (s.port !== undefined) {
      // Every instance of every service on a node listens on the node's address: ports must not collide.
      for (let k = 0; k < s.max_per_node; k++) {
        const other = ports.get(s.port + k)
        if (other !== undefined) problems.push({ path: at('port'), message: `port ${s.port + k} is also used by ${other}` })
        ports.set(s.port + k, name)
      }
    }
    if ((s.health?.http || s.health?.tcp) && s.port === undefined) problems.push({ path: at('health'), message: 'an http or tcp health check needs the service\'s port' })
    s.templates.forEach((t, i) => {
      if (RESERVED_FILES.has(t.dest)) problems.push({ path: at('templates', i, 'dest'), message: `"${t.dest}" is a file wakame writes itself; choose another name` })
    })
    if (s.address && s.max > 1) problems.push({ path: at('max'), message: 'a service with an address runs as a single instance (max 1)' })
    if (s.volume && s.max > 1) problems.push({ path: at('max'), message: 'a service with a volume runs as a single instance (max 1)' })
    if (s.scale?.policy === 'target') {
      if (s.max <= s.min) problems.push({ path: at('max'), message: `autoscaling (policy target) needs room to scale: max (${s.max}) must be above min (${s.min})` })
      if (s.scale.metric === 'reported' && !s.health?.http) problems.push({ path: at('scale', 'metric'), message: 'metric reported is read from the HTTP health check\'s answer ({"metric": n}): give the service a health: { http: ... } check' })
      if (s.volume || s.address) problems.push({ path: at('scale'), message: 'a service with a volume or an address runs as a single instance: it cannot autoscale' })
    }
    if (s.balancer) {
      if (s.port === undefined) problems.push({ path: at('port'), message: 'a balancer needs a port to listen on' })
      s.balancer.routes.forEach((r, i) => {
        if (!s.depends_on.includes(r.service)) problems.push({ path: at('balancer', 'routes', i, 'service'), message: `the balancer routes to "${r.service}", so list it in depends_on` })
        else if (spec.services[r.service]?.port === undefined) problems.push({ path: at('balancer', 'routes', i, 'service'), message: `"${r.service}" has no port to route to` })
      })
      const paths = s.balancer.routes.map(r => r.path)
      const dup = paths.find((p, i) => paths.indexOf(p) !== i)
      if (dup) problems.push({ path: at('balancer', 'routes'), message: `route path "${dup}" appears twice` })
    }
  }
  const cycle = findCycle(spec.services)
  if (cycle) problems.push({ path: ['services', cycle[0]!, 'depends_on'], message: `dependency cycle: ${cycle.join(' -> ')}` })
  return problems
}
