// Stopping local VMs: kill a VM's whole process group (daemon and services, as when a machine goes
// down), and the sweep that kills every VM of a cluster directory (demo Ctrl-C, test cleanup).
import { resolve } from 'node:path'
import { waitPortsFree } from './addresses.js'
import { findProcessesByArg, groupAlive, killGroup, procStat, processStartTime } from './proc.js'
import { Registry, type VmRecord } from './registry.js'
import * as volumes from './volumes.js'

/** How long a VM gets to stop after SIGTERM before its group is SIGKILLed. */
export const TERMINATE_GRACE_MS = 3_000

/** A VM counts as running while vm.json says so and its process group still has a live member. */
export function isLive (vm: VmRecord | undefined): boolean {
  return vm !== undefined && vm.state === 'running' && groupAlive(vm.pgid, vm.startTime)
}

/**
 * Kills every VM of a cluster directory, including daemons whose launch was never recorded, and
 * marks them terminated with their volumes detached. Used on the demo's Ctrl-C and in test cleanup.
 * Returns how many VMs were killed.
 */
export async function terminateAll (clusterDir: string): Promise<number> {
  const reg = new Registry(resolve(clusterDir))
  let killed = 0
  await Promise.all(reg.vmIds().map(async id => {
    const vm = reg.readVm(id)
    if (vm === undefined || vm.state === 'terminated') return
    if (groupAlive(vm.pgid, vm.startTime)) {
      await killVm(vm)
      killed++
    }
    reg.writeVm({ ...vm, state: 'terminated', terminatedAt: new Date().toISOString() })
    volumes.detachAll(reg, id)
  }))
  killed += await killStrays(reg.vmIds().map(id => reg.agentConfigPath(id)))
  return killed
}

/** Kills a VM's process group and waits for its ports to be free again (see waitPortsFree). */
export async function killVm (vm: VmRecord): Promise<boolean> {
  if (!await killGroup(vm.pgid, vm.startTime, TERMINATE_GRACE_MS)) return false
  if (vm.ports !== undefined) await waitPortsFree(vm.ip, vm.ports)
  return true
}

/** Kills the process groups of daemons started with one of these config paths. Returns how many. */
export async function killStrays (configPaths: string[]): Promise<number> {
  const leaders = findProcessesByArg(configPaths).filter(pid => procStat(pid)?.pgrp === pid)
  await Promise.all(leaders.map(async pid => await killGroup(pid, processStartTime(pid), TERMINATE_GRACE_MS)))
  return leaders.length
}
