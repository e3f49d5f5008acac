/**
 * Structured logs (pino, JSON lines) to HOME/node.log, warnings and errors also to stderr.
 * Every line carries the node's peer id, so logs of several nodes can be merged and still read.
 */
import { createWriteStream } from 'node:fs'
import { pino, type Logger } from 'pino'

export type { Logger }

export interface NodeLog {
  log: Logger
  /** Resolves once every line logged so far is in the file (on Linux stderr is written at once, as the line comes). */
  flushed(): Promise<void>
}

export function createLogger(
  path: string,
  bindings: { peerId: string; name: string },
  level = process.env['RADMESH_LOG_LEVEL'] ?? 'info'
): NodeLog {
  const file = createWriteStream(path, { flags: 'a', mode: 0o600 })
  const log = pino(
    { level, base: bindings, timestamp: pino.stdTimeFunctions.isoTime },
    pino.multistream([
      { level: level as pino.Level, stream: file },
      { level: 'warn', stream: process.stderr }
    ])
  )
  // A write's callback comes once it and every write before it are done.
  const flushed = async (): Promise<void> => await new Promise<void>(resolve => file.write('', () => resolve()))
  return { log, flushed }
}
