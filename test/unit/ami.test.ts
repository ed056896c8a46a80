// The AMI's files (ami/), checked without AWS: the Packer template with Debian's packer 1.6 (syntax
// and formatting only: it cannot fetch the amazon plugin), the systemd unit with systemd-analyze,
// install.sh into a temporary root (twice: the second run changes nothing), the default config
// against the daemon's schema, the user-data example against the ec2 provider's parser. A missing
// tool skips its test with a note; in CI (.ci/run installs them) it fails instead.
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { DaemonConfigSchema, resolveDaemonConfig } from '../../src/config/daemon-config.js'
import { generatePsk, generateToken } from '../../src/mesh/keys.js'
import { loadYamlWith } from '../../src/util/yaml.js'

const ROOT = resolve(import.meta.dirname, '../..')
const AMI = join(ROOT, 'ami')
const CI = Boolean(process.env.CI)
const isRoot = process.getuid?.() === 0

const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
/** Skipped without the tool, except in CI, where the test runs and says what is missing. */
const withTool = (tool: string, pkg: string) => {
  const present = has(tool)
  return {
    it: present || CI ? it : it.skip,
    need: () => expect(present, `${tool} is missing: apt-get install ${pkg} (.ci/run does)`).toBe(true)
  }
}

function sh (cmd: string, args: string[], opts: { cwd?: string, env?: Record<string, string> } = {}): { code: number, out: string, err: string } {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    encoding: 'utf8',
    timeout: 60_000,
    // CHECKPOINT_DISABLE: packer otherwise asks HashiCorp's server for a newer version.
    env: { ...process.env, CHECKPOINT_DISABLE: '1', ...opts.env }
  })
  return { code: r.status ?? -1, out: r.stdout ?? '', err: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` }
}

const temps: string[] = []
const temp = (prefix: string) => { const d = mkdtempSync(join(tmpdir(), prefix)); temps.push(d); return d }
afterAll(() => { for (const d of temps) rmSync(d, { recursive: true, force: true }) })

const read = (f: string) => readFileSync(join(AMI, f), 'utf8')

/** `Key=value` lines of a systemd unit, values of repeated keys in order. */
function unitKeys (text: string): Map<string, string[]> {
  const m = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const x = /^([A-Za-z]+)=(.*)$/.exec(line.trim())
    if (x) m.set(x[1]!, [...(m.get(x[1]!) ?? []), x[2]!])
  }
  return m
}

describe('Packer template', () => {
  const packer = withTool('packer', 'packer')

  packer.it('passes packer validate -syntax-only and packer fmt -check', () => {
    packer.need()
    // The template alone: plugins.pkr.hcl holds the required_plugins block packer 1.6 does not know.
    const v = sh('packer', ['validate', '-syntax-only', 'wakame.pkr.hcl'], { cwd: AMI })
    expect(v, `${v.out}${v.err}`).toMatchObject({ code: 0 })
    // fmt parses every .pkr.hcl file here (plugins.pkr.hcl too) and fails on any not in canonical form.
    const f = sh('packer', ['fmt', '-check', '-diff', '.'], { cwd: AMI })
    expect(f, `${f.out}${f.err}`).toMatchObject({ code: 0 })
  })

  it('uploads exactly the files install.sh needs, and starts from Debian 12 with IMDSv2 only', () => {
    const tpl = read('wakame.pkr.hcl')
    // The file provisioner's list (the build block's `sources` names the builder, not files).
    const uploaded = /sources\s*=\s*\[([^\]]*)\]\s*destination\s*=\s*"\/tmp\/wakame-ami\/"/.exec(tpl)?.[1]?.match(/"([^"]+)"/g)?.map(s => s.slice(1, -1)) ?? []
    const needed = /for f in ([^;]+); do \[ -f "\$here\/\$f" \]/.exec(read('install.sh'))?.[1]?.trim().split(/\s+/) ?? []
    expect(uploaded.filter(f => f !== 'install.sh').sort()).toEqual([...needed].sort())
    for (const f of uploaded) expect(existsSync(join(AMI, f)), f).toBe(true)
    expect(tpl).toMatch(/source\s+"amazon-ebs"/)
    expect(tpl).toMatch(/name\s+=\s+"debian-12-amd64-\*"/)
    expect(tpl).toMatch(/owners\s+=\s+\["136693071363"\]/) // Debian's AWS account
    expect(tpl).toMatch(/http_tokens\s+=\s+"required"/)
    expect(tpl).toContain('/var/lib/wakame/*') // no node identity baked into the image
    expect(read('plugins.pkr.hcl')).toMatch(/source\s+=\s+"github\.com\/hashicorp\/amazon"/)
  })
})

describe('systemd unit', () => {
  const analyze = withTool('systemd-analyze', 'systemd')
  const unit = read('wakame.service')

  analyze.it('passes systemd-analyze verify, with a security exposure rated OK or better', () => {
    analyze.need()
    // verify checks that ExecStart's program exists: point it at a stand-in in a temporary directory.
    const dir = temp('wakame-unit-')
    const bin = join(dir, 'wakame')
    writeFileSync(bin, '#!/bin/sh\nexit 0\n')
    chmodSync(bin, 0o755)
    const file = join(dir, 'wakame.service')
    writeFileSync(file, unit.replace(/^ExecStart=\/usr\/local\/bin\/wakame /m, `ExecStart=${bin} `))
    const v = sh('systemd-analyze', ['verify', file])
    // Unknown keys and bad values are only warnings (exit 0): any line about our unit fails the test.
    expect(v.code, v.err).toBe(0)
    expect(v.err.split('\n').filter(l => l.includes('wakame.service'))).toEqual([])
    const s = sh('systemd-analyze', ['security', '--offline=true', file])
    const level = /Overall exposure level for wakame\.service: ([\d.]+) (\w+)/.exec(s.out)
    expect(level, s.out + s.err).not.toBeNull()
    expect(Number(level![1])).toBeLessThanOrEqual(5)
  })

  it('restarts the daemon alone, keeps services across its crashes, and is hardened', () => {
    const k = unitKeys(unit)
    const one = (key: string) => k.get(key)?.join(' ')
    expect(one('ExecStart')).toBe('/usr/local/bin/wakame agent --config /etc/wakame/agent.yaml')
    expect(one('User')).toBe('wakame')
    expect(one('Restart')).toBe('on-failure')
    expect(one('KillMode')).toBe('process')
    expect(one('NoNewPrivileges')).toBe('yes')
    expect(one('ProtectSystem')).toBe('strict')
    expect(one('ReadWritePaths')).toBe('/var/lib/wakame')
    expect(one('StateDirectory')).toBe('wakame')
    expect(one('StandardError')).toBe('journal')
    expect(one('MemoryDenyWriteExecute')).toBeUndefined() // V8's JIT needs writable code
  })
})

describe('install.sh', () => {
  it('is POSIX sh', () => {
    const r = sh('sh', ['-n', join(AMI, 'install.sh')])
    expect(r, r.err).toMatchObject({ code: 0 })
  })

  // As root: useradd --prefix and chown. CI runs as root.
  it.skipIf(!isRoot)('installs into a temporary root (DESTDIR), and a second run changes nothing', () => {
    const root = temp('wakame-destdir-')
    const src = temp('wakame-src-')
    // A root with the account files useradd --prefix edits; the host's own are never touched.
    mkdirSync(join(root, 'etc'))
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n')
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\n')
    writeFileSync(join(root, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o640 })
    writeFileSync(join(root, 'etc/gshadow'), 'root:*::\n', { mode: 0o640 })
    const bin = join(src, 'wakame')
    writeFileSync(bin, '#!/bin/sh\necho 9.9.9-test\n')
    chmodSync(bin, 0o755)
    writeFileSync(join(src, 'psk'), generatePsk(), { mode: 0o600 })
    writeFileSync(join(src, 'token'), `${generateToken()}\n`, { mode: 0o600 })
    const hostPasswd = readFileSync('/etc/passwd', 'utf8')
    const install = () => sh('sh', [join(AMI, 'install.sh'), '--binary', bin, '--psk', join(src, 'psk'), '--admin-token', join(src, 'token')], { env: { DESTDIR: root } })

    const first = install()
    expect(first, first.err).toMatchObject({ code: 0 })
    expect(first.out).toContain('creating the wakame user')
    expect(first.out).toContain('done: wakame 9.9.9-test')

    const at = (p: string) => join(root, p)
    const mode = (p: string) => statSync(at(p)).mode & 0o7777
    const passwd = readFileSync(at('etc/passwd'), 'utf8')
    const entry = /^wakame:x:(\d+):(\d+):[^:]*:\/var\/lib\/wakame:\/usr\/sbin\/nologin$/m.exec(passwd)
    expect(entry, passwd).not.toBeNull()
    const [uid, gid] = [Number(entry![1]), Number(entry![2])]
    expect(readFileSync('/etc/passwd', 'utf8')).toBe(hostPasswd)

    const expected: Array<[string, number, 'root' | 'wakame']> = [
      ['usr/local/bin/wakame', 0o755, 'root'],
      ['etc/wakame', 0o755, 'root'],
      ['etc/wakame/agent.yaml', 0o644, 'root'],
      ['etc/wakame/secrets', 0o700, 'wakame'],
      ['etc/wakame/secrets/psk.key', 0o600, 'wakame'],
      ['etc/wakame/secrets/admin.token', 0o600, 'wakame'],
      ['var/lib/wakame', 0o750, 'wakame'],
      ['etc/systemd/system/wakame.service', 0o644, 'root'],
      ['etc/profile.d/wakame.sh', 0o644, 'root']
    ]
    for (const [p, m, owner] of expected) {
      expect(mode(p).toString(8), p).toBe(m.toString(8))
      expect([statSync(at(p)).uid, statSync(at(p)).gid], p).toEqual(owner === 'root' ? [0, 0] : [uid, gid])
    }
    expect(readFileSync(at('usr/local/bin/wakame'), 'utf8')).toBe(readFileSync(bin, 'utf8'))
    expect(readlinkSync(at('usr/local/bin/wakameadm'))).toBe('wakame')
    expect(readFileSync(at('etc/wakame/agent.yaml'), 'utf8')).toBe(read('agent.yaml'))
    expect(readFileSync(at('etc/systemd/system/wakame.service'), 'utf8')).toBe(read('wakame.service'))
    expect(readFileSync(at('etc/wakame/secrets/psk.key'), 'utf8')).toBe(readFileSync(join(src, 'psk'), 'utf8'))
    const wants = at('etc/systemd/system/multi-user.target.wants/wakame.service')
    expect(lstatSync(wants).isSymbolicLink()).toBe(true)
    expect(readlinkSync(wants)).toBe('/etc/systemd/system/wakame.service')
    // Never a secret on stdout.
    for (const s of [readFileSync(join(src, 'token'), 'utf8').trim(), readFileSync(join(src, 'psk'), 'utf8').trim().split('\n').pop()!]) {
      expect(first.out + first.err).not.toContain(s)
    }

    const second = install()
    expect(second, second.err).toMatchObject({ code: 0 })
    expect(second.out.split('\n').filter(l => /installed|creating/.test(l))).toEqual([])
    expect(readFileSync(at('etc/passwd'), 'utf8')).toBe(passwd)
    for (const [p, m] of expected) expect(mode(p).toString(8), p).toBe(m.toString(8))

    // The config is the operator's once installed: kept, with the new default beside it.
    writeFileSync(at('etc/wakame/agent.yaml'), `${read('agent.yaml')}log_level: debug\n`)
    const third = install()
    expect(third, third.err).toMatchObject({ code: 0 })
    expect(readFileSync(at('etc/wakame/agent.yaml'), 'utf8')).toContain('log_level: debug')
    expect(readFileSync(at('etc/wakame/agent.yaml.default'), 'utf8')).toBe(read('agent.yaml'))
  })

  it('refuses to run without a binary, saying how to make one', () => {
    const root = temp('wakame-destdir-')
    const r = sh('sh', [join(AMI, 'install.sh'), '--binary', join(root, 'nope')], { env: { DESTDIR: root } })
    expect(r.code).toBe(1)
    expect(r.err).toContain('npm run build:sea')
  })
})

describe('default config and user-data', () => {
  it('agent.yaml holds only daemon config fields, and starts once the cluster name is given', () => {
    const file = join(AMI, 'agent.yaml')
    const { value } = loadYamlWith(readFileSync(file, 'utf8'), file, DaemonConfigSchema.partial())
    expect(value).toMatchObject({ provider: 'ec2', data_dir: '/var/lib/wakame', psk_file: '/etc/wakame/secrets/psk.key', admin_token_file: '/etc/wakame/secrets/admin.token' })
    // The unit's EnvironmentFile (/etc/wakame/wakame.env) or user-data supplies the cluster.
    const cfg = resolveDaemonConfig({ file, env: { WAKAME_CLUSTER: 'web', WAKAME_BOOTSTRAP_EXPECT: '3' } })
    expect(cfg).toMatchObject({ cluster: 'web', bootstrap_expect: 3, provider: 'ec2' })
    // The state directory is the one the unit lets the daemon write.
    expect(unitKeys(read('wakame.service')).get('ReadWritePaths')).toEqual([cfg.data_dir])
  })

  it('the user-data example holds references to the secrets, never the secrets', async () => {
    const text = read('user-data.example.yaml')
    expect(text.split('\n')[0]).toBe('#wakame')
    expect(text).not.toMatch(/[0-9a-f]{64}/i) // a pre-shared key
    expect(text).not.toMatch(/\/key\/swarm\/psk/)
    // The parser belongs to the ec2 provider; checked against it once it is in the tree.
    const parser = join(ROOT, 'src/providers/ec2/userdata.ts')
    if (!existsSync(parser)) return
    const { parseUserData } = await import(pathToFileURL(parser).href) as { parseUserData: (t: string, f?: string) => Record<string, unknown> }
    expect(parseUserData(text, 'user-data.example.yaml')).toMatchObject({
      cluster: 'web', bootstrap_expect: 3, psk: { ssm: '/wakame/web/psk' }, admin_token: { ssm: '/wakame/web/admin-token' }
    })
  })

  it('the login profile points wakameadm at the node\'s own agent, unless WAKAME_NODE is set', () => {
    const profile = join(AMI, 'wakame-profile.sh')
    const node = sh('sh', ['-c', `unset WAKAME_NODE; . '${profile}'; printf %s "\${WAKAME_NODE:-}"`])
    expect(node.code, node.err).toBe(0)
    const ip = sh('sh', ['-c', 'hostname -I 2>/dev/null | cut -d" " -f1']).out.trim()
    expect(node.out).toBe(ip ? `http://${ip}:7600` : '')
    const kept = sh('sh', ['-c', `. '${profile}'; printf %s "$WAKAME_NODE"`], { env: { WAKAME_NODE: 'http://10.0.0.9:7600' } })
    expect(kept.out).toBe('http://10.0.0.9:7600')
  })
})
