// The state file: written atomically, validated on load; a corrupt or truncated file is reported
// and set aside, and the node starts empty (it recovers from its peers) instead of crashing.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { emptyDoc } from '../../src/core/types.js'
import { NodeStore } from '../../src/store/node-store.js'

describe('node store', () => {
  it('saves and loads term, vote and document', () => {
    const dir = mkdtempSync(join(tmpdir(), 'store-'))
    const s = new NodeStore(dir)
    expect(s.load()).toEqual({ state: null })
    const doc = { ...emptyDoc('c'), term: 3, version: 9, voters: ['a'] }
    s.save({ term: 4, votedFor: 'a', accepted: doc })
    expect(new NodeStore(dir).load().state).toEqual({ term: 4, votedFor: 'a', accepted: doc })
    expect(readdirSync(dir)).toEqual(['state.json']) // no temp file left behind
  })

  it('keeps the leading and amnesic marks across a restart (and writes nothing for them when unset)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'store-'))
    const s = new NodeStore(dir)
    s.save({ term: 0, votedFor: null, accepted: null, amnesic: true })
    expect(new NodeStore(dir).load().state).toEqual({ term: 0, votedFor: null, accepted: null, amnesic: true })
    s.save({ term: 2, votedFor: 'a', accepted: null, leading: true })
    expect(new NodeStore(dir).load().state).toEqual({ term: 2, votedFor: 'a', accepted: null, leading: true })
    s.save({ term: 2, votedFor: 'a', accepted: null, leading: false })
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'))).not.toHaveProperty('leading')
  })

  for (const [what, content] of [['truncated', '{"format":1,"term":4,"voted'], ['garbage', '\u0000\u0001not json'], ['the wrong shape', '{"format":1,"term":"four"}']] as const) {
    it(`a ${what} file is reported, set aside, and the node starts empty`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'store-'))
      writeFileSync(join(dir, 'state.json'), content)
      const r = new NodeStore(dir).load()
      expect(r.state).toBeNull()
      expect(r.problem).toMatch(/state\.json is corrupt .*moved to .*recovering from peers/)
      expect(existsSync(join(dir, 'state.json'))).toBe(false)
      const aside = readdirSync(dir).find(f => f.startsWith('state.json.corrupt-'))!
      expect(readFileSync(join(dir, aside), 'utf8')).toBe(content)
    })
  }
})
