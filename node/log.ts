/**
 * Structured logs (pino, JSON lines) to HOME/node.log, warnings and errors also to stderr.
 * Every line carries the node's peer id, so logs of several nodes can be merged and still read.
 */
import { createWriteStream } from 'node:fs'
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger(
  path: string,
  bindings: { peerId: string; name: string },
  level = process.env['RADMESH_LOG_LEVEL'] ?? 'info'
): Logger {
  const file = createWriteStream(path, { flags: 'a', mode: 0o600 })
  return pino(
    { level, base: bindings, timestamp: pino.stdTimeFunctions.isoTime },
    pino.multistream([
      { level: level as pino.Level, stream: file },
      { level: 'warn', stream: process.stderr }
    ])
  )
}
