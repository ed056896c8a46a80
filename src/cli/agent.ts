// `wakame agent`: the daemon every node runs (as an init service on an AMI, or as a local VM).
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { startApi } from '../api/server.js'
import { mergeConfigSources, resolveDaemonConfig, type ConfigSources, type DaemonConfig } from '../config/daemon-config.js'
import { Daemon } from '../daemon/daemon.js'
import { loadPsk, loadToken, readSecretFile } from '../mesh/keys.js'
import { loadSpecFile } from '../spec/load.js'
import { LocalProvider, startOwnerWatchdog } from '../providers/local/local-provider.js'
import { procStat } from '../providers/local/proc.js'
import { Metrics } from '../metrics/metrics.js'
import type { Provider } from '../providers/provider.js'
import { Ec2SettingsSchema } from '../providers/ec2/settings.js'
import type { Ec2Boot, Ec2Platform } from '../providers/ec2/setup.js'
import { createLogger, type Logger } from '../util/log.js'
import { isSingleExecutable } from './sea-node.js'

/** argv that runs this program again (the bundle under Node, or the single executable). */
export function selfArgv (): string[] {
  // In a single executable, argv[1] is the name it was invoked by ("wakame", "./wakame", a
  // "wakameadm" symlink), not a script: execPath (the real binary) alone runs it again.
  if (isSingleExecutable()) return [process.execPath]
  const script = process.argv[1]
  return script ? [process.execPath, script] : [process.execPath]
}

export async function runAgent (configFile: string | undefined, flags: Record<string, unknown>): Promise<void> {
  const sources = { file: configFile, env: process.env, flags }
  // On EC2 the instance knows who it is (IMDS) and how to join (user-data): that is the base layer.
  const ec2 = await readEc2Platform(sources)
  const cfg = resolveDaemonConfig({ ...sources, ...(ec2 ? { defaults: (await loadEc2()).platformDefaults(ec2.platform, ec2.dataDir) } : {}) })
  if (ec2?.platform.join) await materializeSecrets(cfg, ec2.platform)
  // Secrets first: a node without a valid key or token refuses to start before touching anything.
  loadPsk(cfg.psk_file)
  for (const f of cfg.psk_accept_files) loadPsk(f)
  loadToken(cfg.admin_token_file)
  // The default spec is checked now, not first at launch_cluster.
  if (cfg.spec) loadSpecFile(cfg.spec)
  const logger = createLogger('wakame', cfg.log_level, { node: cfg.node_id })
  // The provider fences its cloud calls on the leader's lease, which the daemon (built next) holds.
  let daemon: Daemon | undefined
  const canAct = () => daemon?.canAct() ?? false
  const boot = cfg.provider === 'ec2' ? await bootEc2Provider(cfg, ec2?.platform, canAct, logger) : undefined
  const provider = boot?.provider ?? makeLocalProvider(cfg, logger)
  daemon = new Daemon({ config: cfg, provider, logger, selfArgv: selfArgv(), metrics: new Metrics(), ...(boot ? { discover: boot.discover } : {}) })
  await daemon.start()
  const started = daemon
  // Spot interruption or scheduled maintenance: the node drains and the leader replaces it.
  const notices = boot?.watchNotices(reason => started.drain(reason))
  const tls = cfg.api_tls_cert_file && cfg.api_tls_key_file ? { cert: readFileSync(cfg.api_tls_cert_file), key: readSecretFile(cfg.api_tls_key_file, { what: 'TLS key file (api_tls_key_file)', code: 'TLS_KEY' }) } : undefined
  const api = await startApi(daemon, { host: cfg.api_bind, port: cfg.api_port, logger: logger.child({ component: 'api' }), tls })
  logger.info({ api: daemon.apiUrl }, 'admin API listening')

  let stopping = false
  const stop = async (signal: string, stopServices: boolean): Promise<void> => {
    if (stopping) return
    stopping = true
    logger.info({ signal, stopServices }, 'stopping')
    notices?.stop()
    await api.close().catch(() => {})
    await started.stop({ stopServices })
    boot?.provider.close()
    process.exit(0)
  }
  // SIGTERM (systemd stop, EC2 shutdown, local terminate) stops the services too; a daemon
  // restart that should leave them serving uses SIGUSR2.
  process.on('SIGTERM', () => { void stop('SIGTERM', true) })
  process.on('SIGINT', () => { void stop('SIGINT', true) })
  process.on('SIGUSR2', () => { void stop('SIGUSR2', false) })

  const owner = Number(process.env.WAKAME_LOCAL_OWNER_PID)
  if (cfg.provider === 'local' && Number.isInteger(owner) && owner > 0) {
    // The demo or test run that owns this local cluster is gone: take this VM (our process group) down.
    startOwnerWatchdog(owner, () => {
      logger.warn({ owner }, 'the owner of this local cluster is gone; stopping this VM')
      // Our group is the VM's: led by its init (vm-init), or by this daemon when started without one.
      const pgid = procStat(process.pid)?.pgrp ?? process.pid
      try { process.kill(-pgid, 'SIGKILL') } catch { process.exit(1) }
    })
  }
}

/**
 * The EC2 provider's modules, loaded only on EC2 nodes: the AWS SDK is most of the bundle and
 * would otherwise slow down every start, the CLI's included.
 */
async function loadEc2 () {
  const [setup, secrets] = await Promise.all([import('../providers/ec2/setup.js'), import('../providers/ec2/secrets.js')])
  return { ...setup, ...secrets }
}

/** With `provider: ec2`: this instance's identity and user-data (fails fast off EC2). */
async function readEc2Platform (sources: ConfigSources): Promise<{ platform: Ec2Platform, dataDir: string } | undefined> {
  const { raw, baseDir } = mergeConfigSources(sources)
  if (raw.provider !== 'ec2') return undefined
  const settings = Ec2SettingsSchema.partial().safeParse(raw.ec2 ?? {})
  const imds = settings.success ? settings.data.imds_endpoint : undefined
  const dataDir = typeof raw.data_dir === 'string' ? resolve(baseDir, raw.data_dir) : '/var/lib/wakame'
  return { platform: await (await loadEc2()).readPlatform(imds !== undefined ? { imds_endpoint: imds } : {}), dataDir }
}

/** Secrets the user-data names in SSM, fetched into the files the config points at (unless overridden). */
async function materializeSecrets (cfg: DaemonConfig, p: Ec2Platform): Promise<void> {
  const client = { region: cfg.ec2?.region ?? p.identity.region, ...(cfg.ec2?.ssm_endpoint !== undefined ? { endpoint: cfg.ec2.ssm_endpoint } : {}) }
  const j = p.join!
  const { materializeSecret, secretFileFor } = await loadEc2()
  if (cfg.psk_file === secretFileFor(j.psk, cfg.data_dir, 'psk')) await materializeSecret(j.psk, cfg.psk_file, client)
  if (cfg.admin_token_file === secretFileFor(j.admin_token, cfg.data_dir, 'admin-token')) await materializeSecret(j.admin_token, cfg.admin_token_file, client)
}

async function bootEc2Provider (cfg: DaemonConfig, platform: Ec2Platform | undefined, canAct: () => boolean, logger: Logger): Promise<Ec2Boot> {
  return await (await loadEc2()).bootEc2({
    settings: cfg.ec2 ?? Ec2SettingsSchema.parse({}),
    ...(platform ? { platform } : {}),
    cluster: cfg.cluster,
    dataDir: cfg.data_dir,
    meshPort: cfg.mesh_port,
    // VMs the leader launches read their secrets from where this node did.
    psk: platform?.join?.psk ?? { file: cfg.psk_file },
    adminToken: platform?.join?.admin_token ?? { file: cfg.admin_token_file },
    ...(cfg.spec ? { spec: cfg.spec } : {}),
    canAct,
    logger
  })
}

function makeLocalProvider (cfg: DaemonConfig, logger: Logger): Provider {
  const owner = Number(process.env.WAKAME_LOCAL_OWNER_PID)
  // Without a shared registry, this node keeps its own (it can still launch local VMs).
  const local = cfg.local ?? { cluster_dir: join(cfg.data_dir, 'local-cluster'), net: '127.0.0', first_host: 2 }
  return new LocalProvider({
    clusterDir: local.cluster_dir,
    net: local.net,
    firstHost: local.first_host,
    meshPort: cfg.mesh_port,
    apiPort: cfg.api_port,
    initArgv: [...selfArgv(), 'vm-init', '--'],
    agentArgv: [...selfArgv(), 'agent'],
    agentConfig: (vm) => localVmConfig(cfg, vm),
    ...(Number.isInteger(owner) && owner > 0 ? { ownerPid: owner } : {}),
    logger: logger.child({ component: 'local-provider' })
  })
}

/** The config of a VM launched by the local provider: this node's, with the VM's identity. */
export function localVmConfig (cfg: Pick<DaemonConfig, 'cluster' | 'psk_file' | 'admin_token_file' | 'mesh_port' | 'api_port' | 'local' | 'spec' | 'log_level' | 'timing'>, vm: { id: string, ip: string, dataDir: string, launch: string, bootstrap: string[], bootstrapExpect: number }): Record<string, unknown> {
  return {
    cluster: cfg.cluster,
    node_id: vm.id,
    psk_file: cfg.psk_file,
    admin_token_file: cfg.admin_token_file,
    bind: vm.ip,
    mesh_port: cfg.mesh_port,
    api_port: cfg.api_port,
    data_dir: vm.dataDir,
    bootstrap: vm.bootstrap,
    bootstrap_expect: vm.bootstrapExpect,
    provider: 'local',
    local: cfg.local,
    ...(cfg.spec ? { spec: cfg.spec } : {}),
    launch: vm.launch,
    log_level: cfg.log_level,
    timing: cfg.timing
  }
}
