/**
 * One chunks stream to a holder (`/radmesh/chunks/1.0.0`, the asker's side): requests sent while the bytes
 * asked for and not yet received stay under the lane's window, frames checked in order against what was
 * asked, each chunk checked against the manifest once whole. A frame that breaks the protocol, or a chunk
 * that is not the manifest's, leaves the holder out of the fetch and counts against it; a link that drops
 * does not (its frames are kept: the chunk is asked for again from the offset reached).
 */
import type { Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { StudyManifest } from '../../protocol/exchange/manifest.ts'
import {
  CHUNKS_PROTOCOL,
  CHUNKS_READ_BUFFER_BYTES,
  decodeChunkFrame,
  encodeChunkRequest,
  EXCHANGE_TIMEOUT_MS,
  FRAME_STATUS,
  MAX_CHUNK_FRAME_MESSAGE_BYTES
} from '../../protocol/exchange/messages.ts'
import { type PeerPenalties, refusalCodeOf } from '../p2p/penalties.ts'
import type { ChunkSchedule, Wanted } from './schedule.ts'
import { chunkMatches } from './verify.ts'

/** A chunk frame for another chunk or offset than asked for, or with more bytes than the chunk has. */
export class BadFrameError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'BadFrameError'
  }
}

export interface LaneComponents {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  penalties: Pick<PeerPenalties, 'refuse'>
  log: Logger
}

export interface Lane {
  peer: string
  manifest: StudyManifest
  /** which chunks the holder said it has (a bit each); a chunk it then does not hold is cleared */
  have: Uint8Array
  schedule: ChunkSchedule
  /** bytes this lane may have asked for and not received */
  window: number
  /** ends the lane, resetting its stream */
  signal: AbortSignal
  /** a chunk whose frames all came and whose SHA-256 is the manifest's */
  accept (index: number, sealed: Buffer): Promise<void>
  /** bytes that came from the holder */
  received (bytes: number): void
  /** the holder sent what cannot be honest: it is not asked again in this fetch */
  exclude (): void
  /** set once a chunk came whole from this holder */
  progress: { made: boolean }
}

/** Pulls from one holder until it has nothing more the fetch needs, the lane is stopped, or the link fails. */
export async function pullLane (components: LaneComponents, lane: Lane): Promise<void> {
  const { libp2p, penalties, log } = components
  const { peer, manifest, have, schedule, signal } = lane
  const inFlight: Wanted[] = []
  let stream: Stream | undefined
  let onAbort: (() => void) | undefined
  try {
    const dialSignal = AbortSignal.any([AbortSignal.timeout(EXCHANGE_TIMEOUT_MS), signal])
    stream = await libp2p.dialProtocol(peerIdFromString(peer), CHUNKS_PROTOCOL, { signal: dialSignal })
    // Stopping the lane resets its stream, so no read or write of it waits on a dead link.
    const opened = stream
    onAbort = () => { opened.abort(new Error('the fetch stopped pulling from this peer')) }
    signal.addEventListener('abort', onAbort, { once: true })
    if (signal.aborted) onAbort()
    const lp = lpStream(stream, {
      maxDataLength: MAX_CHUNK_FRAME_MESSAGE_BYTES,
      maxBufferSize: CHUNKS_READ_BUFFER_BYTES
    })
    let outstanding = 0
    const pump = async (): Promise<void> => {
      while (outstanding < lane.window && !signal.aborted) {
        const index = schedule.take(have)
        if (index < 0) return
        const wanted = schedule.wanted(index)
        inFlight.push(wanted)
        outstanding += (manifest.chunkSizes[index] as number) - wanted.offset
        const request = { studyUid: manifest.studyUid, versionId: manifest.versionId, index, offset: wanted.offset }
        await lp.write(encodeChunkRequest(request), { signal })
      }
    }
    await pump()
    while (inFlight.length > 0 && !signal.aborted) {
      const readSignal = AbortSignal.any([AbortSignal.timeout(EXCHANGE_TIMEOUT_MS), signal])
      const frame = decodeChunkFrame((await lp.read({ signal: readSignal })).subarray())
      const head = inFlight[0] as Wanted
      if (frame.index !== head.index || frame.offset !== head.offset) {
        throw new BadFrameError(`a frame of chunk ${frame.index}@${frame.offset}, not ${head.index}@${head.offset}`)
      }
      const size = manifest.chunkSizes[head.index] as number
      if (frame.status === FRAME_STATUS.notHeld) {
        inFlight.shift()
        outstanding -= size - head.offset
        have[head.index >> 3] = (have[head.index >> 3] as number) & ~(1 << (head.index & 7))
        schedule.release(head.index)
        await pump()
        continue
      }
      if (head.offset + frame.bytes.byteLength > size) {
        throw new BadFrameError(`${peer} sent more bytes than chunk ${head.index} has`)
      }
      head.received.push(Buffer.from(frame.bytes))
      head.offset += frame.bytes.byteLength
      outstanding -= frame.bytes.byteLength
      lane.received(frame.bytes.byteLength)
      if (head.offset < size) continue
      inFlight.shift()
      schedule.received(head.index)
      const sealed = Buffer.concat(head.received)
      if (!chunkMatches(manifest, head.index, sealed)) {
        schedule.release(head.index)
        lane.exclude()
        penalties.refuse(log, {
          peer,
          protocol: CHUNKS_PROTOCOL,
          code: 'corrupt-chunk',
          event: 'corrupt-chunk',
          error: `chunk ${head.index} has the wrong SHA-256: dropped, asked of another holder; the peer is left out`,
          detail: { chunk: head.index }
        })
        throw new Error(`corrupt chunk ${head.index} from ${peer}`)
      }
      lane.progress.made = true
      await lane.accept(head.index, sealed)
      await pump()
    }
    await stream.close().catch(() => {})
  } catch (error) {
    // Frames already received stay with the schedule: the chunk is asked for again from where it stopped.
    for (const wanted of inFlight) schedule.release(wanted.index)
    stream?.abort(error as Error)
    // A frame that breaks the protocol is no dropped link: the peer is not asked again in this fetch.
    const code = error instanceof BadFrameError ? 'bad-chunk-frame' : refusalCodeOf(error)
    if (code === 'bad-chunk-frame' || code === 'malformed-message' || code === 'oversized-message') {
      lane.exclude()
      const message = (error as Error).message
      penalties.refuse(log, { peer, protocol: CHUNKS_PROTOCOL, code, event: 'bad-chunk-frame', error: message })
    }
    throw error
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}
