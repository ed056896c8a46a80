// libp2p 3's dependencies call Promise.withResolvers (ES2024), which Node 20 lacks: without this,
// createLibp2p() throws. Imported first by every entry point. Guarded, so Node 22+ keeps its own.
// test/unit/polyfill.test.ts deletes the native one and checks that this module restores it.

interface Resolvers<T> {
  promise: Promise<T>
  resolve: (value: T | PromiseLike<T>) => void
  reject: (reason?: unknown) => void
}

export function installPromiseWithResolvers (): boolean {
  const P = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> }
  if (typeof P.withResolvers === 'function') return false
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers<T> (this: PromiseConstructor): Resolvers<T> {
      let resolve!: Resolvers<T>['resolve']
      let reject!: Resolvers<T>['reject']
      const promise = new this<T>((res, rej) => { resolve = res; reject = rej })
      return { promise, resolve, reject }
    }
  })
  return true
}

installPromiseWithResolvers()
