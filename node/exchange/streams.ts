/**
 * What every exchange handler does with its stream: read the one request it expects, and reset a stream that
 * failed, counting against the peer what it caused (refusal codes in p2p/penalties.ts).
 */
import type { Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import { type PeerPenalties, refusalCodeOf } from '../p2p/penalties.ts'
import { type MessageStream, TruncatedMessageError } from '../p2p/wire.ts'

export interface StreamRefusalComponents {
  penalties: Pick<PeerPenalties, 'refuse'>
  log: Logger
}

/** Resets a stream that failed; what the peer caused is logged and counted, anything else logged only. */
export function refuseStream(
  components: StreamRefusalComponents,
  stream: Stream,
  sender: { peer: string; protocol: string },
  error: unknown
): void {
  const { peer, protocol } = sender
  const message = (error as Error).message
  const code = refusalCodeOf(error)
  if (code === undefined) {
    components.log.info({ event: 'stream-failed', protocol, peer, error: message }, `a stream failed: ${message}`)
  } else {
    components.penalties.refuse(components.log, { peer, protocol, code, event: 'bad-message', error: message })
  }
  stream.abort(error as Error)
}

/** The one message of a request stream: a stream that ends before it is a truncated message. */
export async function readOne(lp: MessageStream, signal: AbortSignal, what: string): Promise<Uint8Array> {
  const bytes = await lp.read(signal)
  if (bytes === undefined) throw new TruncatedMessageError(`the stream ended before the ${what}`)
  return bytes
}
