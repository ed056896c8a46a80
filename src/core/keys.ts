// Records in the cluster document are plain objects keyed by names that come from operators and
// peers. A name like "constructor" would find Object.prototype's member instead of "nothing", so
// every lookup of an outside name goes through `own`, and such names are refused at the edges.

/** The record's own entry for `key`, never an inherited one. */
export function own<T> (rec: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined
}

/** False for names that collide with members every object inherits (constructor, __proto__, toString, ...). */
export function isSafeKey (key: string): boolean {
  return !(key in Object.prototype)
}
