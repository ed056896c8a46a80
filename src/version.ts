// Replaced at bundle time by build.mjs (esbuild `define`); tests run from source see the fallback.
declare const WAKAME_VERSION: string | undefined

export const VERSION: string = typeof WAKAME_VERSION === 'string' ? WAKAME_VERSION : '0.0.0-dev'

/** Wire protocol major version: a node drops messages of another major version. */
export const PROTOCOL_MAJOR = 1
