// The `wakame` command line: the daemon (`agent`), the admin commands Wakame users know (with their
// old names as aliases), and a few tools. Arguments are parsed by commander.
// The daemon, the balancer and the spec loader are imported when their command runs: an admin
// command then evaluates only what it uses (start-up of `wakame status` is most of its time).
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'
import { Command, InvalidArgumentError, Option } from 'commander'
import { generatePsk, generateToken } from '../mesh/keys.js'
import { InputError, WakameError } from '../util/errors.js'
import { VERSION } from '../version.js'
import type { ClusterEvent } from '../events/event.js'
import { ApiError, Client } from './client.js'
import { formatEvent } from '../events/event.js'
import { formatPlan, type PlanAction } from '../core/plan.js'
import { formatStatus } from './format.js'
import { runNodeScript } from './sea-node.js'
import { waitForSettle } from './wait.js'

interface Globals { node?: string, tokenFile?: string }
interface WaitFlags { wait: boolean, timeout: number, dryRun?: boolean }

/** A comma-separated option value as a list. */
const list = (v: string): string[] => v.split(',').map(s => s.trim()).filter(Boolean)
const int = (name: string) => (v: string): number => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a whole number, 0 or more`)
  return Number(v)
}

export function buildProgram (): Command {
  const program = new Command('wakame')
    .description('A cluster agent for Amazon EC2: one daemon per node, a gossip mesh, an elected leader.')
    .version(VERSION, '-V, --version')
    .option('--node <url>', 'API of any wakame node (env WAKAME_NODE)')
    .option('--token-file <file>', 'admin token file, for commands that change the cluster (env WAKAME_TOKEN_FILE)')
    .showHelpAfterError('(wakame help COMMAND for its usage)')
    // A bad command line is bad input: exit 2, as every other input error (help and --version: 0).
    .exitOverride(err => process.exit(err.exitCode === 0 ? 0 : 2))
  const globals = (): Globals => program.opts<Globals>()
  /** A client whose requests end within the command's --timeout. */
  const client = (timeoutS?: number) => new Client({ ...globals(), ...(timeoutS ? { requestTimeoutMs: timeoutS * 1000 } : {}) })
  const waitOpts = (c: Command) => c
    .option('--dry-run', 'print what the leader would do (launch, place, move, stop, terminate) and why; change nothing')
    .option('--no-wait', 'return once the leader accepted the change')
    .addOption(new Option('--timeout <seconds>', 'how long to wait for the cluster to settle').default(180).argParser(int('--timeout')))

  program.command('agent')
    .description('run the wakame daemon on this node')
    .option('-c, --config <file>', 'YAML config file (env WAKAME_* and flags override it)')
    .option('--cluster <name>').option('--node-id <id>').option('--psk-file <file>').option('--admin-token-file <file>')
    .option('--psk-accept-files <files>', 'more pre-shared keys accepted during a key rotation, comma-separated', list)
    .option('--admin-token-accept-files <files>', 'more admin tokens accepted during a token rotation, comma-separated', list)
    .option('--bind <ip>').option('--api-bind <ip>')
    .option('--api-tls-cert-file <file>', 'serve the admin API over HTTPS (PEM certificate)').option('--api-tls-key-file <file>', 'its private key (PEM)')
    .option('--mesh-port <port>', '', int('--mesh-port')).option('--api-port <port>', '', int('--api-port'))
    .option('--data-dir <dir>').option('--bootstrap <addrs>', 'host:port or multiaddrs, comma-separated', list)
    .option('--bootstrap-expect <n>', '', int('--bootstrap-expect')).option('--provider <name>').option('--spec <file>').option('--log-level <level>')
    .action(async (o: Record<string, unknown>) => {
      const { config, ...rest } = o
      const flags: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(rest)) flags[k.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`)] = v
      const { runAgent } = await import('./agent.js')
      await runAgent(config as string | undefined, flags)
    })

  program.command('status')
    .description('the cluster: services <current min max>, instances, agents')
    .option('--json', 'print the status as JSON')
    .action(async (o: { json?: boolean }) => {
      const s = await client().status()
      console.log(o.json ? JSON.stringify(s, null, 2) : formatStatus(s, process.stdout.isTTY))
    })

  program.command('events')
    .description('event history: the leaders\' decisions, operator commands, member, leader and instance changes')
    .option('--since <when>', 'only events since: a duration (90s, 10m, 2h, 1d), an ISO time, or a sequence number')
    .addOption(new Option('--limit <n>', 'at most this many (the newest)').default(200).argParser(int('--limit')))
    .option('-f, --follow', 'keep printing new events as they are logged (Ctrl-C to stop)')
    .option('--json', 'one JSON object per line')
    .action(async (o: { since?: string, limit: number, follow?: boolean, json?: boolean }) => {
      if (o.limit < 1 || o.limit > 1000) throw new InputError([{ file: 'command line', field: '--limit', message: 'between 1 and 1000' }])
      const c = client()
      const print = (e: ClusterEvent): void => { console.log(o.json ? JSON.stringify(e) : formatEvent(e)) }
      let r = await c.events({ ...(o.since !== undefined ? { since: sinceParam(o.since) } : {}), limit: o.limit })
      r.events.forEach(print)
      let last = r.last
      while (o.follow) {
        await new Promise(resolve => setTimeout(resolve, 1_000))
        try {
          r = await c.events({ since: String(last), limit: 1000 })
        } catch (err) {
          console.error(`(${(err as Error).message}; retrying)`)
          continue
        }
        // A node restarted with an empty log numbers from 1 again: start over from its beginning.
        if (r.last < last) r = await c.events({ limit: 1000 })
        r.events.forEach(print)
        last = r.last
      }
    })

  waitOpts(program.command('launch').alias('launch_cluster')
    .description('bring every service up, in dependency order')
    .option('--spec <file>', 'cluster spec (default: the one the node was configured with)'))
    .action(async (o: WaitFlags & { spec?: string }) => {
      const body = o.spec ? { spec: await specBody(o.spec) } : undefined
      if (o.dryRun) return await printPlan(client(o.timeout), { command: 'launch', ...body })
      await changeAndWait(client(o.timeout), '/v1/cluster/launch', body, o)
    })

  waitOpts(program.command('shutdown').alias('shutdown_cluster')
    .description('stop every service in reverse dependency order, then the VMs the cluster launched'))
    .action(async (o: WaitFlags) => {
      if (o.dryRun) return await printPlan(client(o.timeout), { command: 'shutdown' })
      await changeAndWait(client(o.timeout), '/v1/cluster/shutdown', undefined, o)
    })

  waitOpts(program.command('propagate').alias('propagate_service')
    .description('one more instance of SERVICE (up to its max); a VM is launched when no node has room')
    .argument('<service>'))
    .action(async (service: string, o: WaitFlags) => {
      if (o.dryRun) return await printPlan(client(o.timeout), { command: 'propagate', service })
      await changeAndWait(client(o.timeout), `/v1/services/${encodeURIComponent(service)}/propagate`, undefined, o)
    })

  waitOpts(program.command('scale')
    .description('set the number of instances of SERVICE')
    .argument('<service>').argument('<count>', 'instances', int('count')))
    .action(async (service: string, count: number, o: WaitFlags) => {
      if (o.dryRun) return await printPlan(client(o.timeout), { command: 'scale', service, count })
      await changeAndWait(client(o.timeout), `/v1/services/${encodeURIComponent(service)}/scale`, { count }, o)
    })

  waitOpts(program.command('migrate').alias('migrate_service')
    .description('move INSTANCE to another node: start the new one, wait ONLINE, repoint, stop the old')
    .argument('<instance>')
    .option('--to <node>', 'target node (default: the least loaded with room)'))
    .action(async (instance: string, o: WaitFlags & { to?: string }) => {
      if (o.to !== undefined && o.to.trim() === '') throw new InputError([{ file: 'command line', field: '--to', message: 'give a node id (see `wakame status`), or leave --to out' }])
      if (o.dryRun) return await printPlan(client(o.timeout), { command: 'migrate', instance, ...(o.to !== undefined ? { to: o.to } : {}) })
      await changeAndWait(client(o.timeout), `/v1/instances/${encodeURIComponent(instance)}/migrate`, o.to !== undefined ? { to: o.to } : {}, o,
        (s) => !s.services.some(svc => svc.instances.some(i => i.id === instance)))
    })

  program.command('plan')
    .description('print what the leader would do for COMMAND (launch, place, move, stop, terminate) and why, without doing it; no COMMAND: what it would do on its own')
    .argument('[command]', 'launch_cluster, shutdown_cluster, propagate_service SERVICE, scale SERVICE N, migrate_service INSTANCE (or their new names)')
    .argument('[args...]')
    .option('--spec <file>', 'launch: the spec to launch')
    .option('--to <node>', 'migrate: the target node')
    .action(async (name: string | undefined, args: string[], o: { spec?: string, to?: string }) => {
      await printPlan(client(), name === undefined ? undefined : await planBody(name, args, o))
    })

  program.command('validate')
    .description('check a cluster spec and print its problems with file, line and field')
    .argument('<spec>')
    .action(async (file: string) => {
      const { loadSpecFile } = await import('../spec/load.js')
      const spec = loadSpecFile(file)
      console.log(`${file}: valid (${Object.keys(spec.services).length} services)`)
    })

  program.command('keygen')
    .description('create a pre-shared key for the mesh (mode 0600)')
    .option('--out <file>', 'write it here instead of stdout')
    .action((o: { out?: string }) => writeSecret(o.out, generatePsk()))

  program.command('token')
    .description('create an admin token (mode 0600)')
    .option('--out <file>', 'write it here instead of stdout')
    .action((o: { out?: string }) => writeSecret(o.out, `${generateToken()}\n`))

  program.command('demo')
    .description('run the example web cluster locally: boot a node, launch_cluster, keep running (Ctrl-C stops it all)')
    .option('--spec <file>', 'cluster spec', 'examples/webcluster/cluster.yaml')
    .option('--dir <dir>', 'where the demo keeps its state', '.wakame/demo')
    .addOption(new Option('--net <a.b.c>', 'first three octets of the VMs\' loopback addresses').default('127.0.0').hideHelp())
    .action(async (o: { spec: string, dir: string, net: string }) => {
      const { runDemo } = await import('../demo/demo.js')
      await runDemo({ spec: o.spec, dir: o.dir, net: o.net })
      setInterval(() => {}, 1 << 30) // keep running until Ctrl-C

    })

  program.command('balancer', { hidden: true })
    .description('the builtin balancer process (started by the agent)')
    .requiredOption('--config <file>').requiredOption('--listen <host:port>')
    .action(async (o: { config: string, listen: string }) => {
      const { balancerMain } = await import('../balancers/builtin/proxy.js')
      await balancerMain(['--config', o.config, '--listen', o.listen])
    })

  program.command('vm-init', { hidden: true })
    .description('a local VM\'s init: runs the daemon given after --, restarts it if it dies')
    .argument('<argv...>', 'the daemon\'s command line').allowUnknownOption()
    .action(async (argv: string[]) => {
      const { runVmInit } = await import('../providers/local/vm-init.js')
      await runVmInit(argv)
    })

  return program
}

/** --since as the API takes it: a duration ago becomes an ISO time; an ISO time or a sequence number passes. */
export function sinceParam (v: string, now = Date.now()): string {
  const d = /^(\d+)(s|m|h|d)$/.exec(v.trim())
  if (d) return new Date(now - Number(d[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[d[2] as 's' | 'm' | 'h' | 'd']).toISOString()
  if (/^\d+$/.test(v.trim())) return v.trim()
  const t = Date.parse(v)
  if (Number.isNaN(t)) throw new InputError([{ file: 'command line', field: '--since', message: `"${v}" is not a duration (10m), an ISO time or a sequence number` }])
  return new Date(t).toISOString()
}

const PLAN_NAMES: Record<string, string> = { launch: 'launch', launch_cluster: 'launch', shutdown: 'shutdown', shutdown_cluster: 'shutdown', propagate: 'propagate', propagate_service: 'propagate', scale: 'scale', migrate: 'migrate', migrate_service: 'migrate' }

/** `wakame plan NAME ARGS...` as the body of POST /v1/plan. */
async function planBody (name: string, args: string[], o: { spec?: string, to?: string }): Promise<Record<string, unknown>> {
  const command = Object.hasOwn(PLAN_NAMES, name) ? PLAN_NAMES[name]! : undefined
  const bad = (message: string): never => { throw new InputError([{ file: 'command line', message }]) }
  if (!command) return bad(`cannot plan "${name}"; plan one of: ${Object.keys(PLAN_NAMES).join(', ')}`)
  const want = { launch: 0, shutdown: 0, propagate: 1, scale: 2, migrate: 1 }[command as 'launch']
  if (args.length !== want) bad(`${name} takes ${want === 0 ? 'no arguments' : want === 1 ? (command === 'migrate' ? 'an INSTANCE' : 'a SERVICE') : 'a SERVICE and a COUNT'}; got ${args.length}`)
  if (o.spec !== undefined && command !== 'launch') bad('--spec goes with launch only')
  if (o.to !== undefined && command !== 'migrate') bad('--to goes with migrate only')
  switch (command) {
    case 'launch': return { command, ...(o.spec ? { spec: await specBody(o.spec) } : {}) }
    case 'propagate': return { command, service: args[0] }
    case 'scale': return /^\d+$/.test(args[1]!) ? { command, service: args[0], count: Number(args[1]) } : bad('COUNT must be a whole number')
    case 'migrate': return { command, instance: args[0], ...(o.to !== undefined ? { to: o.to } : {}) }
    default: return { command }
  }
}

/** Ask the leader for the plan and print it; nothing changes. */
async function printPlan (client: Client, body: unknown): Promise<void> {
  const p = await client.plan(body)
  for (const line of formatPlan({ ...p, actions: p.actions as PlanAction[] })) console.log(line)
}

/** The spec as sent to the leader; validated here first, so errors point at the local file. */
async function specBody (file: string): Promise<{ text: string, file: string, dir: string }> {
  const { loadSpecFile } = await import('../spec/load.js')
  loadSpecFile(file)
  const abs = resolve(file)
  return { text: readFileSync(abs, 'utf8'), file: abs, dir: dirname(abs) }
}

function writeSecret (out: string | undefined, text: string): void {
  if (!out) { process.stdout.write(text); return }
  if (existsSync(out)) throw new WakameError('EXISTS', `${out} exists; not overwriting it`)
  writeFileSync(out, text, { mode: 0o600, flag: 'wx' })
  console.error(`wrote ${out} (mode 600)`)
}

async function changeAndWait (client: Client, path: string, body: unknown, o: WaitFlags, done?: Parameters<typeof waitForSettle>[1]['done']): Promise<void> {
  const r = await client.change(path, body)
  console.log(r.message)
  if (!o.wait) return
  const s = await waitForSettle(client, { version: r.version, timeoutMs: o.timeout * 1000, print: (l) => console.log(l), ...(done ? { done } : {}) })
  console.log(formatStatus(s, process.stdout.isTTY))
}

/** Run the CLI; errors become one clear line and a non-zero exit code (2 for bad input). */
export async function runCli (argv: string[]): Promise<void> {
  // The single executable started as `node` for a service's script (see sea-node.ts). Its errors
  // stay the script's own, as under node: not caught below.
  if (await runNodeScript(argv)) return
  // `wakame status | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(0); throw err })
  try {
    const program = buildProgram()
    // The same binary installed as `wakameadm` (a symlink on the AMI) is the admin CLI: the
    // commands are the same, only help and errors should name what the user typed.
    if (basename(argv[1] ?? '') === 'wakameadm') program.name('wakameadm')
    await program.parseAsync(argv)
  } catch (err) {
    if (err instanceof InputError) { console.error(err.message); process.exitCode = 2; return }
    // 2: the input was wrong (bad or unknown names, values); 1: the cluster could not do it.
    if (err instanceof ApiError) { console.error(`error: ${err.message}`); process.exitCode = err.status === 400 || err.status === 404 ? 2 : 1; return }
    if (err instanceof WakameError) { console.error(`error: ${err.message}`); process.exitCode = err.code === 'BAD_NODE_URL' ? 2 : 1; return }
    console.error(`error: ${(err as Error)?.stack ?? String(err)}`)
    process.exitCode = 1
  }
}
