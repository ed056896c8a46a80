// Dependency levels: level 0 depends on nothing; level k depends only on levels < k.
// Bring-up runs the levels in order, shutdown in reverse.

export interface DependencyGraph {
  [service: string]: { depends_on: string[] }
}

/** Levels of services, each sorted by name; throws on a cycle (spec validation reports it first). */
export function dependencyLevels (services: DependencyGraph): string[][] {
  const level = new Map<string, number>()
  const visiting = new Set<string>()
  const visit = (name: string): number => {
    const known = level.get(name)
    if (known !== undefined) return known
    if (visiting.has(name)) throw new Error(`dependency cycle through ${name}`)
    visiting.add(name)
    let l = 0
    for (const dep of services[name]?.depends_on ?? []) l = Math.max(l, visit(dep) + 1)
    visiting.delete(name)
    level.set(name, l)
    return l
  }
  for (const name of Object.keys(services)) visit(name)
  const out: string[][] = []
  for (const [name, l] of level) (out[l] ??= []).push(name)
  return out.map(names => names.sort())
}

/** A cycle as a list of names (first repeated at the end), or undefined. */
export function findCycle (services: DependencyGraph): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>()
  const stack: string[] = []
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined
    if (state.get(name) === 'visiting') return [...stack.slice(stack.indexOf(name)), name]
    state.set(name, 'visiting')
    stack.push(name)
    for (const dep of services[name]?.depends_on ?? []) {
      if (!(dep in services)) continue
      const c = visit(dep)
      if (c) return c
    }
    stack.pop()
    state.set(name, 'done')
    return undefined
  }
  for (const name of Object.keys(services).sort()) {
    const c = visit(name)
    if (c) return c
  }
  return undefined
}

/** Services that depend on `service` directly. */
export function dependentsOf (services: DependencyGraph, service: string): string[] {
  return Object.keys(services).filter(n => services[n]!.depends_on.includes(service)).sort()
}
