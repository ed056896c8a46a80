// Node 20 lacks Promise.withResolvers, which libp2p 3's dependencies call: createLibp2p() throws
// without src/polyfill.ts. These tests remove the native one (on Node 22+ too) to catch a regression.
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { installPromiseWithResolvers } from '../../src/polyfill.js'
import { createMeshNode } from '../../src/mesh/libp2p.js'

const P = Promise as unknown as { withResolvers?: unknown }
const original = P.withResolvers

afterEach(() => {
  Object.defineProperty(Promise, 'withResolvers', { configurable: true, writable: true, value: original })
})

describe('Promise.withResolvers polyfill', () => {
  it('installs itself when the runtime has none, and leaves a native one alone', async () => {
    delete P.withResolvers
    expect(installPromiseWithResolvers()).toBe(true)
    const { promise, resolve } = (Promise as unknown as { withResolvers: <T>() => { promise: Promise<T>, resolve: (v: T) => void } }).withResolvers<number>()
    resolve(42)
    expect(await promise).toBe(42)
    expect(installPromiseWithResolvers()).toBe(false)
  })

  it('lets createLibp2p() start and stop a node with the runtime\'s own withResolvers removed', async () => {
    delete P.withResolvers
    installPromiseWithResolvers()
    const node = await createMeshNode({
      ip: '127.0.0.1',
      port: 0,
      psk: crypto.getRandomValues(new Uint8Array(32)),
      privateKey: await generateKeyPair('Ed25519'),
      topics: ['/t']
    })
    await node.start()
    expect(node.getMultiaddrs().length).toBeGreaterThan(0)
    await node.stop()
  })
})
