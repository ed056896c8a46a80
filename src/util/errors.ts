// Named errors with a stable code, so callers (CLI exit codes, API status codes) can tell them apart.

export class WakameError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.code = code
    this.name = new.target.name
  }
}

/** One problem in an input file: where it is and what to do about it. */
export interface InputProblem {
  file: string
  line?: number
  column?: number
  /** Dotted path of the field, e.g. `services.www.max`. */
  field?: string
  message: string
}

export function formatProblem (p: InputProblem): string {
  const where = p.line !== undefined ? `${p.file}:${p.line}${p.column !== undefined ? `:${p.column}` : ''}` : p.file
  return `${where}: ${p.field ? `${p.field}: ` : ''}${p.message}`
}

/** A spec or config file was rejected; nothing was changed. */
export class InputError extends WakameError {
  readonly problems: InputProblem[]
  constructor (problems: InputProblem[]) {
    super('INPUT_INVALID', problems.map(formatProblem).join('\n'))
    this.problems = problems
  }
}
