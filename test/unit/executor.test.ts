// The leader's cloud executor against a scripted provider: what it calls, and what it reports.
import { describe, expect, it } from 'vitest'
import type { Command } from '../../src/core/commands.js'
import { emptyDoc, type ClusterDoc } from '../../src/core/types.js'
import { CloudExecutor } from '../../src/node/executor.js'
import { ProviderError, type Provider } from '../../src/providers/provider.js'
import { silentLogger } from '../../src/util/log.js'

/** A cloud with one volume in zone z-b, attached to `attachedTo`; records every call. */
function cloud (attachedTo: string | null) {
  const calls: string[] = []
  const state = { attachedTo }
  const nodeZones: Record<string, string> = { 'vm-1': 'z-a', 'vm-2': 'z-a', 'vm-3': 'z-b' }
  const provider: Provider = {
    kind: 'local',
    launch: async () => { throw new Error('unexpected') },
    terminate: async () => {},
    list: async () => [],
    attachVolume: async (name, _s, vm) => {
      calls.push(`attach ${name}@${vm}`)
      if (nodeZones[vm] !== 'z-b') throw new ProviderError('InvalidVolume.ZoneMismatch', `${name} is in z-b`, false)
      state.attachedTo = vm
    },
    detachVolume: async (name, vm) => { calls.push(`detach ${name}@${vm}`); if (state.attachedTo === vm) state.attachedTo = null },
    volumeAttachment: async () => state.attachedTo,
    volumeZone: async () => 'z-b',
    associateAddress: async () => {},
    addressAssociation: async () => null,
    addressIp: async () => undefined,
    mountVolume: async () => undefined,
    unmountVolume: async () => {},
    mountedVolumes: () => []
  }
  return { provider, calls, state }
}

function doc (volume: ClusterDoc['volumes'][string], instances: ClusterDoc['instances'] = {}): ClusterDoc {
  return {
    ...emptyDoc('test'),
    term: 1,
    version: 3,
    voters: ['vm-1'],
    nodes: {
      'vm-1': { id: 'vm-1', ip: '10.0.0.1', peer: 'vm-1', zone: 'z-a' },
      'vm-2': { id: 'vm-2', ip: '10.0.0.2', peer: 'vm-2', zone: 'z-a' },
      'vm-3': { id: 'vm-3', ip: '10.0.0.3', peer: 'vm-3', zone: 'z-b' }
    },
    volumes: { [volume.name]: volume },
    instances
  }
}

function executor (provider: Provider) {
  const reports: Command[] = []
  const ex = new CloudExecutor({ self: 'vm-1', provider, logger: silentLogger(), canAct: () => true, report: (c) => reports.push(c), onLaunchFailure: () => {}, bootstrapAddrs: () => [], random: () => 0.5, mountedOn: () => false })
  return { ex, reports }
}

const settle = async () => { for (let i = 0; i < 20; i++) await null }

describe('cloud executor: volumes and zones', () => {
  it('the audit records a volume\'s zone the document does not know (the attach answer that carried it was lost)', async () => {
    const { provider } = cloud('vm-3')
    const { ex, reports } = executor(provider)
    ex.reconcile(doc({ name: 'db-data', service: 'db', attachedTo: 'vm-3', wantAt: 'vm-3' }), 0)
    await settle()
    expect(reports).toEqual([{ type: 'volume-attached', name: 'db-data', node: 'vm-3', zone: 'z-b' }])
  })

  it('an attach to a node in another zone is not attempted: the volume\'s zone is recorded instead', async () => {
    const { provider, calls } = cloud(null)
    const { ex, reports } = executor(provider)
    ex.reconcile(doc({ name: 'db-data', service: 'db', attachedTo: null, wantAt: 'vm-2', zone: 'z-b' }, { 'db-9': { id: 'db-9', service: 'db', node: 'vm-2', slot: 0, phase: 'run', volume: 'db-data' } }), 0)
    await settle()
    expect(calls).toEqual([])
    expect(reports).toEqual([{ type: 'volume-attached', name: 'db-data', node: null, zone: 'z-b' }])
  })

  it('a definitive refusal of an attach (node zone unknown to the document) records what the cloud says', async () => {
    const { provider, calls } = cloud(null)
    const { ex, reports } = executor(provider)
    const d = doc({ name: 'db-data', service: 'db', attachedTo: null, wantAt: 'vm-2', zone: 'z-b' }, { 'db-9': { id: 'db-9', service: 'db', node: 'vm-2', slot: 0, phase: 'run', volume: 'db-data' } })
    delete d.nodes['vm-2']!.zone
    ex.reconcile(d, 0)
    await settle()
    expect(calls).toEqual(['attach db-data@vm-2'])
    expect(reports).toContainEqual({ type: 'volume-attached', name: 'db-data', node: null, zone: 'z-b' })
  })

  it('an attach in the right zone reports the attachment and the zone', async () => {
    const { provider, calls, state } = cloud(null)
    const { ex, reports } = executor(provider)
    ex.reconcile(doc({ name: 'db-data', service: 'db', attachedTo: null, wantAt: 'vm-3' }, { 'db-9': { id: 'db-9', service: 'db', node: 'vm-3', slot: 0, phase: 'run', volume: 'db-data' } }), 100_000)
    await settle()
    expect(calls).toEqual(['attach db-data@vm-3'])
    expect(state.attachedTo).toBe('vm-3')
    expect(reports).toContainEqual({ type: 'volume-attached', name: 'db-data', node: 'vm-3', zone: 'z-b' })
  })
})
