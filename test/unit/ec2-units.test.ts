// The EC2 provider's pure parts: user-data format, error mapping, tokens, the rate limit, and the
// disk lookups (NVMe by-id, NVMe serial in sysfs, Xen names) and mount table parsing.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { TokenBucket } from '../../src/providers/ec2/api.js'
import { LinuxDiskOps, nvmeByIdName, xenNames } from '../../src/providers/ec2/disk.js'
import { isTransient, mapAwsError } from '../../src/providers/ec2/errors.js'
import { deriveToken, fingerprint, launchOrder } from '../../src/providers/ec2/launch.js'
import { launchUserData, parseUserData, renderUserData } from '../../src/providers/ec2/userdata.js'
import { InputError } from '../../src/util/errors.js'

const dirs: string[] = []
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }) })
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'wakame-ec2-')); dirs.push(d); return d }

describe('user-data', () => {
  const base = { cluster: 'web', psk: { file: '/etc/wakame/psk' }, admin_token: { ssm: '/wakame/web/token' } }

  it('renders and parses back; launches carry the decision and sorted peers', () => {
    const text = launchUserData(base)({ decisionId: 'l-7', bootstrap: ['10.0.0.9:7610', '10.0.0.2:7610', '10.0.0.9:7610'], bootstrapExpect: 0 })
    expect(text.startsWith('#wakame\n')).toBe(true)
    expect(parseUserData(text)).toEqual({ version: 1, cluster: 'web', bootstrap: ['10.0.0.2:7610', '10.0.0.9:7610'], bootstrap_expect: 0, psk: { file: '/etc/wakame/psk' }, admin_token: { ssm: '/wakame/web/token' }, launch: 'l-7' })
    // JSON is accepted too (YAML 1.2 reads it).
    expect(parseUserData(JSON.stringify({ ...base, bootstrap_expect: 3 }))).toMatchObject({ cluster: 'web', bootstrap_expect: 3, bootstrap: [] })
  })

  it('is parsed strictly, with the line and a suggestion', () => {
    const err = (text: string): string => { try { parseUserData(text); return '' } catch (e) { expect(e).toBeInstanceOf(InputError); return (e as Error).message } }
    expect(err('cluster: web\npsk: {file: /p}\nadmin_token: {file: /t}\nbootstrap_expects: 3\n')).toMatch(/user-data:4:1: bootstrap_expects: unknown field "bootstrap_expects"; did you mean "bootstrap_expect"\?/)
    expect(err('cluster: web\npsk: /etc/psk\nadmin_token: {file: /t}\n')).toMatch(/psk: either \{file: PATH\} or \{ssm: PARAMETER-NAME\}/)
    expect(err('cluster: Web\npsk: {file: /p}\nadmin_token: {file: /t}\n')).toMatch(/cluster: a cluster name is lower-case/)
    expect(err('#!/bin/bash\necho hi\n')).toMatch(/is a script, not wakame settings/)
    expect(err('   \n')).toMatch(/user-data is empty/)
    expect(err('cluster: web\ncluster: web2\n')).toMatch(/duplicate key "cluster"/)
    expect(() => renderUserData({ ...base, bootstrap: Array.from({ length: 60 }, (_x, i) => `${'h'.repeat(300)}${i}:7610`) })).toThrow(/over EC2's 16384/)
  })
})

describe('errors', () => {
  const sdk = (name: string, status?: number): Error => Object.assign(new Error(`${name} message`), { name, $metadata: { httpStatusCode: status } })

  it('maps EC2 answers to retryable or definitive, with what to do', () => {
    const cases: Array<[Error, string, boolean]> = [
      [sdk('RequestLimitExceeded', 503), 'EC2_THROTTLED', true],
      [sdk('InternalError', 500), 'EC2_UNAVAILABLE', true],
      [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'EC2_UNAVAILABLE', true],
      [sdk('TimeoutError'), 'EC2_UNAVAILABLE', true],
      [sdk('InsufficientInstanceCapacity', 500), 'EC2_NO_CAPACITY', false],
      [sdk('UnauthorizedOperation', 403), 'EC2_UNAUTHORIZED', false],
      [sdk('InstanceLimitExceeded', 400), 'EC2_QUOTA', false],
      [sdk('InvalidAMIID.NotFound', 400), 'EC2_BAD_REQUEST', false],
      [sdk('InvalidSubnetID.NotFound', 400), 'EC2_BAD_REQUEST', false],
      [sdk('InvalidInstanceID.NotFound', 400), 'EC2_FAILED', true],
      [sdk('InvalidParameterValue', 400), 'EC2_BAD_REQUEST', false],
      [sdk('IncorrectState', 400), 'EC2_BUSY', true],
      [sdk('SomethingNew', 503), 'EC2_UNAVAILABLE', true]
    ]
    for (const [err, code, retryable] of cases) expect(mapAwsError(err, 'X'), err.name).toMatchObject({ code, retryable, awsCode: err.name })
    expect(mapAwsError(sdk('UnauthorizedOperation', 403), 'RunInstances').message).toMatch(/^RunInstances: UnauthorizedOperation: .*IAM policy in the README/)
    expect(isTransient(sdk('InsufficientInstanceCapacity', 500))).toBe(false)
    expect(isTransient(sdk('InvalidParameterValue', 400))).toBe(false)
  })
})

describe('tokens and order', () => {
  it('derived tokens are deterministic, distinct and at most 64 characters', () => {
    const t = 'wakame-' + 'c'.repeat(40) + '-12-l-123456789'
    expect(t.length).toBeGreaterThan(60)
    const a = deriveToken(t, 'subnet:subnet-1')
    expect(a).toBe(deriveToken(t, 'subnet:subnet-1'))
    expect(a).not.toBe(deriveToken(t, 'subnet:subnet-2'))
    expect(a.length).toBeLessThanOrEqual(64)
    expect(fingerprint({ b: 1, a: [{ y: 2, x: 1 }] })).toBe(fingerprint({ a: [{ x: 1, y: 2 }], b: 1 }))
  })

  it('launch order rotates by decision (spreading over subnets) and is stable per decision', () => {
    const subnets = ['s-a', 's-b', 's-c']
    const firsts = new Set(Array.from({ length: 30 }, (_x, i) => launchOrder(`l-${i}`, subnets)[0]))
    expect(firsts).toEqual(new Set(subnets))
    expect(launchOrder('l-4', subnets)).toEqual(launchOrder('l-4', subnets))
    expect([...launchOrder('l-4', subnets)].sort()).toEqual(subnets)
  })

  it('the token bucket lets a burst through, then one call per 1/rate seconds', async () => {
    let now = 0
    const clock = { now: () => now, sleep: async (ms: number) => { now += ms } }
    const bucket = new TokenBucket({ burst: 3, perSecond: 2 }, clock)
    const at: number[] = []
    for (let i = 0; i < 6; i++) { await bucket.take(); at.push(now) }
    expect(at).toEqual([0, 0, 0, 500, 1000, 1500])
  })
})

describe('disk lookups', () => {
  const vol = 'vol-0123456789abcdef0'

  it('finds an NVMe disk by its by-id link, else by the serial in sysfs, else the Xen name', () => {
    const dev = join(tmp(), 'dev')
    const sys = join(tmp(), 'sys')
    mkdirSync(join(dev, 'disk', 'by-id'), { recursive: true })
    const linux = new LinuxDiskOps({ devRoot: dev, sysRoot: sys })
    expect(linux.findDevice(vol, '/dev/sdf')).toBeUndefined()
    // Xen.
    writeFileSync(join(dev, 'xvdf'), '')
    expect(linux.findDevice(vol, '/dev/sdf')).toBe(join(dev, 'xvdf'))
    // Nitro without udev links: the serial says which namespace it is.
    writeFileSync(join(dev, 'nvme2n1'), '')
    mkdirSync(join(sys, 'block', 'nvme2n1', 'device'), { recursive: true })
    writeFileSync(join(sys, 'block', 'nvme2n1', 'device', 'serial'), 'vol0123456789abcdef0      \n')
    expect(linux.findDevice(vol, '/dev/sdf')).toBe(join(dev, 'nvme2n1'))
    // Nitro with udev: the by-id link.
    symlinkSync('../../nvme2n1', join(dev, 'disk', 'by-id', nvmeByIdName(vol)))
    expect(linux.findDevice(vol, '/dev/sdf')).toBe(join(dev, 'disk', 'by-id', 'nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0'))
    expect(xenNames('/dev/sdf')).toEqual(['xvdf', 'sdf'])
    expect(xenNames('/dev/xvdba')).toEqual(['xvdba', 'sdba'])
    expect(xenNames('/dev/nvme1n1')).toEqual([])
  })

  it('reads the mount table (octal escapes included)', () => {
    const d = tmp()
    const mounts = join(d, 'mounts')
    writeFileSync(mounts, '/dev/nvme1n1 /var/lib/wakame/volumes/db ext4 rw,noatime 0 0\n/dev/xvdg /mnt/with\\040space ext4 rw 0 0\n')
    const linux = new LinuxDiskOps({ mountsFile: mounts })
    expect(linux.isMounted('/var/lib/wakame/volumes/db')).toBe(true)
    expect(linux.isMounted('/var/lib/wakame/volumes/db/')).toBe(true)
    expect(linux.isMounted('/mnt/with space')).toBe(true)
    expect(linux.isMounted('/var/lib/wakame/volumes/www')).toBe(false)
  })
})
