// Case 04 on real daemons (127.0.27.x): the leader's VM is cut off from the other voters with
// nftables rules on (saddr, daddr) pairs of their addresses (each VM dials from its own address,
// so this cuts the mesh and nothing else: the test still reaches every node's API from
// 127.0.0.1). The old leader must stop acting, only the majority may act, and after healing there
// is one leader, one db owner and a volume binding that matches. Needs root and nft (CI has both);
// the rules live in a table of this process's own and are removed after the test even when it fails.
import { readFileSync } from 'node:fs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { StatusReport } from '../../src/core/status.js'
import { balancerUrl, requestLoop, settled, type TestCluster } from '../helpers/cluster.js'
import {
  Partition, describeStatus, instancesOf, partitionUnavailable, registryVms, removeStaleTables, settledCluster, sleep,
  statusAt, tokenTerm, volumeAttachment, waitUntil, watchStatus, type Observation
} from '../helpers/faults.js'

const NET = '127.0.27'
/** How long the leader stays cut off (case 04 says 2 minutes; the soak-sized version is not in CI). */
const PARTITION_MS = Number(process.env.WAKAME_PARTITION_MS ?? 20_000)
const SHORT_PARTITION_MS = 8_000
const unavailable = partitionUnavailable()
if (unavailable) console.warn(`skipping the partition test: ${unavailable}`)

let c: TestCluster | undefined
const partition = new Partition()
/** Background loops of the running test, stopped after it whatever happened. */
let stops: Array<() => Promise<unknown>> = []

beforeAll(() => {
  if (unavailable) return
  const stale = removeStaleTables()
  if (stale.length > 0) console.log(`removed nft tables left by earlier runs: ${stale.join(', ')}`)
})
afterEach(async () => {
  // Rules first: a cut mesh must never outlive its test, whatever happened.
  if (!unavailable) partition.heal()
  await Promise.all(stops.map(async stop => await stop()))
  stops = []
  await c?.cleanup()
  c = undefined
})
afterAll(() => { if (!unavailable) partition.heal() })

describe('partition', () => {
  // Longer than the failure detector (dead after 4 s) and the leader's dead-node grace (10 s): the
  // majority replaces the cut-off node (and terminates its VM) before the heal.
  it.skipIf(unavailable !== undefined)(`the leader cut off for ${PARTITION_MS / 1000} s stops acting; the majority leads; one leader and one db owner after healing`, async () => {
    await partitionScenario(PARTITION_MS, { rejoin: false })
  })
  // Shorter than the grace: the old leader is still there when the rules go, and comes back as a
  // follower with its VM and db. (This failed until nodes kept redialling members they hold dead:
  // after the heal neither side heard the other again, and the majority terminated the old leader.)
  it.skipIf(unavailable !== undefined)(`the leader cut off for ${SHORT_PARTITION_MS / 1000} s comes back as a follower, keeping its VM and db`, async () => {
    await partitionScenario(SHORT_PARTITION_MS, { rejoin: true })
  })
})

async function partitionScenario (partitionMs: number, opts: { rejoin: boolean }): Promise<void> {
  const cl = await settledCluster(NET, x => { c = x })
  const s0 = await cl.status()
  const old = s0.leader!
  const oldTerm = s0.term
  const committedBefore = s0.committed!
  const oldIp = cl.vm(old).ip
  const others = s0.nodes.filter(n => n.id !== old)
  const dbNode = instancesOf(s0, 'db')[0]!.node
  const lbNode = instancesOf(s0, 'lb')[0]!.node
  console.log(`before: ${describeStatus(s0)}; cutting ${old} (${oldIp}; db on ${dbNode}, lb on ${lbNode}) from ${others.map(n => `${n.id} (${n.ip})`).join(', ')}`)
  const vmsBefore = new Map(registryVms(cl).map(v => [v.id, v]))

  // Everything every node says during the partition, to check afterwards who acted.
  const log: Observation[] = []
  const apis = Object.fromEntries(s0.nodes.map(n => [n.id, cl.api(n.id)]))
  const watch = watchStatus(apis, o => { log.push(o) }, 150)
  const loop = requestLoop(new URL('/api', balancerUrl(s0)).toString(), 20)
  stops.push(watch.stop, loop.stop)
  let t0 = 0
  let healedAt = 0
  let proposal: Promise<string> = Promise.resolve('not sent')
  try {
    partition.cut([oldIp], others.map(n => n.ip))
    t0 = Date.now()
    // The old leader is asked for a change it can no longer commit (an operator who still talks to it).
    proposal = fetch(new URL('/v1/services/www/scale', cl.api(old)), {
      method: 'POST', headers: { authorization: `Bearer ${readFileSync(cl.tokenFile, 'utf8').trim()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ count: 2 }), signal: AbortSignal.timeout(partitionMs + 10_000)
    }).then(async res => `HTTP ${res.status} ${await res.text()}`, (err: Error) => `no answer: ${err.message}`)
    // The majority elects a leader of its own, in a higher term.
    const majority = others[0]!.id
    const s1 = await cl.waitFor('a leader on the majority side', s => s.leader !== null && s.leader !== old && s.term > oldTerm, 30_000, cl.api(majority))
    const electedMs = Date.now() - t0
    console.log(`majority leader ${s1.leader} in term ${s1.term} ${electedMs} ms after the cut`)
    // The cut lasts partitionMs of wall time: that is the fault, not a wait for a condition.
    await sleep(Math.max(0, t0 + partitionMs - Date.now()))
    console.log(`rules matched: ${partition.counters().split('\n').length} pairs\n${partition.counters()}`)
  } finally {
    partition.heal()
    healedAt = Date.now()
  }

  // ---- who acted during the partition ----
  const during = log.filter(o => o.at >= t0 && o.at <= healedAt && o.status)
  const fromOld = during.filter(o => o.node === old)
  const fromMajority = during.filter(o => o.node !== old)
  const oldSaidLeader = fromOld.filter(o => o.status!.leader === old)
  const lastOldLeaderAt = Math.max(t0, ...oldSaidLeader.map(o => o.at))
  const oldGoneAt = log.find(o => o.node === old && o.at > t0 && o.error)?.at
  console.log(`${old} answered ${fromOld.length} status polls during the partition; called itself leader until +${lastOldLeaderAt - t0} ms` +
    `${oldGoneAt ? `; its API stopped answering at +${oldGoneAt - t0} ms (VM ${cl.vm(old).state})` : ''}`)
  console.log(`${old}'s view during the partition: ${[...new Set(fromOld.map(o => `leader ${o.status!.leader} term ${o.status!.term} committed ${o.status!.committed?.term}/${o.status!.committed?.version}`))].join(' | ')}`)
  // Nothing the old leader proposed after the cut was committed: no node ever holds a document of
  // the old term newer than the last one committed before the cut.
  const oldTermDocs = during.map(o => o.status!.committed).filter(d => d && d.term === oldTerm && d.version > committedBefore.version)
  expect(oldTermDocs, 'documents of the old term committed after the cut').toEqual([])
  // It stopped acting: once the majority had a leader in a higher term, the old leader's committed
  // document never moved past what it had before the cut.
  for (const o of fromOld) expect(o.status!.committed?.version ?? 0, `${old} committed at +${o.at - t0} ms`).toBeLessThanOrEqual(committedBefore.version)
  // Only the majority acted on the cloud: every VM launched since the cut comes from a decision of a
  // newer term, and no VM of the majority side was terminated.
  const vmsAfter = registryVms(cl)
  for (const v of vmsAfter.filter(v => !vmsBefore.has(v.id))) {
    expect(tokenTerm(v.token, 'e2e'), `${v.id} launched by ${v.token}`).toBeGreaterThan(oldTerm)
  }
  for (const n of others) expect(vmsAfter.find(v => v.id === n.id)?.state, `${n.id} (majority side)`).toBe('running')
  // The majority side kept a leader (of a newer term) throughout, once elected.
  const majorityLeaders = new Set(fromMajority.filter(o => o.status!.leader !== null && o.status!.leader !== old).map(o => `${o.status!.leader}@${o.status!.term}`))
  console.log(`majority side leaders seen: ${[...majorityLeaders].join(', ')}`)
  expect([...majorityLeaders].every(l => Number(l.split('@')[1]) > oldTerm)).toBe(true)

  // The majority side served again on its own (instances of the cut node replaced) at:
  const majoritySettled = fromMajority.find(o => o.status!.leader !== old && settled(o.status!) && !o.status!.services.some(v => v.instances.some(i => i.node === old)))
  console.log(`majority side settled without ${old} ${majoritySettled ? `${majoritySettled.at - t0} ms after the cut` : 'not before the heal'}`)
  const answer = await proposal
  console.log(`scale www 2 sent to ${old} right after the cut: ${answer.slice(0, 200)}`)
  expect(answer).not.toMatch(/^HTTP 200/)

  // ---- after healing: one leader, one db owner, bindings that match ----
  const live = () => registryVms(cl).filter(v => v.state === 'running').map(v => v.id)
  const end = await waitUntil('one leader, settled, on every live node', async () => {
    const ids = live()
    const all: StatusReport[] = await Promise.all(ids.map(async id => await statusAt(cl.api(id))))
    const leaders = new Set(all.map(s => s.leader))
    const docs = new Set(all.map(s => JSON.stringify(s.committed)))
    const s = all.find(x => x.leader !== null && x.answeredBy === x.leader)
    return leaders.size === 1 && docs.size === 1 && s && settled(s) ? { s, ids } : undefined
  }, 60_000, 200)
  const settleMs = Date.now() - healedAt
  await watch.stop()
  // How each side saw the other once the rules were gone.
  const after = log.filter(o => o.at > healedAt && o.status)
  const oldSeenAlive = after.find(o => o.node !== old && o.status!.nodes.find(n => n.id === old)?.status === 'alive')
  const oldSeesLeader = after.find(o => o.node === old && o.status!.leader !== null && o.status!.leader !== old)
  console.log(`after the heal: ${old} seen alive by the majority ${oldSeenAlive ? `+${oldSeenAlive.at - healedAt} ms` : 'never'}; ${old} follows a leader ${oldSeesLeader ? `+${oldSeesLeader.at - healedAt} ms (${oldSeesLeader.status!.leader})` : 'never'}; its VM is ${cl.vm(old).state}`)
  const s2 = end.s
  console.log(`after healing: settled ${settleMs} ms after the rules were removed (${Date.now() - t0} ms after the cut): ${describeStatus(s2)}`)
  expect(end.ids.filter(id => s2.nodes.find(n => n.id === id)?.leader)).toEqual([s2.leader])
  const dbs = instancesOf(s2, 'db').filter(i => i.phase === 'run')
  expect(dbs.length, 'one db owner').toBe(1)
  expect(dbs[0]!.state).toBe('ONLINE')
  const vol = s2.volumes.find(v => v.name === 'db-data')!
  expect(vol.attachedTo).toBe(dbs[0]!.node)
  expect(vol.wantAt).toBe(dbs[0]!.node)
  expect(volumeAttachment(cl, 'db-data'), 'the provider\'s attachment').toBe(dbs[0]!.node)
  // The change sent to the old leader never took effect anywhere.
  expect(s2.services.find(v => v.name === 'www')!.desired).toBe(1)
  const r = await loop.stop()
  const failedAt = r.failures.map(f => Date.parse(f.split(' ')[0]!) - t0)
  console.log(`request loop through ${balancerUrl(s0)}: ${r.ok} ok, ${r.failed} failed` +
    (failedAt.length > 0 ? ` from +${Math.min(...failedAt)} to +${Math.max(...failedAt)} ms after the cut (${[...new Set(r.failures.map(f => f.split(' ').slice(1).join(' ').slice(0, 60)))].slice(0, 3).join(' | ')})` : ''))
  const api = await (await fetch(new URL('/api', balancerUrl(s2)))).json() as { hits: number }
  expect(api.hits).toBeGreaterThan(0)
  if (opts.rejoin) {
    // Healed within the leader's dead-node grace: the old leader is back as a follower, its VM and
    // its db (with the volume) stay where they were.
    expect(cl.vm(old).state, `${old}'s VM`).toBe('running')
    expect(oldSeenAlive, `${old} seen alive again by the majority`).toBeDefined()
    expect(s2.nodes.find(n => n.id === old)?.status).toBe('alive')
    expect(dbs[0]!.node, 'the db did not move').toBe(dbNode)
  }
}
