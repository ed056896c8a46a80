// Property-based fuzz (fast-check) of the two parsers that take input from outside: the spec loader
// (YAML from an operator or the API) and the gossip decoder (bytes from any peer holding the key).
// Neither may crash or hang on anything: the spec loader answers a spec or an InputError naming the
// file; the decoder answers a value or a reason, and what it accepts survives a round trip.
import { readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import fc from 'fast-check'
import { stringify } from 'yaml'
import { describe, expect, it } from 'vitest'
import { decodeControl, decodeHeartbeat, encode } from '../../src/mesh/codec.js'
import { loadSpecText } from '../../src/spec/load.js'
import { InputError } from '../../src/util/errors.js'
import type { Heartbeat } from '../../src/core/types.js'
import { EXAMPLE_SPEC } from '../helpers/cluster.js'

const example = readFileSync(EXAMPLE_SPEC, 'utf8')
const dir = dirname(EXAMPLE_SPEC)
const RUNS = Number(process.env.WAKAME_FUZZ_RUNS ?? 400)
/** Enough time for RUNS cases on a slow machine (more runs: WAKAME_FUZZ_RUNS=5000). */
const TIMEOUT = 20_000 + RUNS * 60

/** Load, and require either a spec or an InputError whose every problem names the file. */
function loadsOrExplains (text: string): void {
  try {
    loadSpecText(text, 'fuzz.yaml', dir)
  } catch (err) {
    if (!(err instanceof InputError)) throw new Error(`not an InputError: ${(err as Error).stack}\n--- input ---\n${text.slice(0, 500)}`)
    expect(err.problems.length).toBeGreaterThan(0)
    for (const p of err.problems) {
      expect(p.file).toBe('fuzz.yaml')
      expect(p.message.length).toBeGreaterThan(0)
    }
  }
}

/** The example spec with a few characters replaced, inserted or removed at random places. */
const mutated = (base: string) => fc.array(fc.tuple(fc.nat({ max: base.length }), fc.nat({ max: 3 }), fc.string({ maxLength: 4, unit: fc.constantFrom(' ', '\t', ':', '-', '[', ']', '{', '}', '"', "'", '\n', '#', '&', '*', '!', '|', '>', '%', '@', '`', 'a', '0', '\\\\', '\u0000', '\u2028') })), { minLength: 1, maxLength: 6 })
  .map(edits => edits.reduce((s, [at, del, ins]) => s.slice(0, at) + ins + s.slice(at + del), base))

describe('spec loader fuzz', () => {
  it('the example itself loads (so the mutations below start from a valid spec)', () => {
    expect(loadSpecText(example, 'fuzz.yaml', dir).services.db).toBeDefined()
  })

  it('never crashes on arbitrary text', () => {
    fc.assert(fc.property(fc.string({ maxLength: 400 }), loadsOrExplains), { numRuns: RUNS })
  }, TIMEOUT)

  it('never crashes on mutations of the example spec', () => {
    fc.assert(fc.property(mutated(example), loadsOrExplains), { numRuns: RUNS })
  }, TIMEOUT)

  it('never crashes on arbitrary YAML documents, nor on spec-shaped ones with wrong values', () => {
    const value = fc.oneof(fc.string({ maxLength: 12 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', '../../etc/passwd'))
    const tree = fc.letrec(tie => ({
      node: fc.oneof({ depthSize: 'small' }, value, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor', 'services', 'cluster', 'command', 'depends_on', 'min', 'max')), tie('node'), { maxKeys: 5 }))
    })).node
    const specShaped = fc.record({
      cluster: fc.option(fc.dictionary(fc.constantFrom('min_nodes', 'max_nodes', 'max_instances_per_node', 'instance_type', 'zones'), value), { nil: undefined }),
      services: fc.dictionary(fc.oneof(fc.constantFrom('db', 'app', 'www', 'lb', '__proto__', 'constructor'), fc.string({ maxLength: 8 })),
        fc.dictionary(fc.constantFrom('command', 'port', 'depends_on', 'min', 'max', 'volume', 'address', 'health', 'templates', 'on_change', 'balancer', 'env'), fc.oneof(value, fc.array(value, { maxLength: 3 }), tree)), { maxKeys: 5 })
    })
    fc.assert(fc.property(fc.oneof(tree, specShaped), doc => loadsOrExplains(stringify(doc))), { numRuns: RUNS })
  }, TIMEOUT)

  it('duplicate keys, tabs and unknown fields are explained with a line, never accepted', () => {
    const errs = (text: string) => { try { loadSpecText(text, 'x.yaml', dir); return [] } catch (e) { return (e as InputError).problems } }
    expect(errs('services:\n  a: {command: [x]}\n  a: {command: [y]}\n')[0]).toMatchObject({ line: 3 })
    expect(errs('services:\n\ta: {command: [x]}\n')[0]?.line).toBe(2)
    expect(errs('services:\n  a: {command: [x], comand: [y]}\n')[0]?.message).toMatch(/command/)
  })
})

describe('gossip decoder fuzz', () => {
  const hb: Heartbeat = {
    node: 'vm-1', peer: '12D3KooWabc', incarnation: 1, seq: 3, ip: '10.0.0.1', mesh: '/ip4/10.0.0.1/tcp/7610', api: 'http://10.0.0.1:7600',
    load1: 0.5, term: 2, leader: 'vm-1', accepted: { term: 2, version: 4 }, committed: { term: 2, version: 4 }, joining: false, bootstrapExpect: 3,
    instances: { 'app-1': { state: 'ONLINE', port: 8081 } }
  }
  const valid = [encode('c', hb), encode('c', { type: 'vote-req', term: 3, from: 'vm-2', preVote: true, last: null })]

  /** Decoding never throws, and an accepted message decodes to the same thing after re-encoding. */
  function decodesOrRejects (data: Uint8Array): void {
    for (const decode of [decodeHeartbeat, decodeControl]) {
      const r = decode(data, 'c')
      if (r.ok) {
        const again = decode(encode('c', r.value as Heartbeat), 'c')
        expect(again).toEqual(r)
      } else {
        expect(typeof r.reason).toBe('string')
      }
    }
  }

  it('the valid messages decode (so the mutations below start from valid ones)', () => {
    expect(decodeHeartbeat(valid[0]!, 'c').ok).toBe(true)
    expect(decodeControl(valid[1]!, 'c').ok).toBe(true)
  })

  it('never crashes on arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), decodesOrRejects), { numRuns: RUNS * 3 })
  }, TIMEOUT)

  it('never crashes on arbitrary JSON in the envelope, nor on valid messages with bytes flipped', () => {
    const envelope = fc.record({ v: fc.oneof(fc.constant('1.0'), fc.constant('1.7'), fc.string({ maxLength: 5 })), cluster: fc.constantFrom('c', 'd'), body: fc.jsonValue({ maxDepth: 4 }) })
    fc.assert(fc.property(envelope, env => decodesOrRejects(new TextEncoder().encode(JSON.stringify(env)))), { numRuns: RUNS })
    const flipped = fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([base, flips]) => { const b = Uint8Array.from(base); for (const [at, v] of flips) b[at % b.length] = v; return b })
    fc.assert(fc.property(flipped, decodesOrRejects), { numRuns: RUNS })
  }, TIMEOUT)

  it('tolerates fields a newer minor version adds, and drops them', () => {
    const withExtra = new TextEncoder().encode(JSON.stringify({ v: '1.9', cluster: 'c', body: { ...hb, futureField: { x: 1 } } }))
    const r = decodeHeartbeat(withExtra, 'c')
    expect(r.ok).toBe(true)
    expect(r.ok && 'futureField' in r.value).toBe(false)
  })
})
