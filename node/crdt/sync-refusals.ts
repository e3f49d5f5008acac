/**
 * What sync (sync.ts) does with what a member sent that it refuses: a refusal the member may have made in
 * good faith is only noted; one it cannot have is logged with its code and counted against it (penalties).
 */
import type { Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import { SYNC_PROTOCOL } from '../../protocol/collab/sync.ts'
import { type PeerPenalties, refusalCodeOf } from '../p2p/penalties.ts'
import { ReadBufferOverflowError } from '../p2p/wire.ts'
import type { UpdateRefusedError } from './inspect.ts'

/** The refusal codes of a document's own rules (the sync policy's check, presence.ts). */
export type RuleCode = 'refused-update' | 'refused-presence'

export interface RefusalComponents {
  log: Logger
  penalties: PeerPenalties
}

/** Every end of a member's sync stream but a clean one is logged with a code; what the member caused is counted. */
export function streamFailed(
  stream: Stream,
  peer: string,
  error: unknown,
  { log, penalties }: RefusalComponents
): void {
  const message = (error as Error).message
  const code = refusalCodeOf(error)
  if (error instanceof ReadBufferOverflowError) {
    // Within the protocol's limit (a large step 2): the sender is told by the reset and holds that answer back.
    log.warn({ event: 'sync-stream-failed', code: 'sync-read-overflow', peer, bytes: error.length }, message)
  } else if (code !== undefined) {
    penalties.refuse(log, { peer, protocol: SYNC_PROTOCOL, code, event: 'sync-stream-refused', error: message })
  } else {
    log.info({ event: 'sync-stream-failed', code: 'sync-stream-failed', peer, error: message }, 'stream failed')
  }
  stream.abort(error as Error)
}

/** A refusal the document's rules made: counted and logged when it cannot be honest, else only noted (debug). */
export function refused(
  peer: string,
  doc: string,
  code: RuleCode,
  event: string,
  error: UpdateRefusedError,
  { log, penalties }: RefusalComponents
): void {
  const detail = { doc, reason: error.message }
  const weight = error.penalty
  if (weight > 0) {
    penalties.refuse(log, { peer, protocol: SYNC_PROTOCOL, code, weight, event, error: error.message, detail })
  } else {
    log.debug({ event, code, peer, penalty: 0, ...detail }, `held back (it may be honest): ${error.message}`)
  }
}
