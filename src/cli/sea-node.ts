// The single executable (scripts/build-sea.mjs) standing in for `node`. The supervisor runs a spec's
// `command: [node, app.mjs]` with the Node that runs wakame (process.execPath, so an AMI needs no
// separate Node); in the single executable that path is wakame itself, started as
// `wakame app.mjs ARGS`. The binary carries a whole Node 24, so it runs the script as node would.
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

/** Running as the single executable (scripts/build-sea.mjs)? node:sea exists from Node 20.12. */
export function isSingleExecutable (): boolean {
  try {
    const sea = process.getBuiltinModule?.('node:sea') as { isSea?: () => boolean } | undefined
    return sea?.isSea?.() === true
  } catch { return false }
}

/** A script name, as `node` takes one: no wakame command ends like this. */
const SCRIPT = /\.(?:js|mjs|cjs)$/

/**
 * Under the single executable, when the first argument names a .js/.mjs/.cjs file: run it with the
 * rest as its arguments (process.argv as under node) and return true. Node's own options
 * (`node --inspect app.js`) are not supported: the first argument must be the script.
 */
export async function runNodeScript (argv: string[], sea = isSingleExecutable()): Promise<boolean> {
  const first = argv[2]
  if (!sea || first === undefined || !SCRIPT.test(first)) return false
  const script = resolve(first)
  if (!existsSync(script) || !statSync(script).isFile()) {
    // As node says it: "unknown command" would send whoever reads a service's log the wrong way.
    console.error(`Error: Cannot find module '${script}' (wakame, standing in for node)`)
    process.exitCode = 1
    return true
  }
  process.argv = [process.execPath, script, ...argv.slice(3)]
  // import() loads ES modules and CommonJS alike, resolving packages from the script's directory
  // (the single executable's own require() knows only Node's builtins).
  await import(pathToFileURL(script).href)
  return true
}
