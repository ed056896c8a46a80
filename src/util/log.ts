// JSON logs with pino, one line per event, to stderr (stdout stays for command output).
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger (name: string, level: string = process.env.WAKAME_LOG_LEVEL ?? 'info', bindings: Record<string, unknown> = {}): Logger {
  return pino({ name, level, base: { pid: process.pid, ...bindings } }, pino.destination({ fd: 2, sync: false }))
}

/** A logger that drops everything (unit tests). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
