// `wakame agent`: the daemon every node runs (as an init service on an AMI, or as a local VM).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startApi } from '../api/server.js'
import { resolveDaemonConfig, type DaemonConfig } from '../config/daemon-config.js'
import { Daemon } from '../daemon/daemon.js'
import { loadPsk, loadToken, readSecretFile } from '../mesh/keys.js'
import { loadSpecFile } from '../spec/load.js'
import { LocalProvider, startOwnerWatchdog } from '../providers/local/local-provider.js'
import { procStat } from '../providers/local/proc.js'
import type { Provider } from '../providers/provider.js'
import { WakameError } from '../util/errors.js'
import { createLogger, type Logger } from '../util/log.js'

/** argv that runs this program again (the bundle under Node, or the single executable). */
export function selfArgv (): string[] {
  // In a single executable, argv[1] is the name it was invoked by ("wakame", "./wakame", a
  // "wakameadm" symlink), not a script: execPath (the real binary) alone runs it again.
  if (isSingleExecutable()) return [process.execPath]
  const script = process.argv[1]
  return script ? [process.execPath, script] : [process.execPath]
}

/** Running as the single executable (scripts/build-sea.mjs)? node:sea exists from Node 20.12. */
export function isSingleExecutable (): boolean {
  try {
    const sea = process.getBuiltinModule?.('node:sea') as { isSea?: () => boolean } | undefined
    return sea?.isSea?.() === true
  } catch { return false }
}

export async function runAgent (configFile: string | undefined, flags: Record<string, unknown>): Promise<void> {
  const cfg = resolveDaemonConfig({ file: configFile, env: process.env, flags })
  // Secrets first: a node without a valid key or token refuses to start before touching anything.
  loadPsk(cfg.psk_file)
  for (const f of cfg.psk_accept_files) loadPsk(f)
  loadToken(cfg.admin_token_file)
  // The default spec is checked now, not first at launch_cluster.
  if (cfg.spec) loadSpecFile(cfg.spec)
  const logger = createLogger('wakame', cfg.log_level, { node: cfg.node_id })
  const provider = makeProvider(cfg, logger)
  const daemon = new Daemon({ config: cfg, provider, logger, selfArgv: selfArgv() })
  await daemon.start()
  const tls = cfg.api_tls_cert_file && cfg.api_tls_key_file ? { cert: readFileSync(cfg.api_tls_cert_file), key: readSecretFile(cfg.api_tls_key_file, { what: 'TLS key file (api_tls_key_file)', code: 'TLS_KEY' }) } : undefined
  const api = await startApi(daemon, { host: cfg.api_bind, port: cfg.api_port, logger: logger.child({ component: 'api' }), tls })
  logger.info({ api: daemon.apiUrl }, 'admin API listening')

  let stopping = false
  const stop = async (signal: string, stopServices: boolean): Promise<void> => {
    if (stopping) return
    stopping = true
    logger.info({ signal, stopServices }, 'stopping')
    await api.close().catch(() => {})
    await daemon.stop({ stopServices })
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

function makeProvider (cfg: DaemonConfig, logger: Logger): Provider {
  if (cfg.provider === 'ec2') throw new WakameError('PROVIDER_UNAVAILABLE', 'the ec2 provider is not built yet; use provider: local')
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
