// Errors of the local provider, with codes callers can branch on.
import { WakameError } from '../../util/errors.js'

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

export class LocalProviderError extends WakameError {
  override readonly code: LocalProviderErrorCode
  constructor (code: LocalProviderErrorCode, message: string) {
    super(code, message)
    this.code = code
  }
}
