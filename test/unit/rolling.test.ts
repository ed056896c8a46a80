// Rolling restarts are decided from gossip alone: one at a time, in id order.
import { describe, expect, it } from 'vitest'
import { mayRestart, type PeerInstance } from '../../src/relations/rolling.js'

const peer = (id: string, state: PeerInstance['state'], viewHash?: string, live = true): PeerInstance => ({ id, state, viewHash, live })
const base = { hash: 'new', waitedMs: 0, maxWaitMs: 60_000 }

describe('rolling restart', () => {
  it('the first instance in id order goes first; the others wait for it', () => {
    const peers = [peer('app-2', 'ONLINE', 'old'), peer('app-10', 'ONLINE', 'old')]
    expect(mayRestart({ ...base, self: 'app-1', peers })).toEqual({ go: true })
    expect(mayRestart({ ...base, self: 'app-2', peers: [peer('app-1', 'ONLINE', 'old'), peer('app-10', 'ONLINE', 'old')] })).toMatchObject({ go: false, waitingFor: 'app-1 to restart first' })
  })

  it('nobody restarts while another instance is mid-restart', () => {
    expect(mayRestart({ ...base, self: 'app-2', peers: [peer('app-1', 'Starting', 'new')] })).toMatchObject({ go: false, waitingFor: 'app-1 (Starting)' })
  })

  it('the next goes once the one before serves the new view again (numeric id order: app-2 before app-10)', () => {
    expect(mayRestart({ ...base, self: 'app-10', peers: [peer('app-1', 'ONLINE', 'new'), peer('app-2', 'ONLINE', 'new')] })).toEqual({ go: true })
    expect(mayRestart({ ...base, self: 'app-10', peers: [peer('app-1', 'ONLINE', 'new'), peer('app-2', 'ONLINE', 'old')] })).toMatchObject({ go: false })
  })

  it('dead or failed peers do not hold anyone up; a lone instance restarts anyway and says so', () => {
    expect(mayRestart({ ...base, self: 'app-2', peers: [peer('app-1', 'ONLINE', 'old', false)] })).toMatchObject({ go: true, note: expect.stringContaining('single instance') })
    expect(mayRestart({ ...base, self: 'app-2', peers: [peer('app-1', 'FAIL', 'old')] })).toMatchObject({ go: true })
    expect(mayRestart({ ...base, self: 'app-1', peers: [] })).toMatchObject({ go: true, note: expect.stringContaining('brief gap') })
  })

  it('a peer that never recovers blocks the others only until maxWaitMs', () => {
    const peers = [peer('app-1', 'Starting', 'new')]
    expect(mayRestart({ ...base, self: 'app-2', peers, waitedMs: 59_000 })).toMatchObject({ go: false })
    expect(mayRestart({ ...base, self: 'app-2', peers, waitedMs: 60_000 })).toMatchObject({ go: true })
  })
})
