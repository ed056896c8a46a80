// Helpers for tests that use the fake: cleanup of every fake and client, and polling with a deadline.
import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2'
import { startFakeEc2, type FakeEc2, type FakeEc2Options } from './server.js'

/** Polls `fn` every 10 ms until it returns something other than undefined/false; fails after `timeoutMs`. */
export async function waitFor<T> (what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v !== undefined && v !== false) return v
    } catch (e) { last = e }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Starts fakes and SDK clients, and closes them all in `cleanup()` (call it from afterEach). */
export class FakeEc2Harness {
  private readonly fakes: FakeEc2[] = []
  private readonly clients: EC2Client[] = []

  async start (o: FakeEc2Options = {}): Promise<FakeEc2> {
    const fake = await startFakeEc2(o)
    this.fakes.push(fake)
    return fake
  }

  client (fake: FakeEc2, extra: Partial<EC2ClientConfig> = {}): EC2Client {
    const c = new EC2Client({ ...fake.clientConfig(), ...extra })
    this.clients.push(c)
    return c
  }

  /** Closes everything; then fails if a fake hit a bug of its own (answered as InternalError). */
  async cleanup (): Promise<void> {
    for (const c of this.clients.splice(0)) c.destroy()
    const fakes = this.fakes.splice(0)
    await Promise.all(fakes.map(async (f) => { await f.close() }))
    const bugs = fakes.flatMap((f) => f.hookErrors()).filter((e) => e.what.startsWith('fake-ec2'))
    if (bugs.length > 0) throw new Error(`fake-ec2 bugs: ${bugs.map((b) => `${b.what}: ${String(b.error)}`).join('; ')}`)
  }
}
