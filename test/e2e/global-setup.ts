// Builds the bundle the end-to-end tests run (dist/wakame.mjs), so the e2e project also works alone.
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'

export default function setup (): void {
  const root = resolve(import.meta.dirname, '../..')
  execFileSync(process.execPath, ['build.mjs'], { cwd: root, stdio: 'inherit' })
}
