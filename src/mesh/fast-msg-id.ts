// Gossipsub checks a message's signature before it looks the message up in its seen-cache, so
// every duplicate a mesh peer forwards costs an ed25519 verification. A "fast message id" is looked
// up first: this one hashes every field of the message as received, so only a byte-identical copy
// of a message that already passed validation is skipped (a forged copy differs somewhere and is
// verified, and gossipsub records fast ids only for messages whose signature checked out).
import { createHash } from 'node:crypto'
import type { GossipsubOpts } from '@libp2p/gossipsub'

/** The message as gossipsub hands it to `fastMsgIdFn` (its RPC type is not exported by name). */
export type RawGossipMessage = Parameters<GossipsubOpts['fastMsgIdFn']>[0]

export function fastMessageId (msg: RawGossipMessage): string {
  const h = createHash('sha256')
  const field = (b: Uint8Array | undefined): void => {
    // Length-prefixed, and absent ≠ empty, so no two different messages concatenate alike.
    const len = Buffer.alloc(5)
    if (b === undefined) len.writeUInt8(0, 0)
    else { len.writeUInt8(1, 0); len.writeUInt32BE(b.length, 1) }
    h.update(len)
    if (b !== undefined) h.update(b)
  }
  field(Buffer.from(msg.topic, 'utf8'))
  field(msg.from)
  field(msg.seqno)
  field(msg.data)
  field(msg.signature)
  field(msg.key)
  return h.digest('base64')
}
