// Seeded randomness for the simulator (mulberry32): one seed decides everything, so a failing run
// replays exactly.

export class Rng {
  private a: number
  constructor (seed: number) { this.a = seed >>> 0 }

  /** In [0, 1). */
  next = (): number => {
    this.a = (this.a + 0x6D2B79F5) >>> 0
    let t = this.a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** Integer in [lo, hi]. */
  int (lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)) }
  /** Number in [lo, hi). */
  range (lo: number, hi: number): number { return lo + this.next() * (hi - lo) }
  chance (p: number): boolean { return this.next() < p }
  pick<T> (items: readonly T[]): T { return items[Math.floor(this.next() * items.length)]! }
  /** A new independent generator derived from this one (so adding draws here does not shift it). */
  fork (): Rng { return new Rng(Math.floor(this.next() * 2 ** 32)) }
}
