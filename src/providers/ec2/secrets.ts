// Secrets named in user-data ({file} or {ssm}), made into the files the daemon reads. A {file}
// reference is used as it is; an {ssm} one is a SecureString in SSM Parameter Store, read at every
// start with the instance profile's credentials (ssm:GetParameter on that name, kms:Decrypt on its
// key) and written to the data directory with mode 0600, atomically. The value is never logged.
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { GetParameterCommand, SSMClient, type SSMClientConfig } from '@aws-sdk/client-ssm'
import { writeFileAtomic } from '../../store/atomic.js'
import { WakameError } from '../../util/errors.js'
import type { SecretRefValue } from './userdata.js'

/** Where the daemon keeps a secret read from SSM (its data directory is mode 0700). */
export function ssmSecretPath (dataDir: string, name: 'psk' | 'admin-token'): string {
  return join(dataDir, 'secrets', name === 'psk' ? 'psk.key' : 'admin.token')
}

/** The file the daemon should read for a reference: the file itself, or where the SSM value goes. */
export function secretFileFor (ref: SecretRefValue, dataDir: string, name: 'psk' | 'admin-token'): string {
  return 'file' in ref ? ref.file : ssmSecretPath(dataDir, name)
}

/**
 * Fetches an {ssm} reference into `path` (mode 0600). A {file} reference needs nothing. Fails with
 * a message that names the parameter and the permission that is likely missing, never the value.
 */
export async function materializeSecret (ref: SecretRefValue, path: string, client: SSMClientConfig): Promise<void> {
  if ('file' in ref) return
  const ssm = new SSMClient({ maxAttempts: 3, ...client })
  try {
    let value: string | undefined
    try {
      const out = await ssm.send(new GetParameterCommand({ Name: ref.ssm, WithDecryption: true }), { abortSignal: AbortSignal.timeout(10_000) })
      value = out.Parameter?.Value
    } catch (err) {
      const code = (err as { name?: string }).name ?? 'Error'
      const hint = code === 'ParameterNotFound'
        ? 'create it (aws ssm put-parameter --type SecureString)'
        : code === 'AccessDeniedException'
          ? 'the instance profile needs ssm:GetParameter on it (and kms:Decrypt on its key)'
          : 'check the region and the instance profile'
      throw new WakameError('SECRET_SSM', `cannot read the SSM parameter ${ref.ssm} (${code}: ${(err as Error).message}): ${hint}`)
    }
    if (value === undefined || value.trim() === '') throw new WakameError('SECRET_SSM', `the SSM parameter ${ref.ssm} is empty`)
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
    await writeFileAtomic(path, value.endsWith('\n') ? value : `${value}\n`, 0o600)
  } finally {
    ssm.destroy()
  }
}
