// The daemon's configuration: a YAML file, then WAKAME_* environment variables, then command-line
// flags (each overrides the one before). Every field is documented with its default.
import { readFileSync } from 'node:fs'
import { hostname, networkInterfaces } from 'node:os'
import { dirname, isAbsolute, resolve } from 'node:path'
import { z } from 'zod'
import { isSafeKey } from '../core/keys.js'
import { Ec2SettingsSchema } from '../providers/ec2/settings.js'
import { InputError } from '../util/errors.js'
import { loadYamlWith } from '../util/yaml.js'

const ms = (def: number) => z.number().int().min(1).max(3_600_000).default(def)

export const TimingSchema = z.strictObject({
  /** Heartbeat period. */
  heartbeat_interval_ms: ms(500),
  /** Silence before a member is suspect. */
  suspect_after_ms: ms(1_500),
  /** Silence before a member is dead (the stall bound: a node frozen for less is never evicted). */
  dead_after_ms: ms(4_000),
  election_timeout_min_ms: ms(4_000),
  election_timeout_max_ms: ms(5_000),
  /** A leader acts only while a majority acknowledged it within this window. */
  lease_ms: ms(3_000),
  /** Dependency views (and balancer configs) re-render at most this often: changes in between coalesce. */
  render_coalesce_ms: ms(50)
})

export const DaemonConfigSchema = z.strictObject({
  /** Cluster name: nodes of other clusters are ignored. */
  cluster: z.string().regex(/^[a-z0-9][a-z0-9-]{0,40}$/, 'a cluster name is lower-case letters, digits and "-"'),
  /** This node's id (default: the provider's instance id, else the host name). */
  node_id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).refine(isSafeKey, 'this node id is reserved; choose another').optional(),
  /** The cluster's pre-shared key, the one this node sends with (required; `wakame keygen`). */
  psk_file: z.string().min(1),
  /** More keys accepted from peers during a key rollover (see SECURITY.md). */
  psk_accept_files: z.array(z.string().min(1)).max(4).default([]),
  /** Token required by every state-changing API call (required; `wakame token`). */
  admin_token_file: z.string().min(1),
  /** More admin tokens accepted during a token rotation (see SECURITY.md). */
  admin_token_accept_files: z.array(z.string().min(1)).max(4).default([]),
  /** Address to bind the mesh and API (default: the first non-loopback IPv4). */
  bind: z.union([z.ipv4(), z.ipv6()], 'an IP address of this node').optional(),
  mesh_port: z.number().int().min(1).max(65535).default(7610),
  api_port: z.number().int().min(1).max(65535).default(7600),
  /** Address the admin API binds (default: `bind`; never 0.0.0.0 unless set here). */
  api_bind: z.union([z.ipv4(), z.ipv6()], 'an IP address of this node').optional(),
  /** Serve the admin API over HTTPS with this certificate (PEM; both files or neither). */
  api_tls_cert_file: z.string().min(1).optional(),
  api_tls_key_file: z.string().min(1).optional(),
  /** Where the node keeps its state (default /var/lib/wakame). */
  data_dir: z.string().default('/var/lib/wakame'),
  /** Peers to join through: host:port or multiaddrs. */
  bootstrap: z.array(z.string()).default([]),
  /** A new cluster forms when this many nodes have met (0: only join an existing cluster). */
  bootstrap_expect: z.number().int().min(0).max(9).default(1),
  provider: z.enum(['local', 'ec2']).default('local'),
  /** EC2 provider settings (every field optional: an instance booted with wakame user-data needs none). */
  ec2: Ec2SettingsSchema.optional(),
  /** Local provider: the registry of local VMs. */
  local: z.strictObject({
    cluster_dir: z.string(),
    net: z.string().regex(/^127\.\d{1,3}\.\d{1,3}$/).default('127.0.0'),
    first_host: z.number().int().min(1).max(254).default(2)
  }).optional(),
  /** The cluster spec `launch_cluster` uses when none is given. */
  spec: z.string().optional(),
  /** Launch decision that created this VM (set by the provider). */
  launch: z.string().optional(),
  /** Availability zone (voters spread across zones). */
  zone: z.string().optional(),
  log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  timing: TimingSchema.default(TimingSchema.parse({}))
})

export type DaemonConfig = z.output<typeof DaemonConfigSchema> & { bind: string, node_id: string, api_bind: string }

/** Top-level keys that may come from WAKAME_<KEY> environment variables. */
const ENV_KEYS = ['cluster', 'node_id', 'psk_file', 'psk_accept_files', 'admin_token_file', 'admin_token_accept_files', 'bind', 'mesh_port', 'api_port', 'api_bind', 'api_tls_cert_file', 'api_tls_key_file', 'data_dir', 'bootstrap', 'bootstrap_expect', 'provider', 'spec', 'launch', 'zone', 'log_level'] as const
const NUMERIC = new Set(['mesh_port', 'api_port', 'bootstrap_expect'])
const LISTS = new Set(['bootstrap', 'psk_accept_files', 'admin_token_accept_files'])

export interface ConfigSources {
  /**
   * What the platform says of this node (on EC2: instance id, private IP, zone, and the user-data's
   * join settings), under everything else: the file, env and flags override it.
   */
  defaults?: Record<string, unknown>
  file?: string
  env?: NodeJS.ProcessEnv
  /** Flags, already snake_case. */
  flags?: Record<string, unknown>
}

/** The file, env and flags merged, not yet validated as a whole (the provider is chosen from it). */
export function mergeConfigSources (src: ConfigSources): { raw: Record<string, unknown>, baseDir: string } {
  const raw: Record<string, unknown> = { ...src.defaults }
  let baseDir = process.cwd()
  if (src.file) {
    const file = resolve(src.file)
    let text: string
    try { text = readFileSync(file, 'utf8') } catch (err) { throw new InputError([{ file, message: `cannot read the config: ${(err as Error).message}` }]) }
    // Validate the file alone first, so its errors point at lines.
    loadYamlWith(text, file, DaemonConfigSchema.partial())
    Object.assign(raw, loadYamlWith(text, file, z.record(z.string(), z.unknown())).value)
    baseDir = dirname(file)
  }
  const env = src.env ?? {}
  for (const key of ENV_KEYS) {
    const v = env[`WAKAME_${key.toUpperCase()}`]
    if (v === undefined || v === '') continue
    raw[key] = NUMERIC.has(key) ? Number(v) : LISTS.has(key) ? v.split(',').map(s => s.trim()).filter(Boolean) : v
  }
  for (const [k, v] of Object.entries(src.flags ?? {})) if (v !== undefined) raw[k] = v
  return { raw, baseDir }
}

export function resolveDaemonConfig (src: ConfigSources): DaemonConfig {
  const { raw, baseDir } = mergeConfigSources(src)
  const parsed = DaemonConfigSchema.safeParse(raw)
  if (!parsed.success) {
    throw new InputError(parsed.error.issues.map(i => ({ file: src.file ?? '(flags and environment)', field: i.path.join('.'), message: i.message })))
  }
  const c = parsed.data
  if ((c.api_tls_cert_file === undefined) !== (c.api_tls_key_file === undefined)) {
    throw new InputError([{ file: src.file ?? '(flags and environment)', field: c.api_tls_cert_file ? 'api_tls_key_file' : 'api_tls_cert_file', message: 'HTTPS needs both api_tls_cert_file and api_tls_key_file' }])
  }
  const at = (p: string | undefined) => p === undefined ? undefined : isAbsolute(p) ? p : resolve(baseDir, p)
  const bind = c.bind ?? defaultIpv4()
  return {
    ...c,
    psk_file: at(c.psk_file)!,
    psk_accept_files: c.psk_accept_files.map(f => at(f)!),
    admin_token_file: at(c.admin_token_file)!,
    admin_token_accept_files: c.admin_token_accept_files.map(f => at(f)!),
    api_tls_cert_file: at(c.api_tls_cert_file),
    api_tls_key_file: at(c.api_tls_key_file),
    data_dir: at(c.data_dir)!,
    spec: at(c.spec),
    local: c.local ? { ...c.local, cluster_dir: at(c.local.cluster_dir)! } : undefined,
    bind,
    api_bind: c.api_bind ?? bind,
    node_id: c.node_id ?? hostname()
  }
}

function defaultIpv4 (): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return '127.0.0.1'
}
