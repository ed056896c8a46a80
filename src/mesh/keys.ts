// Keys: the cluster's pre-shared key (libp2p private network) and this node's persistent peer key.
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, statSync } from 'node:fs'
import type { PrivateKey } from '@libp2p/interface'
import { writeFileAtomicSync } from '../store/atomic.js'
import { WakameError } from '../util/errors.js'

const PSK_HEADER = '/key/swarm/psk/1.0.0/'

/** A new pre-shared key in the libp2p swarm-key format (what `wakame keygen` writes). */
export function generatePsk (): string {
  return `${PSK_HEADER}\n/base16/\n${randomBytes(32).toString('hex')}\n`
}

/** Read and check a pre-shared key file (the 32-byte key). Refused if missing, malformed, or readable by others. */
export function loadPsk (path: string | undefined): Uint8Array {
  if (!path) throw new WakameError('PSK_MISSING', 'no pre-shared key: set psk_file (create one with `wakame keygen --out FILE`)')
  const text = readSecretFile(path, { what: 'pre-shared key file', code: 'PSK', create: `wakame keygen --out ${path}` }).toString('utf8')
  const lines = text.trim().split(/\r?\n/).map(l => l.trim())
  if (lines.length !== 3 || lines[0] !== PSK_HEADER || lines[1] !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(lines[2] ?? '')) {
    throw new WakameError('PSK_MALFORMED', `pre-shared key file ${path} is malformed: expected "${PSK_HEADER}", "/base16/" and 64 hex digits on three lines (create one with \`wakame keygen\`)`)
  }
  return Uint8Array.from(Buffer.from(lines[2]!, 'hex'))
}

/** This node's libp2p identity, kept in its data directory so its peer id survives restarts. */
export async function loadOrCreatePeerKey (path: string): Promise<PrivateKey> {
  // Imported here: the admin CLI reads its token from this module and needs no libp2p.
  const { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } = await import('@libp2p/crypto/keys')
  if (existsSync(path)) {
    try {
      return privateKeyFromProtobuf(readFileSync(path))
    } catch (err) {
      throw new WakameError('PEER_KEY_CORRUPT', `peer key ${path} is unreadable (${(err as Error).message}); delete it to make a new identity`)
    }
  }
  const key = await generateKeyPair('Ed25519')
  writeFileAtomicSync(path, privateKeyToProtobuf(key), 0o600)
  return key
}

/** An admin token file: one line of at least 32 characters. */
export function loadToken (path: string): string {
  const token = readSecretFile(path, { what: 'admin token file', code: 'TOKEN', create: `wakame token --out ${path}` }).toString('utf8').trim()
  if (token.length < 32 || /\s/.test(token)) throw new WakameError('TOKEN_MALFORMED', `admin token in ${path} must be one line of at least 32 characters without spaces`)
  return token
}

export function generateToken (): string {
  return randomBytes(32).toString('base64url')
}

/** Read a file holding a secret: refused if missing, not a file, or readable by group or others. */
export function readSecretFile (path: string, o: { what: string, code: string, create?: string }): Buffer {
  if (!existsSync(path)) throw new WakameError(`${o.code}_MISSING`, `${o.what} ${path} does not exist${o.create ? ` (create one with \`${o.create}\`)` : ''}`)
  const st = statSync(path)
  if (!st.isFile()) throw new WakameError(`${o.code}_MALFORMED`, `${o.what} ${path} is not a file`)
  const mode = st.mode & 0o777
  if ((mode & 0o077) !== 0) throw new WakameError(`${o.code}_MODE`, `${o.what} ${path} is readable by others (mode ${mode.toString(8)}); run chmod 600 ${path}`)
  return readFileSync(path)
}
