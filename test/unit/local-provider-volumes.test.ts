// Local volumes: a directory outliving every VM, mounted (symlinked) on one VM at a time.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { LocalProvider } from '../../src/providers/local/local-provider.js'
import { Harness, waitFor } from '../fixtures/local-provider/harness.js'

const NET = '127.0.78'
const req = (token: string) => ({ token, decisionId: `d-${token}`, reason: 'test', bootstrap: [] })

let h: Harness
let p: LocalProvider
beforeEach(() => { h = new Harness(NET); p = h.provider() })
afterEach(async () => { await h.cleanup() })

function attachment (name: string): unknown {
  const file = join(h.clusterDir, 'volumes', name, 'attachment.json')
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined
}

describe('volumes', () => {
  it('moves between VMs only through a detach, keeping its content', async () => {
    const a = await p.launch(req('a'))
    const b = await p.launch(req('b'))
    await p.attachVolume('db', 'postgres', a.id)
    await p.attachVolume('db', 'postgres', a.id)
    const mount = p.mountPoint('db', a.id)
    expect(mount).toBe(join(h.vmDir(a.id), 'mnt', 'db'))
    writeFileSync(join(mount!, 'table'), 'rows')
    expect(p.mountPoint('db', b.id)).toBeUndefined()

    await expect(p.attachVolume('db', 'postgres', b.id)).rejects.toMatchObject({ code: 'LOCAL_VOLUME_ATTACHED', message: expect.stringContaining(`volume db is attached to ${a.id}`) })
    // Detaching from a VM that does not hold it changes nothing.
    await p.detachVolume('db', b.id)
    expect(p.mountPoint('db', a.id)).toBe(mount)

    await p.detachVolume('db', a.id)
    await p.detachVolume('db', a.id)
    expect(p.mountPoint('db', a.id)).toBeUndefined()
    expect(existsSync(mount!)).toBe(false)
    expect(attachment('db')).toBeUndefined()

    await p.attachVolume('db', 'postgres', b.id)
    expect(readFileSync(join(p.mountPoint('db', b.id)!, 'table'), 'utf8')).toBe('rows')
    expect(attachment('db')).toMatchObject({ vm: b.id, service: 'postgres' })
  })

  it('is taken over from a VM that died, and detached when its VM is terminated', async () => {
    const a = await p.launch(req('a'))
    const b = await p.launch(req('b'))
    await p.attachVolume('db', 'postgres', a.id)
    const vmA = JSON.parse(readFileSync(join(h.vmDir(a.id), 'vm.json'), 'utf8')) as { pgid: number }
    await h.pids(a.id)
    process.kill(-vmA.pgid, 'SIGKILL')
    await waitFor(async () => (await p.list()).find(v => v.id === a.id)?.state === 'terminated', `${a.id} to be seen dead`)
    await p.attachVolume('db', 'postgres', b.id)
    expect(p.mountPoint('db', a.id)).toBeUndefined()
    expect(existsSync(join(h.vmDir(a.id), 'mnt', 'db'))).toBe(false)
    expect(p.mountPoint('db', b.id)).toBeDefined()

    await p.terminate(b.id)
    expect(attachment('db')).toBeUndefined()
    expect(p.mountPoint('db', b.id)).toBeUndefined()
    expect(existsSync(join(h.clusterDir, 'volumes', 'db', 'data'))).toBe(true)
  })

  it('refuses unknown or terminated VMs and unsafe names', async () => {
    const a = await p.launch(req('a'))
    await expect(p.attachVolume('db', 's', 'vm-42')).rejects.toMatchObject({ code: 'LOCAL_UNKNOWN_VM' })
    await expect(p.attachVolume('../etc', 's', a.id)).rejects.toMatchObject({ code: 'LOCAL_BAD_NAME' })
    expect(p.mountPoint('../etc', a.id)).toBeUndefined()
    await p.terminate(a.id)
    await expect(p.attachVolume('db', 's', a.id)).rejects.toMatchObject({ code: 'LOCAL_VM_NOT_RUNNING' })
  })
})
