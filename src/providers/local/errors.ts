// Errors of the local provider, with codes callers can branch on.
import { ProviderError } from '../provider.js'

export type LocalProviderErrorCode =
  | 'LOCAL_VOLUME_ATTACHED'
  | 'LOCAL_UNKNOWN_VM'
  | 'LOCAL_VM_NOT_RUNNING'
  | 'LOCAL_LAUNCH_IN_PROGRESS'
  | 'LOCAL_NO_FREE_ADDRESS'
  | 'LOCAL_SPAWN_FAILED'
  | 'LOCAL_BAD_NAME'
  | 'LOCAL_REGISTRY_CORRUPT'
  | 'LOCAL_KILL_FAILED'
  | 'LOCAL_WRONG_VM'

/** Failures that retrying the same request cannot fix; the others may clear (a launch in progress elsewhere, a busy volume). */
const DEFINITIVE = new Set<LocalProviderErrorCode>(['LOCAL_SPAWN_FAILED', 'LOCAL_BAD_NAME', 'LOCAL_REGISTRY_CORRUPT', 'LOCAL_UNKNOWN_VM', 'LOCAL_NO_FREE_ADDRESS', 'LOCAL_WRONG_VM'])

export class LocalProviderError extends ProviderError {
  override readonly code: LocalProviderErrorCode
  constructor (code: LocalProviderErrorCode, message: string) {
    super(code, message, !DEFINITIVE.has(code))
    this.code = code
  }
}
