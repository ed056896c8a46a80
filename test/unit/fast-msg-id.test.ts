// The fast message id lets gossipsub drop forwarded duplicates before re-checking their signature;
// it must never let a message that differs in any byte pass as a copy of one already validated.
import { describe, expect, it } from 'vitest'
import { fastMessageId, type RawGossipMessage } from '../../src/mesh/fast-msg-id.js'

const b = (s: string) => new TextEncoder().encode(s)
const base: RawGossipMessage = { topic: '/wakame/c/heartbeat/1', from: b('peer'), seqno: b('12345678'), data: b('{"a":1}'), signature: b('sig'), key: b('k') }

describe('fast message id', () => {
  it('is the same for a byte-identical copy (fresh buffers)', () => {
    const copy: RawGossipMessage = { topic: base.topic, from: b('peer'), seqno: b('12345678'), data: b('{"a":1}'), signature: b('sig'), key: b('k') }
    expect(fastMessageId(copy)).toBe(fastMessageId(base))
  })

  it('differs when any one field differs (a forged signature is verified, not skipped)', () => {
    const seen = new Set([fastMessageId(base)])
    const variants: RawGossipMessage[] = [
      { ...base, topic: '/wakame/c/control/1' },
      { ...base, from: b('peeR') },
      { ...base, seqno: b('12345679') },
      { ...base, data: b('{"a":2}') },
      { ...base, signature: b('sih') },
      { ...base, key: b('K') },
      { ...base, key: undefined },
      { ...base, signature: undefined }
    ]
    for (const v of variants) {
      const id = fastMessageId(v)
      expect(seen.has(id), JSON.stringify(v)).toBe(false)
      seen.add(id)
    }
  })

  it('does not confuse where one field ends and the next begins', () => {
    const x = fastMessageId({ ...base, from: b('ab'), seqno: b('c') })
    const y = fastMessageId({ ...base, from: b('a'), seqno: b('bc') })
    expect(x).not.toBe(y)
    // An absent field is not an empty one.
    expect(fastMessageId({ ...base, key: new Uint8Array(0) })).not.toBe(fastMessageId({ ...base, key: undefined }))
  })
})
