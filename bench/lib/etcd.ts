// A 3-member etcd cluster (Debian's etcd-server, defaults: 100 ms heartbeat, 1 s election timeout)
// on 127.0.<net>.2-4, data in the run's temporary directory, driven through its JSON gateway.
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { onCleanup, runDir, trackGroup, untrackGroup } from './cleanup.js'
import { signal, waitUntil } from './proc.js'
import { ensurePackages } from './serf.js'

export interface EtcdMember { name: string, ip: string, pid: number, url: string, args: string[] }

export interface EtcdStatus { memberId: string, leader: string, raftTerm: number }

export async function etcdStatus (m: EtcdMember, timeoutMs = 1_000): Promise<EtcdStatus> {
  const res = await fetch(`${m.url}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(timeoutMs) })
  const j = await res.json() as { header?: { member_id?: string, raft_term?: string }, leader?: string }
  if (!j.header?.member_id) throw new Error(`${m.name}: ${JSON.stringify(j).slice(0, 200)}`)
  return { memberId: String(j.header.member_id), leader: String(j.leader), raftTerm: Number(j.leader ? j.header.raft_term : NaN) }
}

export async function etcdPut (m: EtcdMember, key: string, value: string, timeoutMs = 1_000): Promise<boolean> {
  try {
    const res = await fetch(`${m.url}/v3/kv/put`, {
      method: 'POST',
      body: JSON.stringify({ key: Buffer.from(key).toString('base64'), value: Buffer.from(value).toString('base64') }),
      signal: AbortSignal.timeout(timeoutMs)
    })
    const j = await res.json() as { header?: unknown, error?: string }
    return res.ok && !j.error && j.header !== undefined
  } catch { return false }
}

export interface EtcdCluster {
  members: EtcdMember[]
  leader: () => Promise<EtcdMember>
  restart: (m: EtcdMember) => Promise<void>
  stop: () => Promise<void>
}

export async function startEtcd (net: string): Promise<EtcdCluster> {
  ensurePackages([{ bin: 'etcd', pkg: 'etcd-server' }, { bin: 'etcdctl', pkg: 'etcd-client' }])
  const dir = join(runDir(), 'etcd')
  mkdirSync(dir, { recursive: true })
  const names = [2, 3, 4].map(h => ({ name: `etcd-${h}`, ip: `${net}.${h}` }))
  const initial = names.map(x => `${x.name}=http://${x.ip}:2380`).join(',')
  const members: EtcdMember[] = []
  const launch = (m: EtcdMember): void => {
    const log = openSync(join(dir, `${m.name}.log`), 'a')
    const child = spawn('etcd', m.args, { detached: true, stdio: ['ignore', log, log] })
    closeSync(log)
    child.unref()
    m.pid = child.pid!
    trackGroup(m.pid)
  }
  for (const x of names) {
    const args = [
      '--name', x.name, '--data-dir', join(dir, x.name),
      '--listen-client-urls', `http://${x.ip}:2379`, '--advertise-client-urls', `http://${x.ip}:2379`,
      '--listen-peer-urls', `http://${x.ip}:2380`, '--initial-advertise-peer-urls', `http://${x.ip}:2380`,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `bench-${process.pid}`,
      '--logger', 'zap', '--log-level', 'warn'
    ]
    const m: EtcdMember = { name: x.name, ip: x.ip, pid: 0, url: `http://${x.ip}:2379`, args }
    launch(m)
    members.push(m)
  }
  const stop = onCleanup('etcd', () => { for (const m of members) { signal(-m.pid, 'SIGCONT'); signal(-m.pid, 'SIGKILL'); untrackGroup(m.pid) } })
  const leader = async (): Promise<EtcdMember> => await waitUntil('an etcd leader', async () => {
    for (const m of members) {
      try { const s = await etcdStatus(m); if (s.leader !== 'undefined' && s.leader === s.memberId) return m } catch {}
    }
    return undefined
  }, 30_000, 100)
  const restart = async (m: EtcdMember): Promise<void> => {
    untrackGroup(m.pid)
    launch(m)
    await waitUntil(`${m.name} back`, async () => { const s = await etcdStatus(m); return s.leader !== '0' && Number.isFinite(s.raftTerm) }, 30_000, 100)
  }
  try {
    await waitUntil('etcd healthy', async () => await etcdPut(members[0]!, 'bench/start', '1'), 30_000, 200)
    await leader()
    return { members, leader, restart, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
