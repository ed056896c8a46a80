// The on-disk registry of local VMs: the local stand-in for a cloud API, shared by every process
// that uses the same cluster directory (so a new leader sees the VMs an earlier one launched).
//
//   vms/vm-N/        id allocated by mkdir (EEXIST: someone else has it, try N+1)
//     launch.json    the launch request and who is carrying it out; written before the token
//     vm.json        the launched VM; its presence means the launch finished
//     agent.yaml, agent.log, data/, mnt/<volume> -> ../../../volumes/<volume>/data
//   tokens/<token>   names the vm-N a token launched; created atomically with its content (link)
//   volumes/<name>/  data/ and attachment.json
//   addresses/<ip>#<gen>  address leases (see leases.ts)
import { mkdirSync, readFileSync, readdirSync, unlinkSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { createFileExclusiveSync, writeFileAtomicSync } from '../../store/atomic.js'
import { LocalProviderError } from './errors.js'

export interface VmRecord {
  id: string
  ip: string
  pid: number
  /** Equal to pid: the VM's first process (its init, or the daemon itself) leads its own session and process group. */
  pgid: number
  /** Field 22 of /proc/<pid>/stat when launched: tells our daemon from a process that reuses its pid. */
  startTime: number | undefined
  token: string
  /** Launch decision id. */
  launch: string
  /** Ports the daemon listens on at `ip` (mesh, api): terminate waits for the kernel to free them. */
  ports?: number[]
  state: 'running' | 'terminated'
  launchedAt: string
  terminatedAt?: string
}

/** launch.json: enough to finish the launch if the launcher dies before writing vm.json. */
export interface LaunchClaim {
  id: string
  ip: string
  token: string
  decisionId: string
  reason: string
  bootstrap: string[]
  bootstrapExpect: number
  launcherPid: number
  launcherStartTime: number | undefined
  claimedAt: string
}

export interface Attachment {
  vm: string
  service: string
  attachedAt: string
}

const VM_ID = /^vm-(\d+)$/
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export function isVmId (id: string): boolean {
  return VM_ID.test(id)
}

export function checkVolumeName (name: string): void {
  if (!SAFE_NAME.test(name)) {
    throw new LocalProviderError('LOCAL_BAD_NAME', `bad volume name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-' (at most 128, starting with a letter or digit)`)
  }
}

export class Registry {
  readonly vmsDir: string
  readonly tokensDir: string
  readonly volumesDir: string

  /** `clusterDir` must be absolute: VM processes get paths inside it on their command line. */
  constructor (readonly clusterDir: string) {
    this.vmsDir = join(clusterDir, 'vms')
    this.tokensDir = join(clusterDir, 'tokens')
    this.volumesDir = join(clusterDir, 'volumes')
  }

  init (): void {
    for (const d of [this.vmsDir, this.tokensDir, this.volumesDir]) mkdirSync(d, { recursive: true })
  }

  vmDir (id: string): string { return join(this.vmsDir, id) }
  agentConfigPath (id: string): string { return join(this.vmsDir, id, 'agent.yaml') }
  volumeDataDir (name: string): string { return join(this.volumesDir, name, 'data') }
  mountLink (id: string, name: string): string { return join(this.vmsDir, id, 'mnt', name) }

  /** Every vm-N directory, in id order (including ones whose launch never finished). */
  vmIds (): string[] {
    let names: string[]
    try { names = readdirSync(this.vmsDir) } catch { return [] }
    return names.filter(isVmId).sort((a, b) => idNumber(a) - idNumber(b))
  }

  readVm (id: string): VmRecord | undefined {
    return isVmId(id) ? readJson<VmRecord>(join(this.vmDir(id), 'vm.json')) : undefined
  }

  writeVm (vm: VmRecord): void {
    writeFileAtomicSync(join(this.vmDir(vm.id), 'vm.json'), JSON.stringify(vm, null, 2) + '\n')
  }

  readClaim (id: string): LaunchClaim | undefined {
    return readJson<LaunchClaim>(join(this.vmDir(id), 'launch.json'))
  }

  writeClaim (claim: LaunchClaim): void {
    writeFileAtomicSync(join(this.vmDir(claim.id), 'launch.json'), JSON.stringify(claim, null, 2) + '\n')
  }

  removeClaim (id: string): void {
    try { unlinkSync(join(this.vmDir(id), 'launch.json')) } catch {}
  }

  /** Creates the lowest free vm-N directory. mkdir is atomic, so two launchers never share an id. */
  allocateVmDir (): string {
    for (let n = 1; ; n++) {
      try {
        mkdirSync(join(this.vmsDir, `vm-${n}`))
        return `vm-${n}`
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
    }
  }

  tokenPath (token: string): string {
    // Tokens from core/cloud-plan are file-name safe; anything else is hashed rather than trusted.
    const name = SAFE_NAME.test(token) ? token : 'sha256-' + createHash('sha256').update(token).digest('hex')
    return join(this.tokensDir, name)
  }

  /** The vm id a token launched, if any. */
  readToken (token: string): string | undefined {
    try {
      const id = readFileSync(this.tokenPath(token), 'utf8').trim()
      if (!isVmId(id)) throw new LocalProviderError('LOCAL_REGISTRY_CORRUPT', `${this.tokenPath(token)} holds ${JSON.stringify(id)}, not a vm id: remove it to launch anew`)
      return id
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  /**
   * Makes `token` name `vmId` unless it already names a VM: false if someone else got there first.
   * The content is written to a temporary file that is then hard-linked into place, so the token
   * file appears complete or not at all (open with O_EXCL then write would let readers see it empty).
   */
  claimToken (token: string, vmId: string): boolean {
    return createFileExclusiveSync(this.tokenPath(token), vmId + '\n')
  }

  /** Forgets a token, only if it still names `vmId` (a failed launch, so a retry starts afresh). */
  releaseToken (token: string, vmId: string): void {
    if (this.readToken(token) === vmId) {
      try { unlinkSync(this.tokenPath(token)) } catch {}
    }
  }

  volumeNames (): string[] {
    try { return readdirSync(this.volumesDir).filter(n => SAFE_NAME.test(n)) } catch { return [] }
  }

  readAttachment (name: string): Attachment | undefined {
    return readJson<Attachment>(join(this.volumesDir, name, 'attachment.json'))
  }

  writeAttachment (name: string, a: Attachment): void {
    writeFileAtomicSync(join(this.volumesDir, name, 'attachment.json'), JSON.stringify(a, null, 2) + '\n')
  }

  removeAttachment (name: string): void {
    try { unlinkSync(join(this.volumesDir, name, 'attachment.json')) } catch {}
  }

  /** Local stand-ins for Elastic IPs: addresses/<name> holds the VM it is associated with. */
  readAddress (name: string): string | undefined {
    checkVolumeName(name)
    return readJson<{ vm: string }>(join(this.clusterDir, 'addresses', `${name}.json`))?.vm
  }

  writeAddress (name: string, vm: string): void {
    checkVolumeName(name)
    mkdirSync(join(this.clusterDir, 'addresses'), { recursive: true })
    writeFileAtomicSync(join(this.clusterDir, 'addresses', `${name}.json`), JSON.stringify({ vm }) + '\n')
  }
}

function idNumber (id: string): number {
  return Number(VM_ID.exec(id)?.[1] ?? 0)
}

/** Parsed JSON, or undefined when the file does not exist. Files are written atomically, so a parse error is real corruption. */
function readJson<T> (path: string): T | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    return JSON.parse(text) as T
  } catch {
    throw new LocalProviderError('LOCAL_REGISTRY_CORRUPT', `${path} is not valid JSON: fix or remove it`)
  }
}
