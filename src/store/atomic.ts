// Atomic file replacement: write a temp file, fsync it, rename over the target, fsync the directory.
// A crash leaves either the old or the new content, never a torn file.
import { closeSync, fsyncSync, linkSync, openSync, renameSync, writeSync, unlinkSync } from 'node:fs'
import { writeFile, rename, open, unlink } from 'node:fs/promises'
import { dirname, basename, join } from 'node:path'

let counter = 0
function tempName (path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${++counter}.tmp`)
}

export function writeFileAtomicSync (path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tempName(path)
  const fd = openSync(tmp, 'w', mode)
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data)
    fsyncSync(fd)
  } catch (err) {
    closeSync(fd)
    try { unlinkSync(tmp) } catch {}
    throw err
  }
  closeSync(fd)
  renameSync(tmp, path)
  fsyncDirSync(dirname(path))
}

export async function writeFileAtomic (path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempName(path)
  try {
    await writeFile(tmp, data, { mode })
    const fh = await open(tmp, 'r+')
    try { await fh.sync() } finally { await fh.close() }
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  const dh = await open(dirname(path), 'r')
  try { await dh.sync() } finally { await dh.close() }
}

function fsyncDirSync (dir: string): void {
  const fd = openSync(dir, 'r')
  try { fsyncSync(fd) } finally { closeSync(fd) }
}

/**
 * Create `path` with `data` only if it does not exist; false when it does. The content is written
 * aside and hard-linked into place, so the file never exists without its content, and of several
 * processes racing for the same path exactly one wins.
 */
export function createFileExclusiveSync (path: string, data: string): boolean {
  const tmp = tempName(path)
  writeFileAtomicSync(tmp, data)
  try {
    linkSync(tmp, path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  } finally {
    try { unlinkSync(tmp) } catch {}
  }
}
