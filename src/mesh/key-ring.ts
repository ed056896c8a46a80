// A private-network connection protector that holds several pre-shared keys, so the cluster key can
// be rotated without downtime. It speaks @libp2p/pnet's protocol (24-byte nonces, then XSalsa20
// keyed by the PSK), but while @libp2p/pnet holds one key, this one sends with its primary key and
// reads with whichever of its keys the peer sends with. It tells them apart by what libp2p always
// sends first on a connection: the multistream-select header. During a rollover every pair of
// nodes shares a key one of them sends with, so nobody is ever cut off (see SECURITY.md).
import type { AbortOptions, ConnectionProtector, Logger, MessageStream, MultiaddrConnection } from '@libp2p/interface'
import { AbstractMultiaddrConnection, byteStream } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'
import xsalsa20 from 'xsalsa20'

const NONCE_LENGTH = 24
/** The first bytes of every libp2p connection, both ways: varint(19) + "/multistream/1.0.0\n". */
const HEADER = new Uint8Array([19, ...new TextEncoder().encode('/multistream/1.0.0\n')])

interface Xor { update: (data: Uint8Array) => Uint8Array }

export class KeyMismatchError extends Error {
  readonly code = 'ERR_PSK_MISMATCH'
  constructor () {
    super('the peer encrypts with none of our pre-shared keys: pre-shared key mismatch (every node must hold a key the others send with)')
    this.name = 'KeyMismatchError'
  }
}

export interface KeyRingInit {
  /** The key this node sends with (32 bytes). */
  primary: Uint8Array
  /** More keys it accepts from peers (a rollover's old or next key). */
  accepted?: Uint8Array[]
  /** The nonce exchange must complete within this long. @default 1000 */
  timeoutMs?: number
}

export function keyRingProtector (init: KeyRingInit): () => ConnectionProtector {
  return () => new KeyRingProtector(init)
}

class KeyRingProtector implements ConnectionProtector {
  readonly [Symbol.toStringTag] = 'wakame-key-ring'
  constructor (private readonly init: KeyRingInit) {}

  async protect (connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const log = (connection as unknown as { log: Logger }).log.newScope('key-ring')
    const localNonce = crypto.getRandomValues(new Uint8Array(NONCE_LENGTH))
    const opts = options ?? { signal: AbortSignal.timeout(this.init.timeoutMs ?? 1_000) }
    const bytes = byteStream(connection as MultiaddrConnection)
    const [remote] = await Promise.all([bytes.read({ bytes: NONCE_LENGTH, ...opts }), bytes.write(localNonce, opts)])
    return new KeyRingStream({
      localNonce,
      remoteNonce: remote.subarray(),
      primary: this.init.primary,
      keys: [this.init.primary, ...(this.init.accepted ?? [])],
      maConn: bytes.unwrap() as MultiaddrConnection,
      log
    })
  }
}

interface KeyRingStreamInit {
  localNonce: Uint8Array
  remoteNonce: Uint8Array
  primary: Uint8Array
  keys: Uint8Array[]
  maConn: MultiaddrConnection
  log: Logger
}

class KeyRingStream extends AbstractMultiaddrConnection {
  private readonly maConn: MultiaddrConnection
  private readonly outboundXor: Xor
  private inboundXor: Xor | undefined
  /** Encrypted bytes received before the peer's key is known. */
  private pending: Uint8Array[] = []
  private pendingLength = 0

  constructor (private readonly k: KeyRingStreamInit) {
    super({ log: k.log, remoteAddr: k.maConn.remoteAddr, direction: k.maConn.direction })
    this.maConn = k.maConn
    this.outboundXor = xsalsa20(k.localNonce, k.primary)
    this.maConn.addEventListener('message', (evt) => {
      const data = evt.data as Uint8Array | Uint8ArrayList
      if (data instanceof Uint8Array) this.receive(data)
      else for (const buf of data) this.receive(buf)
    })
    this.maConn.addEventListener('drain', () => { this.onMuxerDrain() })
    this.maConn.addEventListener('close', (evt) => {
      if (evt.error != null) {
        if (evt.local) this.abort(evt.error)
        else this.onRemoteReset()
      } else {
        this.onTransportClosed()
      }
    })
  }

  private receive (data: Uint8Array): void {
    if (this.inboundXor) { this.onData(this.inboundXor.update(data)); return }
    this.pending.push(data.slice())
    this.pendingLength += data.byteLength
    if (this.pendingLength < HEADER.byteLength) return
    const first = concat(this.pending, this.pendingLength)
    for (const key of this.k.keys) {
      const xor: Xor = xsalsa20(this.k.remoteNonce, key)
      const head = xor.update(first.subarray(0, HEADER.byteLength))
      if (head.every((b, i) => b === HEADER[i])) {
        this.inboundXor = xor
        this.pending = []
        this.onData(new Uint8Array([...head, ...xor.update(first.subarray(HEADER.byteLength))]))
        return
      }
    }
    this.abort(new KeyMismatchError())
  }

  async sendClose (options?: AbortOptions): Promise<void> {
    await this.maConn.close(options)
  }

  sendData (data: Uint8ArrayList): { sentBytes: number, canSendMore: boolean } {
    return { sentBytes: data.byteLength, canSendMore: this.maConn.send(this.outboundXor.update(data.subarray())) }
  }

  sendReset (err: Error): void { this.maConn.abort(err) }
  sendPause (): void { this.maConn.pause() }
  sendResume (): void { this.maConn.resume() }
}

function concat (parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length)
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.byteLength }
  return out
}
