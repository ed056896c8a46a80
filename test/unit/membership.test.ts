// Failure detection: disconnect → suspect, refused redial → dead at once, silence → dead only after
// the stall bound (a node frozen for less is never evicted).
import { describe, expect, it } from 'vitest'
import { Membership } from '../../src/core/membership.js'
import type { Heartbeat } from '../../src/core/types.js'

const hb = (node: string, seq: number, incarnation = 1): Heartbeat => ({
  node, peer: `p-${node}`, incarnation, seq, ip: '10.0.0.1', mesh: '', api: '', load1: 0, term: 1, leader: null,
  accepted: null, committed: null, joining: false, bootstrapExpect: 0, instances: {}
})

describe('membership', () => {
  it('a node silent for under the stall bound is never declared dead, only suspect', () => {
    const m = new Membership('a')
    m.heartbeat(hb('b', 1), 0)
    for (let t = 100; t < 4_000; t += 100) expect(m.tick(t).filter(c => c.to === 'dead')).toEqual([])
    expect(m.status('b')).toBe('suspect')
    m.heartbeat(hb('b', 2), 3_900)
    expect(m.status('b')).toBe('alive')
  })

  it('silence past the stall bound makes a member dead', () => {
    const m = new Membership('a')
    m.heartbeat(hb('b', 1), 0)
    m.tick(1_000)
    const changes = m.tick(4_000)
    expect(changes).toEqual([expect.objectContaining({ id: 'b', to: 'dead' })])
  })

  it('a disconnect only makes a member suspect; a refused redial makes it dead at once', () => {
    const m = new Membership('a')
    m.heartbeat(hb('b', 1), 0)
    expect(m.disconnected('b', 10)).toMatchObject({ to: 'suspect' })
    expect(m.status('b')).toBe('suspect')
    expect(m.refused('b', 12)).toMatchObject({ to: 'dead', reason: 'connection refused' })
  })

  it('a refused dial of a member heard since it was suspected changes nothing (it came back)', () => {
    const m = new Membership('a')
    m.heartbeat(hb('b', 1), 0)
    m.disconnected('b', 10)
    m.heartbeat(hb('b', 2), 20)
    expect(m.refused('b', 30)).toBeUndefined()
    expect(m.status('b')).toBe('alive')
  })

  it('drops reordered heartbeats; a new incarnation replaces the old one', () => {
    const m = new Membership('a')
    m.heartbeat(hb('b', 5), 0)
    m.heartbeat(hb('b', 3), 10)
    expect(m.get('b')!.hb.seq).toBe(5)
    m.heartbeat(hb('b', 1, 2), 20)
    expect(m.get('b')!.hb.incarnation).toBe(2)
  })

  it('a quiet member is to be probed once per silence; the heard and the dead are not', () => {
    const m = new Membership('a')
    m.heartbeat(hb('b', 1), 0)
    m.heartbeat(hb('c', 1), 0)
    m.heartbeat(hb('c', 2), 900)
    expect(m.takeQuiet(999, 1_000)).toEqual([])
    expect(m.takeQuiet(1_000, 1_000).map(x => x.id)).toEqual(['b'])
    expect(m.takeQuiet(1_500, 1_000)).toEqual([]) // b: already probed in this silence
    expect(m.takeQuiet(1_900, 1_000).map(x => x.id)).toEqual(['c'])
    m.heartbeat(hb('b', 2), 2_000)
    expect(m.takeQuiet(2_999, 1_000)).toEqual([])
    expect(m.takeQuiet(3_000, 1_000).map(x => x.id)).toEqual(['b']) // a new silence
    m.tick(10_000)
    expect(m.status('c')).toBe('dead')
    m.heartbeat(hb('b', 3), 10_000)
    expect(m.takeQuiet(11_000, 1_000).map(x => x.id)).toEqual(['b']) // c is dead: nothing to probe
    m.forgiveStall(500, 11_200) // this node stalled: b's silence moved, it is a new one
    expect(m.takeQuiet(11_200, 1_000)).toEqual([])
    expect(m.takeQuiet(11_500, 1_000).map(x => x.id)).toEqual(['b'])
  })

  it('a dead member that is heard again is alive again', () => {
    const m = new Membership('a')
    m.heartbeat(hb('b', 1), 0)
    m.tick(5_000)
    expect(m.status('b')).toBe('dead')
    m.heartbeat(hb('b', 2), 5_100)
    expect(m.status('b')).toBe('alive')
  })
})
