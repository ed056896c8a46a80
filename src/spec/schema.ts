// The cluster spec: what services exist, how to run and check them, and how many of each.
// Validated with zod (strict objects: unknown fields are errors with a suggestion).
import { z } from 'zod'
import { isSafeKey } from '../core/keys.js'

export const SERVICE_NAME = /^[a-z][a-z0-9-]{0,30}$/
const serviceName = z.string().regex(SERVICE_NAME, 'a service name is 1-31 lower-case letters, digits or "-", starting with a letter')
  .refine(isSafeKey, 'this name is reserved (it is a member of every JavaScript object); choose another')
const signal = z.enum(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGQUIT', 'SIGKILL'])
const argv = z.array(z.string().min(1)).min(1, 'give the program and its arguments as a list')
/** A program and its arguments (run without a shell), or, with the service's `shell: true`, one string for /bin/sh -c. */
const command = z.union([argv, z.string().min(1).max(65_536)])
const ms = (def: number) => z.number().int().min(1).max(3_600_000).default(def)

export const HealthSchema = z.strictObject({
  /** HTTP GET on the instance's port; healthy on a 2xx answer. */
  http: z.strictObject({ path: z.string().startsWith('/').default('/') }).optional(),
  /** TCP connect to the instance's port. */
  tcp: z.strictObject({}).optional(),
  /** A command that exits 0 when healthy (run without a shell unless the service says `shell: true`). */
  command: command.optional(),
  /** How often to check, in ms. */
  interval_ms: ms(1000),
  /** One check fails after this long. */
  timeout_ms: ms(1000),
  /** An instance not healthy this long after start is FAIL. */
  start_timeout_ms: ms(20_000),
  /** Consecutive failed checks that turn an ONLINE instance FAIL. */
  failures: z.number().int().min(1).max(100).default(3)
}).refine(h => [h.http, h.tcp, h.command].filter(Boolean).length <= 1, 'give at most one of http, tcp, command')

export const TEMPLATE_FORMATS = ['json', 'yaml', 'shell', 'ini', 'xml', 'text', 'conf'] as const

export const TemplateSchema = z.strictObject({
  /** Template file, relative to the spec's directory (give this or `text`). */
  source: z.string().min(1).optional(),
  /** Inline template text. */
  text: z.string().max(65_536).optional(),
  /** File name it is rendered to, in the instance's directory (WAKAME_INSTANCE_DIR). */
  dest: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'a plain file name (no directories)'),
  /** How `<%= value %>` is escaped: for the file format the template produces. */
  format: z.enum(TEMPLATE_FORMATS)
}).refine(t => (t.source === undefined) !== (t.text === undefined), 'give exactly one of source and text')

/** Metrics a `target` policy can track: the node's 1-minute load average, or a value the instance reports. */
export const SCALE_METRICS = ['load1', 'reported'] as const

/**
 * How the leader changes a service's instance count. `fixed`: only operators do (scale, propagate).
 * `target`: keep `metric` near `target` between min and max (target tracking, as EC2 Auto Scaling
 * does): scale out at once (several at a time), scale in one at a time and only after the metric
 * stayed low for `scale_in_window_ms`.
 */
export const ScaleSchema = z.strictObject({
  policy: z.enum(['fixed', 'target']).default('fixed'),
  /** `load1`: the node's load average; `reported`: `{"metric": n}` from the instance's HTTP health check. */
  metric: z.enum(SCALE_METRICS).optional(),
  /** The per-instance value to keep the metric near. */
  target: z.number().positive('target must be above 0').max(1e9).optional(),
  /** Scale out only when the average is above target * (1 + tolerance): noise around target changes nothing. */
  tolerance: z.number().min(0).max(1).default(0.1),
  /** Scale in only while the average is below target * (1 - hysteresis), and one fewer instance would be below target * (1 - hysteresis / 2). */
  hysteresis: z.number().min(0.05, 'hysteresis below 0.05 invites flapping').max(0.95).default(0.3),
  /** After a scale-out, no further scale-out for this long (what it added warms up and takes load first). */
  scale_out_cooldown_ms: ms(30_000),
  /** After any scale action, no scale-in for this long. */
  scale_in_cooldown_ms: ms(300_000),
  /** The metric must stay low this long before one instance is removed. */
  scale_in_window_ms: ms(60_000),
  /** A new instance's metric is left out of the average until it has been ONLINE this long. */
  warmup_ms: z.number().int().min(0).max(3_600_000).default(30_000)
}).superRefine((s, ctx) => {
  if (s.policy === 'fixed') {
    if (s.metric !== undefined || s.target !== undefined) ctx.addIssue({ code: 'custom', path: [s.metric !== undefined ? 'metric' : 'target'], message: 'policy fixed takes no metric or target: use policy: target to autoscale' })
    return
  }
  if (s.metric === undefined) ctx.addIssue({ code: 'custom', path: ['metric'], message: 'policy target needs a metric: load1 or reported' })
  if (s.target === undefined) ctx.addIssue({ code: 'custom', path: ['target'], message: 'policy target needs a target value (above 0)' })
})

export const RouteSchema = z.strictObject({
  /** Path prefix, e.g. `/api`; the longest matching prefix wins. */
  path: z.string().regex(/^\/[A-Za-z0-9._~\-/]*$/, 'a route path starts with "/" and holds only URL-safe characters'),
  service: serviceName,
  /** Forward `/api/x` to the service as `/x`. haproxy, nginx and apache only. */
  strip_prefix: z.boolean().optional()
})

/** builtin: wakame's own proxy process; the others run that server under the supervisor (its package installed). */
export const BALANCER_KINDS = ['builtin', 'haproxy', 'nginx', 'apache'] as const

export const BalancerSchema = z.strictObject({
  kind: z.enum(BALANCER_KINDS).default('builtin'),
  routes: z.array(RouteSchema).min(1),
  /** Your own config template for the kind (Eta; `<%= value %>` is escaped as one config token). */
  template: z.strictObject({
    /** Template file, relative to the spec's directory (give this or `text`). */
    source: z.string().min(1).optional(),
    text: z.string().max(65_536).optional()
  }).refine(t => (t.source === undefined) !== (t.text === undefined), 'give exactly one of source and text').optional()
}).superRefine((b, ctx) => {
  if (b.kind !== 'builtin') return
  if (b.template) ctx.addIssue({ code: 'custom', path: ['template'], message: 'the builtin balancer takes no template: use kind haproxy, nginx or apache' })
  b.routes.forEach((r, i) => {
    if (r.strip_prefix !== undefined) ctx.addIssue({ code: 'custom', path: ['routes', i, 'strip_prefix'], message: 'the builtin balancer forwards paths unchanged: use kind haproxy, nginx or apache' })
  })
})

export const ServiceSchema = z.strictObject({
  /** Program and arguments, run without a shell. `node` means the Node.js running wakame. */
  command: command.optional(),
  /** Allow commands given as one string, run by /bin/sh -c (off: nothing a spec says is parsed by a shell). */
  shell: z.boolean().default(false),
  /** Working directory, relative to the spec file's directory. */
  workdir: z.string().optional(),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), z.string()).default({}),
  /** TCP port the service listens on, on its node's address. */
  port: z.number().int().min(1).max(65535).optional(),
  depends_on: z.array(serviceName).default([]),
  min: z.number().int().min(0).max(1000).default(1),
  max: z.number().int().min(0).max(1000).optional(),
  /** Instances of this service one node may run (each further one gets port + n). */
  max_per_node: z.number().int().min(1).max(64).default(1),
  health: HealthSchema.optional(),
  stop: z.strictObject({
    signal: signal.default('SIGTERM'),
    timeout_ms: ms(10_000)
  }).default({ signal: 'SIGTERM', timeout_ms: 10_000 }),
  /** What a running instance does when the instances of its dependencies change. */
  on_change: z.enum(['reload', 'restart', 'none']).default('none'),
  /** How to reload: a signal (default SIGHUP), or a command run next to the instance (exit 0 = done). */
  reload: z.strictObject({
    signal: signal.default('SIGHUP'),
    command: command.optional(),
    timeout_ms: ms(10_000)
  }).default({ signal: 'SIGHUP', timeout_ms: 10_000 }),
  /** Config files rendered from the dependency view (Eta templates), re-rendered when it changes. */
  templates: z.array(TemplateSchema).max(16).default([]),
  /**
   * Crash loops: after `max_failures` failures with no stable ONLINE period (`stable_ms`) between
   * them, the node stops restarting the instance (FAIL, with its last error); the leader then moves
   * it to another node, and leaves it FAIL once it has failed on `max_nodes` different nodes.
   */
  restart: z.strictObject({
    max_failures: z.number().int().min(1).max(1000).default(5),
    /** An instance ONLINE this long is stable: its failure count starts over. */
    stable_ms: ms(60_000),
    max_nodes: z.number().int().min(1).max(100).default(3)
  }).default({ max_failures: 5, stable_ms: 60_000, max_nodes: 3 }),
  /** How long the leader waits for dependents to stop using an instance before stopping it. */
  drain_timeout_ms: ms(5_000),
  /**
   * A public address (an Elastic IP on EC2) that follows the (single) instance when it moves, e.g.
   * the balancer's. Moving it drops the connections open to the old instance.
   */
  address: z.strictObject({ name: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/) }).optional(),
  /** A persistent volume that follows the (single) instance when it moves. */
  volume: z.strictObject({ name: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/), size_gb: z.number().int().min(1).max(16_384).default(8) }).optional(),
  /** Makes this service a load balancer over the services it routes to. */
  balancer: BalancerSchema.optional(),
  /** Autoscaling policy (default fixed: the count changes only by command). */
  scale: ScaleSchema.optional()
}).superRefine((svc, ctx) => {
  if (svc.shell) return
  const strings: Array<[unknown, Array<string | number>]> = [[svc.command, ['command']], [svc.health?.command, ['health', 'command']], [svc.reload.command, ['reload', 'command']]]
  for (const [value, path] of strings) {
    if (typeof value === 'string') ctx.addIssue({ code: 'custom', path, message: 'a command given as one string needs a shell: add `shell: true` to the service, or give it as a list [program, arg, ...]' })
  }
}).transform(svc => {
  // Lists run as they are; strings (only allowed with shell: true) run through /bin/sh -c.
  const run = (c: string | string[] | undefined): string[] | undefined => typeof c === 'string' ? ['/bin/sh', '-c', c] : c
  return { ...svc, command: run(svc.command), health: svc.health && { ...svc.health, command: run(svc.health.command) }, reload: { ...svc.reload, command: run(svc.reload.command) } }
})

export const ClusterSettingsSchema = z.strictObject({
  /** Nodes the leader keeps running while the cluster is up (1 or 2 cannot survive a failure). */
  min_nodes: z.number().int().min(1).max(1000).default(3),
  /** The leader never launches beyond this many nodes. */
  max_nodes: z.number().int().min(1).max(1000).default(10),
  /** Service instances one node may run. */
  max_instances_per_node: z.number().int().min(1).max(256).default(4),
  /** EC2 instance type of the VMs the leader launches (default: the provider's, e.g. its own). */
  instance_type: z.string().regex(/^[a-z0-9]+\.[a-z0-9]+$/, 'an EC2 instance type such as t3.small').optional()
})

export const SpecSchema = z.strictObject({
  cluster: ClusterSettingsSchema.default({ min_nodes: 3, max_nodes: 10, max_instances_per_node: 4 }),
  services: z.record(serviceName, ServiceSchema)
})

export type SpecInput = z.input<typeof SpecSchema>
export type ParsedSpec = z.output<typeof SpecSchema>
export type ServiceSpec = z.output<typeof ServiceSchema> & { max: number }
export type HealthSpec = Omit<z.output<typeof HealthSchema>, 'command'> & { command?: string[] }
export type RouteSpec = z.output<typeof RouteSchema>
export type TemplateSpec = z.output<typeof TemplateSchema>
export type TemplateFormat = TemplateSpec['format']
export type ScaleSpec = z.output<typeof ScaleSchema>
/** A `target` scale policy, as checkSpec guarantees it (metric and target given). */
export type TargetScaleSpec = ScaleSpec & { policy: 'target', metric: typeof SCALE_METRICS[number], target: number }

/** The service's target-tracking policy, or undefined when its count is fixed. */
export function targetPolicy (s: { scale?: ScaleSpec | undefined }): TargetScaleSpec | undefined {
  const p = s.scale
  return p && p.policy === 'target' && p.metric !== undefined && p.target !== undefined ? p as TargetScaleSpec : undefined
}

/** A validated spec, as carried in the cluster state. `dir` resolves relative paths in commands. */
export interface Spec {
  cluster: ParsedSpec['cluster']
  services: Record<string, ServiceSpec>
  /** Absolute directory of the spec file when it was loaded (the same path on every node of an AMI). */
  dir: string
}
