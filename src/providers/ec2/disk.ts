// The node side of a volume: find its disk, check for a filesystem, format (only an empty disk),
// mount and unmount. Two implementations: Linux commands (run without a shell), and directories
// for tests (the fake EC2 makes each attached volume a directory under the instance's device root).
//
// Finding the disk (case 07): AttachVolume asks for /dev/sdf, but a Nitro instance shows an NVMe
// disk (/dev/nvme1n1) whose serial is the volume id without its dash, linked by udev as
// /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123…; a Xen instance shows /dev/xvdf. The
// volume id is tried first (it cannot point at another volume), the Xen names after.
import { execFile } from 'node:child_process'
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmdirSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { Ec2ProviderError } from './errors.js'

export interface DiskOps {
  /**
   * The device of an attached volume, or undefined when it is not there (yet). `device` is the
   * name given to AttachVolume (/dev/sdf).
   */
  findDevice: (volumeId: string, device?: string) => string | undefined
  /** True when the disk holds a filesystem, or anything else (a partition table): never formatted then. */
  hasFilesystem: (dev: string) => Promise<boolean>
  /** Creates a filesystem; only ever called after hasFilesystem said false. */
  format: (dev: string, label: string) => Promise<void>
  mount: (dev: string, dir: string) => Promise<void>
  unmount: (dir: string) => Promise<void>
  /** Synchronous: the daemon's heartbeat asks which volumes are mounted. */
  isMounted: (dir: string) => boolean
}

/** udev's name for an EBS volume on Nitro (the NVMe serial is the volume id without its dash). */
export function nvmeByIdName (volumeId: string): string {
  return `nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`
}

/** Xen names for the device asked for: /dev/sdf shows up as /dev/xvdf (or, on old kernels, /dev/sdf). */
export function xenNames (device: string | undefined): string[] {
  if (device === undefined) return []
  const m = /^\/dev\/(?:sd|xvd)([a-z]{1,2})$/.exec(device)
  return m === null ? [] : [`xvd${m[1]!}`, `sd${m[1]!}`]
}

function present (path: string): boolean {
  try { lstatSync(path); return existsSync(path) } catch { return false }
}

/** NVMe by-id link, then (Linux) the controllers' serials in sysfs, then the Xen names. */
function findIn (devRoot: string, volumeId: string, device: string | undefined, sysRoot?: string): string | undefined {
  const byId = join(devRoot, 'disk', 'by-id', nvmeByIdName(volumeId))
  if (present(byId)) return byId
  if (sysRoot !== undefined) {
    // Without udev's by-id links (minimal images), the namespace's controller still has the serial.
    const serial = volumeId.replace('-', '')
    let names: string[] = []
    try { names = readdirSync(join(sysRoot, 'block')).filter(n => /^nvme\d+n\d+$/.test(n)) } catch {}
    for (const n of names) {
      try {
        if (readFileSync(join(sysRoot, 'block', n, 'device', 'serial'), 'utf8').trim() === serial) return join(devRoot, n)
      } catch {}
    }
  }
  for (const n of xenNames(device)) if (present(join(devRoot, n))) return join(devRoot, n)
  return undefined
}

interface ExecResult { code: number, stdout: string, stderr: string }

async function run (argv: [string, ...string[]], timeoutMs: number): Promise<ExecResult> {
  return await new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { timeout: timeoutMs, windowsHide: true }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1
      resolve({ code, stdout: String(stdout), stderr: String(stderr || (err?.message ?? '')) })
    })
  })
}

/** Linux: udev links and sysfs to find the disk; blkid, mkfs.ext4, mount and umount (as root). */
export class LinuxDiskOps implements DiskOps {
  constructor (private readonly o: { devRoot?: string, sysRoot?: string, mountsFile?: string } = {}) {}

  findDevice (volumeId: string, device?: string): string | undefined {
    return findIn(this.o.devRoot ?? '/dev', volumeId, device, this.o.sysRoot ?? '/sys')
  }

  async hasFilesystem (dev: string): Promise<boolean> {
    // -p probes the disk itself (no cache). Exit 2: no signature at all; anything else that is not
    // 0 is an error, and an error must never lead to a format.
    const r = await run(['blkid', '-p', dev], 30_000)
    if (r.code === 0) return true
    if (r.code === 2) return false
    throw new Ec2ProviderError('EC2_DEVICE', `blkid ${dev} failed (exit ${r.code}): ${r.stderr.trim()}; not formatting it — check the disk by hand`)
  }

  async format (dev: string, label: string): Promise<void> {
    // No -F: mkfs.ext4 itself refuses a disk that already holds a filesystem.
    const r = await run(['mkfs.ext4', '-q', '-L', label.slice(0, 16), dev], 600_000)
    if (r.code !== 0) throw new Ec2ProviderError('EC2_DEVICE', `mkfs.ext4 ${dev} failed (exit ${r.code}): ${r.stderr.trim()}`)
  }

  async mount (dev: string, dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true })
    const r = await run(['mount', '-o', 'noatime', dev, dir], 60_000)
    if (r.code !== 0) throw new Ec2ProviderError('EC2_DEVICE', `mount ${dev} ${dir} failed (exit ${r.code}): ${r.stderr.trim()}`)
  }

  async unmount (dir: string): Promise<void> {
    if (!this.isMounted(dir)) return
    const r = await run(['umount', dir], 60_000)
    if (r.code !== 0) {
      throw new Ec2ProviderError('EC2_DEVICE', `umount ${dir} failed (exit ${r.code}): ${r.stderr.trim()}; stop what still uses it (fuser -vm ${dir}) and retry`)
    }
  }

  isMounted (dir: string): boolean {
    let text: string
    try { text = readFileSync(this.o.mountsFile ?? '/proc/self/mounts', 'utf8') } catch { return false }
    const want = resolve(dir)
    // Field 2 is the mount point, with spaces and tabs written as octal escapes.
    return text.split('\n').some(line => line.split(' ')[1]?.replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))) === want)
  }
}

const FS_MARKER = '.wakame-filesystem'

/**
 * Directories standing in for disks (tests, with the fake EC2): the device is a directory (the
 * volume's data), "format" writes a marker file into it, "mount" is a symlink from the mount
 * directory to the device's directory.
 */
export class DirDiskOps implements DiskOps {
  /** Devices formatted so far, in order (tests check a re-attached volume is not formatted again). */
  readonly formatted: string[] = []

  constructor (private readonly devRoot: string) {}

  findDevice (volumeId: string, device?: string): string | undefined {
    return findIn(this.devRoot, volumeId, device)
  }

  async hasFilesystem (dev: string): Promise<boolean> {
    return existsSync(join(dev, FS_MARKER))
  }

  async format (dev: string, label: string): Promise<void> {
    if (existsSync(join(dev, FS_MARKER))) throw new Ec2ProviderError('EC2_DEVICE', `${dev} already has a filesystem: refusing to format it`)
    writeFileSync(join(dev, FS_MARKER), `${label}\n`)
    this.formatted.push(dev)
  }

  async mount (dev: string, dir: string): Promise<void> {
    const target = realpathSync(dev)
    mkdirSync(dirname(dir), { recursive: true })
    try {
      const st = lstatSync(dir)
      if (st.isSymbolicLink()) {
        if (readlinkSync(dir) === target) return
        unlinkSync(dir)
      } else if (st.isDirectory()) {
        rmdirSync(dir) // an empty mount point left over; fails (rightly) if it holds files
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    symlinkSync(target, dir)
  }

  async unmount (dir: string): Promise<void> {
    try {
      if (lstatSync(dir).isSymbolicLink()) unlinkSync(dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }

  isMounted (dir: string): boolean {
    try { return lstatSync(dir).isSymbolicLink() && existsSync(dir) } catch { return false }
  }

  /** Whether any mount under `mountRoot` points at this data directory (the fake's "still mounted" check). */
  static mountedData (mountRoot: string, dataDir: string): boolean {
    let names: string[] = []
    try { names = readdirSync(mountRoot) } catch { return false }
    const want = realpathSync(dataDir)
    return names.some(n => {
      try { return realpathSync(join(mountRoot, n)) === want } catch { return false }
    })
  }
}
