// A minimal MessagePack codec for serf's RPC protocol (maps, strings, integers, booleans, binary,
// arrays, nil, floats). Serf's RPC frames are back-to-back msgpack values with no length prefix,
// so decode() throws Incomplete when the buffer ends mid-value and the caller waits for more.

export class Incomplete extends Error {}

export function encode (v: unknown): Buffer {
  const parts: Buffer[] = []
  const put = (x: unknown): void => {
    if (x === null || x === undefined) { parts.push(Buffer.from([0xc0])); return }
    if (typeof x === 'boolean') { parts.push(Buffer.from([x ? 0xc3 : 0xc2])); return }
    if (typeof x === 'number') {
      if (Number.isInteger(x) && x >= 0 && x < 128) { parts.push(Buffer.from([x])); return }
      if (Number.isInteger(x) && x >= 0 && x <= 0xffffffff) { const b = Buffer.alloc(5); b[0] = 0xce; b.writeUInt32BE(x, 1); parts.push(b); return }
      if (Number.isInteger(x) && x < 0 && x >= -0x80000000) { const b = Buffer.alloc(5); b[0] = 0xd2; b.writeInt32BE(x, 1); parts.push(b); return }
      const b = Buffer.alloc(9); b[0] = 0xcb; b.writeDoubleBE(x, 1); parts.push(b); return
    }
    if (typeof x === 'string') {
      const s = Buffer.from(x, 'utf8')
      if (s.length < 32) parts.push(Buffer.from([0xa0 | s.length]))
      else if (s.length < 256) parts.push(Buffer.from([0xd9, s.length]))
      else { const b = Buffer.alloc(3); b[0] = 0xda; b.writeUInt16BE(s.length, 1); parts.push(b) }
      parts.push(s); return
    }
    if (Buffer.isBuffer(x) || x instanceof Uint8Array) {
      const s = Buffer.from(x)
      if (s.length < 256) parts.push(Buffer.from([0xc4, s.length]))
      else { const b = Buffer.alloc(5); b[0] = 0xc6; b.writeUInt32BE(s.length, 1); parts.push(b) }
      parts.push(s); return
    }
    if (Array.isArray(x)) {
      if (x.length < 16) parts.push(Buffer.from([0x90 | x.length]))
      else { const b = Buffer.alloc(3); b[0] = 0xdc; b.writeUInt16BE(x.length, 1); parts.push(b) }
      for (const e of x) put(e)
      return
    }
    if (typeof x === 'object') {
      const entries = Object.entries(x as Record<string, unknown>).filter(([, val]) => val !== undefined)
      if (entries.length < 16) parts.push(Buffer.from([0x80 | entries.length]))
      else { const b = Buffer.alloc(3); b[0] = 0xde; b.writeUInt16BE(entries.length, 1); parts.push(b) }
      for (const [k, val] of entries) { put(k); put(val) }
      return
    }
    throw new Error(`msgpack: cannot encode ${typeof x}`)
  }
  put(v)
  return Buffer.concat(parts)
}

/** Decodes one value at `pos`; returns it and the position after it. */
export function decode (buf: Buffer, pos = 0): { value: unknown, pos: number } {
  let p = pos
  const need = (n: number): void => { if (p + n > buf.length) throw new Incomplete() }
  const str = (n: number): string => { need(n); const s = buf.toString('utf8', p, p + n); p += n; return s }
  const bin = (n: number): Buffer => { need(n); const s = Buffer.from(buf.subarray(p, p + n)); p += n; return s }
  const arr = (n: number): unknown[] => { const out: unknown[] = []; for (let i = 0; i < n; i++) out.push(one()); return out }
  const map = (n: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {}
    for (let i = 0; i < n; i++) { const k = one(); out[String(k)] = one() }
    return out
  }
  const u = (n: 1 | 2 | 4 | 8): number => {
    need(n)
    const v = n === 1 ? buf.readUInt8(p) : n === 2 ? buf.readUInt16BE(p) : n === 4 ? buf.readUInt32BE(p) : Number(buf.readBigUInt64BE(p))
    p += n
    return v
  }
  const i = (n: 1 | 2 | 4 | 8): number => {
    need(n)
    const v = n === 1 ? buf.readInt8(p) : n === 2 ? buf.readInt16BE(p) : n === 4 ? buf.readInt32BE(p) : Number(buf.readBigInt64BE(p))
    p += n
    return v
  }
  const one = (): unknown => {
    need(1)
    const b = buf[p++]!
    if (b < 0x80) return b
    if (b >= 0xe0) return b - 0x100
    if ((b & 0xf0) === 0x80) return map(b & 0x0f)
    if ((b & 0xf0) === 0x90) return arr(b & 0x0f)
    if ((b & 0xe0) === 0xa0) return str(b & 0x1f)
    switch (b) {
      case 0xc0: return null
      case 0xc2: return false
      case 0xc3: return true
      case 0xc4: return bin(u(1))
      case 0xc5: return bin(u(2))
      case 0xc6: return bin(u(4))
      case 0xca: { need(4); const v = buf.readFloatBE(p); p += 4; return v }
      case 0xcb: { need(8); const v = buf.readDoubleBE(p); p += 8; return v }
      case 0xcc: return u(1)
      case 0xcd: return u(2)
      case 0xce: return u(4)
      case 0xcf: return u(8)
      case 0xd0: return i(1)
      case 0xd1: return i(2)
      case 0xd2: return i(4)
      case 0xd3: return i(8)
      case 0xd9: return str(u(1))
      case 0xda: return str(u(2))
      case 0xdb: return str(u(4))
      case 0xdc: return arr(u(2))
      case 0xdd: return arr(u(4))
      case 0xde: return map(u(2))
      case 0xdf: return map(u(4))
      case 0xd4: need(2); p += 2; return null
      case 0xd5: need(3); p += 3; return null
      case 0xd6: need(5); p += 5; return null
      case 0xd7: need(9); p += 9; return null
      case 0xd8: need(17); p += 17; return null
      case 0xc7: { const n = u(1); need(n + 1); p += n + 1; return null }
      case 0xc8: { const n = u(2); need(n + 1); p += n + 1; return null }
      case 0xc9: { const n = u(4); need(n + 1); p += n + 1; return null }
      default: throw new Error(`msgpack: unknown type byte 0x${b.toString(16)}`)
    }
  }
  const value = one()
  return { value, pos: p }
}
