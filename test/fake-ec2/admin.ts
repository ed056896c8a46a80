// The JSON admin endpoint (`/__fake/...`), so a test can drive the fake from another process.
import type { FakeEc2 } from './server.js'
import type { MaintenanceEvent } from './types.js'

/**
 * POST /__fake/faults with one op or an array of ops:
 *   {"op":"throttle","action":"DescribeInstances","count":10}     (count -1: until cleared)
 *   {"op":"internalError","action":"RunInstances","count":1,"afterExecute":true}
 *   {"op":"delay","action":"*","ms":500,"count":3}
 *   {"op":"insufficientCapacity","count":1,"subnetId":"subnet-…"} or {"availabilityZone":"us-east-1a"}
 *   {"op":"rateLimit","action":"*","burst":10,"perSecond":5}
 *   {"op":"notFoundWindow","ms":20000}
 *   {"op":"setMounted","volumeId":"vol-…","mounted":true}
 *   {"op":"spotInterruption","instanceId":"i-…","action":"terminate","inMs":120000}
 *   {"op":"maintenance","instanceId":"i-…","events":[…]}
 *   {"op":"terminate","instanceId":"i-…"}      (out of band, as when EC2 reclaims an instance)
 *   {"op":"clear"}
 * GET /__fake/faults (pending rules), /__fake/calls (the call log), /__fake/state (instances, volumes, addresses).
 */
export function adminRequest (fake: FakeEc2, method: string, path: string, body: string): { status: number, json: unknown } {
  try {
    if (method === 'GET' && path === '/__fake/calls') return { status: 200, json: fake.calls() }
    if (method === 'GET' && path === '/__fake/faults') return { status: 200, json: fake.faults.describe() }
    if (method === 'GET' && path === '/__fake/state') {
      return { status: 200, json: { instances: fake.instances(), volumes: fake.volumes(), addresses: fake.addresses() } }
    }
    if (method === 'POST' && path === '/__fake/faults') {
      const parsed: unknown = JSON.parse(body === '' ? '{}' : body)
      const ops = Array.isArray(parsed) ? parsed : [parsed]
      for (const op of ops) applyOp(fake, op as Record<string, unknown>)
      return { status: 200, json: { ok: true, applied: ops.length } }
    }
    return { status: 404, json: { error: `no admin route ${method} ${path}` } }
  } catch (e) {
    return { status: 400, json: { error: e instanceof Error ? e.message : String(e) } }
  }
}

function str (o: Record<string, unknown>, k: string): string {
  const v = o[k]
  if (typeof v !== 'string') throw new Error(`"${k}" must be a string`)
  return v
}
function num (o: Record<string, unknown>, k: string, dflt?: number): number {
  const v = o[k] ?? dflt
  if (typeof v !== 'number') throw new Error(`"${k}" must be a number`)
  return v
}
const optStr = (o: Record<string, unknown>, k: string): string | undefined => o[k] === undefined ? undefined : str(o, k)

function applyOp (fake: FakeEc2, o: Record<string, unknown>): void {
  const f = fake.faults
  switch (o.op) {
    case 'throttle': f.throttle(str(o, 'action'), num(o, 'count', 1)); break
    case 'internalError': f.internalError(str(o, 'action'), num(o, 'count', 1), { afterExecute: o.afterExecute === true }); break
    case 'delay': f.delay(str(o, 'action'), num(o, 'ms'), num(o, 'count', 1)); break
    case 'insufficientCapacity': {
      const subnetId = optStr(o, 'subnetId')
      const availabilityZone = optStr(o, 'availabilityZone')
      f.insufficientCapacity(num(o, 'count', 1), { ...(subnetId === undefined ? {} : { subnetId }), ...(availabilityZone === undefined ? {} : { availabilityZone }) })
      break
    }
    case 'rateLimit': f.rateLimit(str(o, 'action'), { burst: num(o, 'burst'), perSecond: num(o, 'perSecond') }); break
    case 'notFoundWindow': f.setNotFoundWindow(num(o, 'ms')); break
    case 'setMounted': fake.setMounted(str(o, 'volumeId'), o.mounted !== false); break
    case 'spotInterruption': {
      const action = optStr(o, 'action')
      fake.triggerSpotInterruption(str(o, 'instanceId'), { ...(action === undefined ? {} : { action }), inMs: num(o, 'inMs', 120_000) })
      break
    }
    case 'maintenance':
      if (!Array.isArray(o.events)) throw new Error('"events" must be an array')
      fake.setMaintenanceEvents(str(o, 'instanceId'), o.events as MaintenanceEvent[])
      break
    case 'terminate': fake.terminateInstance(str(o, 'instanceId')); break
    case 'clear': f.clear(); break
    default: throw new Error(`unknown op ${JSON.stringify(o.op)}`)
  }
}
