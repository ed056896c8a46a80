// The live status page in a real headless browser (Debian's chromium driven by playwright-core),
// and the event history on real daemons: GET /v1/events, `wakame events`, a restarted daemon keeps
// its log, and after the leader's VM is SIGKILLed the new leader still shows the old one's decisions.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import type { ClusterEvent } from '../../src/events/event.js'
import { BUNDLE, kill, settled, startCluster, type TestCluster } from '../helpers/cluster.js'

const CHROMIUM = '/usr/bin/chromium'
const haveChromium = existsSync(CHROMIUM)
if (!haveChromium) console.warn(`status page browser test skipped: ${CHROMIUM} is missing (apt-get install -y chromium)`)

let c: TestCluster
let browser: Browser | undefined

interface EventsAnswer { answeredBy: string, last: number, events: Array<ClusterEvent & { seq: number }> }
const events = async (api: string, query = ''): Promise<EventsAnswer> => {
  const res = await fetch(`${api}/v1/events${query}`)
  if (!res.ok) throw new Error(`${api}/v1/events${query}: HTTP ${res.status} ${await res.text()}`)
  return await res.json() as EventsAnswer
}
const appCount = (s: { services: Array<{ name: string, current: number }> }): number => s.services.find(v => v.name === 'app')?.current ?? 0

beforeAll(async () => {
  c = await startCluster({ net: '127.0.62' })
  const r = await c.cli('launch_cluster')
  if (r.code !== 0) throw new Error(r.stderr)
  await c.waitFor('all ONLINE on 3 voters', s => settled(s) && s.nodes.filter(n => n.voter).length === 3, 90_000)
}, 120_000)
afterAll(async () => {
  try { await browser?.close() } finally { await c?.cleanup() }
})

describe.skipIf(!haveChromium)('live status page (headless chromium)', () => {
  it('shows a new app instance ONLINE after propagate_service, and its event, without a reload', async () => {
    const { chromium } = await import('playwright-core')
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] })
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', e => errors.push(e.message))
    await page.goto(c.first)
    // The script is running (the server-rendered page says otherwise).
    await page.waitForFunction('document.getElementById("live").textContent.startsWith("live")')
    const s0 = await c.status()
    const before = appCount(s0)
    const rows = page.locator('tr[data-instance^="app-"]')
    await expect.poll(async () => await rows.count(), { timeout: 10_000 }).toBe(before)
    // A reload would lose this: the page must change in place.
    await page.evaluate('window.marker = 42')
    const r = await c.cli('propagate_service', 'app', '--no-wait')
    expect(r.code, r.stderr).toBe(0)
    await page.waitForFunction(`document.querySelectorAll('tr[data-instance^="app-"][data-state="ONLINE"]').length === ${before + 1}`, undefined, { timeout: 60_000 })
    expect(await rows.count()).toBe(before + 1)
    // The operator's command is in the events table, with who asked.
    await page.locator('tr[data-kind="command"]', { hasText: 'propagate_service app' }).first().waitFor({ timeout: 10_000 })
    expect(await page.evaluate('window.marker')).toBe(42)
    // Nodes with the leader marked, and the summary.
    expect(await page.locator('#nodes tr[data-node]').count()).toBe(s0.nodes.length)
    expect(await page.locator('#summary').textContent()).toMatch(/leader vm-\d+ \(term \d+\)/)
    expect(errors).toEqual([])
  })
})

describe('event history', () => {
  it('GET /v1/events: the leader\'s decisions, commands, instance transitions; since and limit; bad input is a 400', async () => {
    const s = await c.waitFor('settled', settled)
    const all = await events(c.first, '?limit=1000')
    expect(all.answeredBy).toBe('vm-1')
    const kinds = new Set(all.events.map(e => e.kind))
    for (const k of ['leader', 'command', 'decision', 'member', 'instance']) expect(kinds, k).toContain(k)
    expect(all.events.some(e => e.kind === 'command' && /^launch_cluster/.test(e.reason) && e.by !== undefined)).toBe(true)
    // Every node logs every instance's transitions, from heartbeats.
    const other = s.nodes.find(n => n.id !== 'vm-1')!.id
    const theirs = await events(c.api(other), '?limit=1000')
    expect(theirs.events.some(e => e.kind === 'instance' && e.to === 'ONLINE' && e.node === other)).toBe(true)
    // Sequence numbers increase; since=<seq> gives only newer ones; limit gives the newest.
    const seqs = all.events.map(e => e.seq)
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
    const mid = seqs[Math.floor(seqs.length / 2)]!
    const newer = await events(c.first, `?since=${mid}&limit=1000`)
    expect(newer.events.length).toBeGreaterThan(0)
    expect(newer.events.every(e => e.seq > mid)).toBe(true)
    expect((await events(c.first, '?limit=3')).events.map(e => e.seq)).toEqual(seqs.slice(-3))
    // since + limit pages forward: the next 3 after seqs[0], and `last` points at the third.
    const page = await events(c.first, `?since=${seqs[0]}&limit=3`)
    expect(page.events.map(e => e.seq)).toEqual(seqs.slice(1, 4))
    expect(page.last).toBe(seqs[3])
    const at = all.events.at(-1)!.at
    expect((await events(c.first, `?since=${encodeURIComponent(at)}`)).events.every(e => e.at >= at)).toBe(true)
    for (const bad of ['?since=yesterday', '?limit=0', '?limit=abc', '?limit=5000', '?since=2026-13-45T99:99:99Z']) {
      const res = await fetch(`${c.first}/v1/events${bad}`)
      expect(res.status, bad).toBe(400)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('INPUT_INVALID')
    }
  })

  it('wakame events: formatted lines, --json, --since; --follow prints what comes next', async () => {
    const text = await c.cli('events')
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toMatch(/^\S+Z t\d+ vm-1\s+command\s+launch_cluster: .* \(by vm-1 from [\d.:a-f]+\)$/m)
    const json = await c.cli('events', '--json', '--since', '1h', '--limit', '5')
    const lines = json.stdout.trim().split('\n').map(l => JSON.parse(l) as ClusterEvent)
    expect(lines.length).toBe(5)
    const bad = await c.cli('events', '--since', 'last tuesday')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--since/)
    // --follow: started now, it prints the next command's event as it happens.
    const last = (await events(c.first, '?limit=1')).last
    const follow = spawn(process.execPath, [BUNDLE, '--node', c.first, 'events', '--follow', '--since', String(last)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    follow.stdout.on('data', (b: Buffer) => { out += b.toString() })
    try {
      // Asked on a follower, which forwards it: the event names the follower.
      const s = await c.status()
      const follower = s.nodes.find(n => n.id !== s.leader && n.status === 'alive')!.id
      const r = await c.cli('--node', c.api(follower), 'scale', 'app', '1', '--no-wait')
      expect(r.code, r.stderr).toBe(0)
      await expect.poll(() => out, { timeout: 15_000 }).toMatch(new RegExp(`command\\s+scale app 1: .*\\(by ${follower} from [\\d.:a-f]+\\)$`, 'm'))
      expect(out).not.toMatch(/launch_cluster/)
    } finally {
      follow.kill('SIGKILL')
    }
  })

  it('a restarted daemon keeps its log; after the leader\'s VM is SIGKILLed, the new leader shows the old leader\'s decisions', async () => {
    const s0 = await c.waitFor('settled', settled)
    const old = s0.leader!
    const followers = s0.nodes.filter(n => n.id !== old && n.status === 'alive').map(n => n.id)
    // A follower's daemon restarted (its VM's init brings it back): same events, same numbers.
    const f = followers[0]!
    const beforeRestart = await events(c.api(f), '?limit=1000')
    kill(c.daemonPid(f), 'SIGKILL')
    await c.waitFor(`${f} back`, s => s.nodes.find(n => n.id === f)?.status === 'alive' && s.answeredBy === f, 30_000, c.api(f))
    const afterRestart = await events(c.api(f), '?limit=1000')
    const kept = new Map(afterRestart.events.map(e => [e.id, e.seq]))
    for (const e of beforeRestart.events) expect(kept.get(e.id), e.id).toBe(e.seq)
    await c.waitFor('settled after the restart', settled)
    // The restarted node must have heard the leader again before the leader dies: a node that never
    // saw it in this incarnation has no "alive" to turn "dead" (CI once killed it ~1 s too early).
    await c.waitFor(`${f} hears ${old} again`, s => settled(s) && s.leader === old && s.nodes.find(n => n.id === old)?.status === 'alive', 30_000, c.api(f))

    // The old leader's decisions as a follower got them: with the committed documents.
    const viaDoc = (await events(c.api(f), '?limit=1000')).events.filter(e => e.node === old)
    expect(viaDoc.filter(e => e.kind === 'decision').length).toBeGreaterThan(5)
    expect(viaDoc.some(e => e.kind === 'command')).toBe(true)
    kill(-c.vm(old).pgid, 'SIGKILL')
    const s1 = await c.waitFor('a new leader', s => s.leader !== null && s.leader !== old, 30_000, c.api(followers[1] ?? f))
    const now = await events(c.api(s1.leader!), '?limit=1000')
    // Every one is there, once, on the new leader and on every other survivor.
    for (const node of followers) {
      const log = node === s1.leader ? now : await events(c.api(node), '?limit=1000')
      const ids = new Set(log.events.map(e => e.id))
      for (const e of viaDoc) expect(ids.has(e.id), `${node}: ${e.id} ${e.reason}`).toBe(true)
      expect(log.events.filter(e => e.id === viaDoc[0]!.id).length).toBe(1)
    }
    // And the new leader logs the election and the old leader's death.
    const oldIsDead = async (): Promise<boolean> => (await events(c.api(s1.leader!), '?limit=1000')).events.some(e => e.kind === 'member' && e.subject === old && e.to === 'dead')
    const deadline = Date.now() + 20_000
    while (!await oldIsDead() && Date.now() < deadline) await new Promise(r => setTimeout(r, 200))
    if (!await oldIsDead()) {
      // Say what the new leader saw of the old one, and what its log holds of it.
      const log = (await events(c.api(s1.leader!), '?limit=1000')).events
      const st = await c.status(c.api(s1.leader!))
      const agentLog = readFileSync(join(c.vmDir(s1.leader!), 'agent.log'), 'utf8').split('\n').filter(l => l.includes(old) || l.includes('stalled')).slice(-30).join('\n')
      throw new Error(`${s1.leader} never logged ${old} dead; its view: ${JSON.stringify(st.nodes.map(n => [n.id, n.status]))}; ${log.length} events, about ${old}: ${JSON.stringify(log.filter(e => e.subject === old || e.kind === 'leader').map(e => [e.seq, e.at, e.node, e.kind, e.subject, e.from, e.to, e.reason]))}\nits log:\n${agentLog}`)
    }
    expect(now.events.some(e => e.kind === 'leader' && e.subject === s1.leader && e.term === s1.term)).toBe(true)
  })
})
