/**
 * Asking a member for a study's manifest (MANIFEST_PROTOCOL), for fetch.ts: one request, one answer, within
 * EXCHANGE_TIMEOUT_MS; and counting an answer that cannot be honest against the member that gave it.
 */
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { StudyManifest } from '../../protocol/exchange/manifest.ts'
import {
  decodeManifestResponse,
  encodeManifestRequest,
  EXCHANGE_TIMEOUT_MS,
  MANIFEST_PROTOCOL,
  MAX_MANIFEST_MESSAGE_BYTES,
  type ManifestResponse
} from '../../protocol/exchange/messages.ts'
import { type PeerPenalties, refusalCodeOf } from '../p2p/penalties.ts'

/** With `known`, a peer whose latest version is that one answers only which chunks it holds. */
export async function askManifest(
  libp2p: Pick<Libp2p, 'dialProtocol'>,
  peer: string,
  studyUid: string,
  stop: AbortSignal,
  known?: StudyManifest
): Promise<ManifestResponse> {
  const signal = AbortSignal.any([AbortSignal.timeout(EXCHANGE_TIMEOUT_MS), stop])
  const stream = await libp2p.dialProtocol(peerIdFromString(peer), MANIFEST_PROTOCOL, { signal })
  try {
    const lp = lpStream(stream, { maxDataLength: MAX_MANIFEST_MESSAGE_BYTES })
    const knownVersion = known === undefined ? {} : { knownVersion: known.versionId }
    const request = { studyUid, ...knownVersion }
    await lp.write(encodeManifestRequest(request), { signal })
    const answer = decodeManifestResponse((await lp.read({ signal })).subarray(), known?.chunkHashes.length)
    await stream.close({ signal }).catch(() => {})
    return answer
  } catch (error) {
    stream.abort(error as Error)
    throw error
  }
}

/** An answer that cannot be honest (malformed, oversized, cut short) counts against the holder; a lost link not. */
export function refusedManifestAnswer(
  penalties: Pick<PeerPenalties, 'refuse'>,
  log: Logger,
  peer: string,
  error: unknown
): void {
  const code = refusalCodeOf(error)
  if (code === undefined) return
  const protocol = MANIFEST_PROTOCOL
  const message = (error as Error).message
  penalties.refuse(log, { peer, protocol, code, event: 'bad-message', error: message })
}
