// Local volumes: a directory that outlives every VM, "mounted" on one VM at a time as a symlink in
// the VM's mnt/ directory. attachment.json is the single record of who holds it.
import { lstatSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs'
import { dirname, relative } from 'node:path'
import { LocalProviderError } from './errors.js'
import { checkVolumeName, isVmId, type Registry } from './registry.js'

/** Attaches `name` to `vmId`, taking it over from a VM that is gone. `isRunning` tells live VMs. */
export function attachVolume (reg: Registry, name: string, service: string, vmId: string, isRunning: (id: string) => boolean): void {
  checkVolumeName(name)
  if (reg.readVm(vmId) === undefined) throw new LocalProviderError('LOCAL_UNKNOWN_VM', `cannot attach volume ${name}: no vm ${vmId} in ${reg.clusterDir}`)
  if (!isRunning(vmId)) throw new LocalProviderError('LOCAL_VM_NOT_RUNNING', `cannot attach volume ${name} to ${vmId}: the vm is terminated; attach it to a running vm`)
  mkdirSync(reg.volumeDataDir(name), { recursive: true })
  const current = reg.readAttachment(name)
  if (current !== undefined && current.vm !== vmId) {
    if (isRunning(current.vm)) {
      throw new LocalProviderError('LOCAL_VOLUME_ATTACHED', `volume ${name} is attached to ${current.vm}, which is still running: detach it from ${current.vm} (or terminate ${current.vm}) first`)
    }
    // The holder is gone (crashed or killed): its mount must not linger.
    removeMountLink(reg, current.vm, name)
  }
  if (current?.vm !== vmId || current.service !== service) {
    reg.writeAttachment(name, { vm: vmId, service, attachedAt: new Date().toISOString() })
  }
  ensureMountLink(reg, vmId, name)
}

/** Detaches `name` from `vmId`; nothing to do when it is not attached there. */
export function detachVolume (reg: Registry, name: string, vmId: string): void {
  checkVolumeName(name)
  if (!isVmId(vmId)) return
  removeMountLink(reg, vmId, name)
  if (reg.readAttachment(name)?.vm === vmId) reg.removeAttachment(name)
}

/** Detaches every volume attached to `vmId` (its VM was terminated). */
export function detachAll (reg: Registry, vmId: string): string[] {
  const detached: string[] = []
  for (const name of reg.volumeNames()) {
    if (reg.readAttachment(name)?.vm === vmId) {
      detachVolume(reg, name, vmId)
      detached.push(name)
    }
  }
  return detached
}

export function mountPoint (reg: Registry, name: string, vmId: string): string | undefined {
  try { checkVolumeName(name) } catch { return undefined }
  if (!isVmId(vmId)) return undefined
  const link = reg.mountLink(vmId, name)
  try {
    if (!lstatSync(link).isSymbolicLink()) return undefined
  } catch {
    return undefined
  }
  return reg.readAttachment(name)?.vm === vmId ? link : undefined
}

export function ensureMountLink (reg: Registry, vmId: string, name: string): void {
  const link = reg.mountLink(vmId, name)
  // Relative, so the cluster directory can be moved without breaking mounts.
  const target = relative(dirname(link), reg.volumeDataDir(name))
  mkdirSync(dirname(link), { recursive: true })
  try {
    if (readlinkSync(link) === target) return
    unlinkSync(link)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    // EINVAL: something that is not a symlink sits there; refuse to delete real data.
    if (code === 'EINVAL') throw new LocalProviderError('LOCAL_REGISTRY_CORRUPT', `${link} exists and is not a mount symlink: move it away`)
    if (code !== 'ENOENT') throw err
  }
  symlinkSync(target, link)
}

export function removeMountLink (reg: Registry, vmId: string, name: string): void {
  if (!isVmId(vmId)) return
  const link = reg.mountLink(vmId, name)
  try {
    if (lstatSync(link).isSymbolicLink()) unlinkSync(link)
  } catch {}
}
