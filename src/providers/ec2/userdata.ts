// The user-data of a wakame node: its cluster join settings, as YAML (JSON is YAML too).
//
//   #wakame                          # optional first line; any comment is fine
//   version: 1                       # optional, the format's version
//   cluster: web                     # required: the cluster name
//   bootstrap: [10.0.1.12:7610]      # peers to join through (host:port or multiaddrs); may be empty:
//                                    # the node also finds peers by the cluster tag
//   bootstrap_expect: 3              # 0 (the default): join an existing cluster; N: the first N
//                                    # nodes booted together form a new one
//   psk: {file: /etc/wakame/psk}     # the pre-shared key: a file on the AMI, or {ssm: /wakame/web/psk}
//   admin_token: {file: /etc/wakame/token}   # same, for the admin token
//   launch: l-7                      # set by the leader: the launch decision this VM was made for
//   spec: /etc/wakame/cluster.yaml   # optional: the spec `launch_cluster` uses by default
//
// Secrets are never in user-data (any process on the instance can read it): only where to find them.
// Parsing is strict: an unknown field is an error naming its line, with a "did you mean".
import { stringify } from 'yaml'
import { z } from 'zod'
import { InputError } from '../../util/errors.js'
import { loadYamlWith } from '../../util/yaml.js'

/** EC2's limit on user-data, before base64. */
export const USER_DATA_MAX_BYTES = 16_384

const SecretRef = z.union([
  z.strictObject({ file: z.string().min(1).describe('a file on the instance (baked into the AMI, or written by the instance\'s own boot script)') }),
  z.strictObject({ ssm: z.string().regex(/^[A-Za-z0-9_.\-/]{1,2048}$/, 'an SSM parameter name, e.g. /wakame/web/psk') })
], 'either {file: PATH} or {ssm: PARAMETER-NAME}')

export const UserDataSchema = z.strictObject({
  version: z.literal(1, 'this wakame reads user-data version 1').default(1),
  cluster: z.string().regex(/^[a-z0-9][a-z0-9-]{0,40}$/, 'a cluster name is lower-case letters, digits and "-"'),
  bootstrap: z.array(z.string().min(1)).max(64).default([]),
  bootstrap_expect: z.number().int().min(0).max(9).default(0),
  psk: SecretRef,
  admin_token: SecretRef,
  launch: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional(),
  spec: z.string().min(1).optional()
})

export type UserData = z.output<typeof UserDataSchema>
export type UserDataInput = z.input<typeof UserDataSchema>
export type SecretRefValue = z.output<typeof SecretRef>

/** Parses user-data text; an InputError naming the line and field otherwise. */
export function parseUserData (text: string, file = 'user-data'): UserData {
  if (text.trim() === '') throw new InputError([{ file, message: 'the user-data is empty: give the cluster join settings (see the README, "User data")' }])
  if (/^#!/.test(text)) throw new InputError([{ file, line: 1, message: 'the user-data is a script, not wakame settings: pass the YAML settings as user-data (or have the script write them and start wakame with --config)' }])
  return loadYamlWith(text, file, UserDataSchema).value
}

/** Renders settings as user-data text (validated first, so a launch never carries a bad one). */
export function renderUserData (settings: UserDataInput): string {
  const parsed = UserDataSchema.safeParse(settings)
  if (!parsed.success) {
    throw new InputError(parsed.error.issues.map(i => ({ file: 'user-data (rendered)', field: i.path.join('.'), message: i.message })))
  }
  const { version, ...rest } = parsed.data
  const text = `#wakame\n${stringify({ version, ...rest }, { lineWidth: 0 })}`
  const bytes = Buffer.byteLength(text, 'utf8')
  if (bytes > USER_DATA_MAX_BYTES) {
    throw new InputError([{ file: 'user-data (rendered)', message: `${bytes} bytes, over EC2's ${USER_DATA_MAX_BYTES}: fewer bootstrap peers (nodes also find each other by tag)` }])
  }
  return text
}

/**
 * The provider's `userData` callback for VMs the leader launches: the base settings with the
 * decision id and the peers to join through. Peers are sorted, so a retry of the same launch
 * with the same live nodes sends byte-identical user-data (EC2 compares it for the ClientToken).
 */
export function launchUserData (base: Omit<UserDataInput, 'launch' | 'bootstrap' | 'bootstrap_expect'>): (vm: { decisionId: string, bootstrap: string[], bootstrapExpect?: number }) => string {
  return (vm) => renderUserData({ ...base, launch: vm.decisionId, bootstrap: [...new Set(vm.bootstrap)].sort(), bootstrap_expect: vm.bootstrapExpect ?? 0 })
}
