// The `ec2:` section of the daemon config (src/config/daemon-config.ts). Every field is optional: an
// instance booted from the AMI with wakame user-data needs none; the defaults come from the instance
// itself (IMDS). Kept apart from the provider so the config does not load the AWS SDK to validate.
import { z } from 'zod'

/** The spend guard's default: distinct launches per minute. */
export const DEFAULT_MAX_LAUNCHES_PER_MINUTE = 10

const id = (prefix: string) => z.string().regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), `an id like ${prefix}-0123456789abcdef0`)

export const Ec2SettingsSchema = z.strictObject({
  /** @default the instance's region (IMDS) */
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/).optional(),
  /** EC2 API endpoint (tests: the fake). @default the region's */
  endpoint: z.url().optional(),
  /** SSM endpoint, for secrets given as {ssm: NAME} in user-data (tests: moto). @default the region's */
  ssm_endpoint: z.url().optional(),
  /** Instance metadata endpoint. @default http://169.254.169.254 */
  imds_endpoint: z.url().optional(),
  /** Image of launched VMs. @default this node's own AMI */
  image_id: id('ami').optional(),
  launch_template: z.strictObject({ id: id('lt').optional(), name: z.string().min(3).optional(), version: z.string().optional() })
    .refine(t => (t.id === undefined) !== (t.name === undefined), 'give the launch template\'s id or its name').optional(),
  /** @default this node's instance type (the spec's `instance_type` wins) */
  instance_type: z.string().regex(/^[a-z0-9-]+\.[a-z0-9-]+$/).optional(),
  /** Subnets VMs are launched in (one per zone spreads them). @default this node's subnet */
  subnets: z.array(id('subnet')).min(1).optional(),
  /** @default this node's security groups */
  security_groups: z.array(id('sg')).min(1).optional(),
  /** @default this node's instance profile */
  instance_profile_arn: z.string().regex(/^arn:aws[\w-]*:iam::\d{12}:instance-profile\/.+$/).optional(),
  max_launches_per_minute: z.number().int().min(1).max(1000).default(DEFAULT_MAX_LAUNCHES_PER_MINUTE),
  /** Extra tags on everything wakame creates. */
  tags: z.record(z.string().min(1).max(128).refine(k => !k.startsWith('aws:') && !k.startsWith('wakame:'), 'aws: and wakame: tags are reserved'), z.string().max(256)).default({}),
  volume_type: z.enum(['gp2', 'gp3', 'io1', 'io2', 'st1', 'sc1', 'standard']).default('gp3'),
  volume_encrypted: z.boolean().default(true),
  volume_kms_key_id: z.string().optional(),
  /** @default <data_dir>/volumes */
  mount_root: z.string().optional(),
  /**
   * Tests only: volumes are directories under this path (the fake EC2's device root of this
   * instance) instead of block devices, and "mounting" is a symlink. @default block devices
   */
  disk_dir: z.string().min(1).optional()
})

export type Ec2Settings = z.output<typeof Ec2SettingsSchema>
