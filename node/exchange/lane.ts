/**
 * One chunks stream to a holder (the asker's side of `/radmesh/chunks/2.0.0`, or of `1.0.0` with a holder
 * that speaks only that): requests sent while the bytes asked for and not yet received stay under the lane's
 * window, frames checked in order against what was asked, each chunk checked against the manifest once
 * whole (verify.ts `checkChunk`). A frame that breaks the protocol, or a chunk that
 * is not the manifest's, leaves the holder out of the fetch and counts against it; a link that drops does not
 * (the frames of a sealed chunk are kept: it is asked for again from the offset reached; a packed chunk cut
 * short is asked for again from its start). How much the lane keeps asked for, and which chunk it asks for
 * next, the schedule decides (schedule.ts): a lane that has run dry stays while other lanes fetch chunks its
 * holder has, and may ask for one of them as a tail duplicate (from its start, into frames of its own; the
 * copy that comes second is dropped and counted).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import {
  CHUNK_FORM,
  type ChunkForm,
  type ChunkFrame2,
  CHUNKS_PROTOCOL_2,
  decodeChunkFrame2,
  maxChunkFrame2MessageBytes
} from '../../protocol/exchange/chunks.ts'
import type { StudyManifest } from '../../protocol/exchange/manifest.ts'
import {
  CHUNK_FRAME_BYTES,
  CHUNKS_PROTOCOL,
  CHUNKS_READ_BUFFER_BYTES,
  decodeChunkFrame,
  encodeChunkRequest,
  EXCHANGE_TIMEOUT_MS,
  FRAME_STATUS,
  MAX_ASKED_FRAME_BYTES,
  MAX_CHUNK_FRAME_MESSAGE_BYTES
} from '../../protocol/exchange/messages.ts'
import { release } from '../heap.ts'
import { type PeerPenalties, refusalCodeOf } from '../p2p/penalties.ts'
import { messageStream } from '../p2p/wire.ts'
import type { PackChoice } from './pack-choice.ts'
import type { ChunkSchedule, Wanted } from './schedule.ts'
import type { CheckedChunk } from './verify.ts'

/** How often a lane that has run dry looks again for a chunk given back or a tail duplicate worth asking for. */
const DRY_POLL_MS = 100

/** A chunk frame for another chunk or offset than asked for, or with more bytes than the chunk has. */
export class BadFrameError extends Error {
  constructor(message: string) {
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
  /** bytes this lane may have asked for and not received, at most (the schedule sizes it by the lane's rate) */
  window: number
  /** ends the lane, resetting its stream */
  signal: AbortSignal
  /** a chunk whose frames all came, in the form it came, checked against the version (verify.ts `checkChunk`) */
  check(index: number, form: ChunkForm, bytes: Buffer): Promise<CheckedChunk | undefined>
  /** a chunk that passed `check` */
  accept(index: number, chunk: CheckedChunk): Promise<void>
  /** bytes that came from the holder */
  received(bytes: number): void
  /** bytes of a tail duplicate received after the other copy was verified (wasted) */
  wasted?(bytes: number): void
  /** the holder sent what cannot be honest: it is not asked again in this fetch */
  exclude(): void
  /** set once a chunk came whole from this holder */
  progress: { made: boolean }
  /** the chunks protocols to propose (CHUNKS_PROTOCOLS unless told: a test speaks only 1.0.0) */
  protocols?: string[]
  /** whether to ask for chunks packed (on 2.0.0); packed unless told */
  packing?: Pick<PackChoice, 'wantPacked'>
}

/** The chunks protocols an asker proposes, the newest first (libp2p settles on the first the holder speaks). */
export const CHUNKS_PROTOCOLS = [CHUNKS_PROTOCOL_2, CHUNKS_PROTOCOL]

/**
 * The largest frame body a lane asks for on `/radmesh/chunks/2.0.0`. A frame costs the same work at both ends
 * whatever its size, so a fast link wants large ones; a link dropped mid-frame loses the frame, so a thin link
 * that drops wants small ones (a 20 Mbit/s link cut every 3 s made no progress on 256 KiB frames).
 */
export const LANE_FRAME_BYTES = MAX_ASKED_FRAME_BYTES
/** A frame asked for is about this much of the lane's measured rate. */
const FRAME_MS = 10

/**
 * The frame body to ask for at a lane's measured rate (bytes a second; undefined while the lane is young): about
 * FRAME_MS of it, from CHUNK_FRAME_BYTES (a 100 Mbit/s link gets about 128 KiB) to LANE_FRAME_BYTES.
 */
export function frameBytesFor(rate: number | undefined): number {
  if (rate === undefined) return CHUNK_FRAME_BYTES
  const wanted = Math.round((rate * FRAME_MS) / 1000)
  return Math.min(LANE_FRAME_BYTES, Math.max(CHUNK_FRAME_BYTES, wanted))
}

/** A frame of either protocol; one of 1.0.0 is the sealed form, its length the manifest's. */
function decodeFrame(protocol: string, bytes: Uint8Array, manifest: StudyManifest): ChunkFrame2 {
  if (protocol === CHUNKS_PROTOCOL_2) return decodeChunkFrame2(bytes, LANE_FRAME_BYTES)
  const frame = decodeChunkFrame(bytes)
  const length = frame.status === FRAME_STATUS.data ? (manifest.chunkSizes[frame.index] ?? 0) : 0
  return { ...frame, form: CHUNK_FORM.sealed, length }
}

/** Checks a data frame against the chunk it must be part of: its form and length agree with what came before. */
function checkForm(peer: string, head: Wanted, frame: ChunkFrame2, size: number): void {
  if (head.form !== undefined && (frame.form !== head.form || frame.length !== head.length)) {
    throw new BadFrameError(`${peer} changed the form of chunk ${head.index} part way through`)
  }
  // A packed chunk is smaller than the sealed one, and only ever sent from its start.
  const fits =
    frame.form === CHUNK_FORM.sealed
      ? frame.length === size
      : frame.length <= size && (head.offset === 0 || head.form === CHUNK_FORM.packed)
  if (!fits) {
    const sent = `${frame.length} bytes of form ${frame.form}`
    throw new BadFrameError(`${peer} sent chunk ${head.index} as ${sent}, not ${size}`)
  }
  if (head.offset + frame.bytes.byteLength > frame.length) {
    throw new BadFrameError(`${peer} sent more bytes than chunk ${head.index} has`)
  }
  head.form = frame.form
  head.length = frame.length
}

/** Pulls from one holder until it has nothing more the fetch needs, the lane is stopped, or the link fails. */
export async function pullLane(components: LaneComponents, lane: Lane): Promise<void> {
  const { libp2p, penalties, log } = components
  const { peer, manifest, have, schedule, signal } = lane
  /** chunks asked for, in order, with the bytes of each still counted in `outstanding` */
  const inFlight: Array<{ wanted: Wanted; pending: number; duplicate: boolean }> = []
  const slot = schedule.join()
  let stream: Stream | undefined
  let onAbort: (() => void) | undefined
  try {
    const dialSignal = AbortSignal.any([AbortSignal.timeout(EXCHANGE_TIMEOUT_MS), signal])
    const protocols = lane.protocols ?? CHUNKS_PROTOCOLS
    stream = await libp2p.dialProtocol(peerIdFromString(peer), protocols, { signal: dialSignal })
    const protocol = stream.protocol
    // Stopping the lane resets its stream, so no read or write of it waits on a dead link.
    const opened = stream
    onAbort = () => {
      opened.abort(new Error('the fetch stopped pulling from this peer'))
    }
    signal.addEventListener('abort', onAbort, { once: true })
    if (signal.aborted) onAbort()
    // Every wait on the stream is bounded by a timer cleared when the wait ends (p2p/wire.ts): a frame read with
    // AbortSignal.timeout left a 30 s timer and its signal alive per frame, 12,000 of them in a 2 GB fetch.
    const lp = messageStream(stream, {
      maxDataLength:
        protocol === CHUNKS_PROTOCOL_2 ? maxChunkFrame2MessageBytes(LANE_FRAME_BYTES) : MAX_CHUNK_FRAME_MESSAGE_BYTES,
      maxBufferSize: CHUNKS_READ_BUFFER_BYTES,
      messageTimeoutMs: EXCHANGE_TIMEOUT_MS
    })
    // Bytes asked for and not received, counted as the manifest's sizes: a packed chunk only frees more.
    let outstanding = 0
    // Frame messages that came in several of libp2p's pieces, which `read` joined into buffers of their own
    // (nothing else holds them): their memory is released once the chunk's frames are joined in turn, or the
    // chunk is checked (heap.ts), not left for a full collection.
    const ownBuffers = new WeakSet<ArrayBufferLike>()
    const releaseOwn = (piece: Buffer): void => {
      if (ownBuffers.delete(piece.buffer)) release(new Uint8Array(piece.buffer))
    }
    const pump = async (): Promise<void> => {
      while (outstanding < schedule.window(slot, lane.window) && !signal.aborted) {
        let index = schedule.take(have, slot)
        if (index < 0) index = schedule.steal(have, slot)
        if (index < 0) return
        // A tail duplicate is asked for from its start into frames of its own: the other lane keeps its own.
        const duplicate = schedule.isDuplicate(index, slot)
        const wanted = duplicate ? { index, received: [], offset: 0 } : schedule.wanted(index)
        const pending = (manifest.chunkSizes[index] as number) - wanted.offset
        inFlight.push({ wanted, pending, duplicate })
        outstanding += pending
        const request = {
          studyUid: manifest.studyUid,
          versionId: manifest.versionId,
          index,
          offset: wanted.offset,
          ...(protocol === CHUNKS_PROTOCOL_2 ? { frameBytes: frameBytesFor(slot.rate()) } : {}),
          ...(protocol === CHUNKS_PROTOCOL_2 && lane.packing?.wantPacked() === false ? { pack: false as const } : {})
        }
        await lp.write(encodeChunkRequest(request), signal, EXCHANGE_TIMEOUT_MS)
      }
    }
    /** The chunk at the head is done with (whole, or not held): what it still counted is freed. */
    const settle = (came: boolean): void => {
      const { pending } = inFlight.shift() as { pending: number }
      outstanding -= pending
      // A packed chunk frees what it did not need to send: the lane's rate is in the manifest's bytes.
      if (came) slot.moved(pending)
    }
    /** A dry lane stays while another lane fetches what this holder has: that lane may stall, or give chunks back. */
    const stayDry = async (): Promise<boolean> => {
      while (!signal.aborted && schedule.fetchingElsewhere(have, slot)) {
        await sleep(DRY_POLL_MS, undefined, { signal }).catch(() => {})
        await pump()
        if (inFlight.length > 0) return true
      }
      return false
    }
    await pump()
    while (!signal.aborted && (inFlight.length > 0 || (await stayDry()))) {
      const message = await lp.read(signal, EXCHANGE_TIMEOUT_MS)
      if (message === undefined) throw new Error('the holder ended the chunks stream with chunks still asked for')
      if (message.byteOffset === 0 && message.buffer.byteLength === message.byteLength) ownBuffers.add(message.buffer)
      const frame = decodeFrame(protocol, message, manifest)
      const current = inFlight[0] as { wanted: Wanted; pending: number; duplicate: boolean }
      const head = current.wanted
      if (frame.index !== head.index || frame.offset !== head.offset) {
        throw new BadFrameError(`a frame of chunk ${frame.index}@${frame.offset}, not ${head.index}@${head.offset}`)
      }
      const size = manifest.chunkSizes[head.index] as number
      if (frame.status === FRAME_STATUS.notHeld) {
        settle(false)
        have[head.index >> 3] = (have[head.index >> 3] as number) & ~(1 << (head.index & 7))
        schedule.release(head.index, slot)
        await pump()
        continue
      }
      checkForm(peer, head, frame, size)
      const n = frame.bytes.byteLength
      // Kept as it came, not copied: a frame read whole off the stream is bytes no one else holds (libp2p hands
      // each message over once), and the chunk's frames are joined once it is whole.
      head.received.push(Buffer.from(frame.bytes.buffer, frame.bytes.byteOffset, frame.bytes.byteLength))
      head.offset += n
      current.pending -= n
      outstanding -= n
      slot.moved(n)
      lane.received(n)
      if (head.offset < frame.length) continue
      settle(true)
      if (!current.duplicate) schedule.received(head.index)
      if (schedule.isVerified(head.index)) {
        // The other copy of a tail duplicate came first: this one is only counted.
        schedule.done(head.index, slot)
        lane.wasted?.(head.offset)
        await pump()
        continue
      }
      const joined = head.received.length > 1
      const whole = joined ? Buffer.concat(head.received) : (head.received[0] as Buffer)
      if (joined) for (const piece of head.received) releaseOwn(piece)
      const checked = await lane.check(head.index, head.form ?? CHUNK_FORM.sealed, whole)
      // What came is garbage once checked, unless it is kept as it came (a chunk of a large instance).
      if (checked === undefined || !('sealed' in checked) || checked.sealed !== whole) {
        if (joined) release(whole)
        else releaseOwn(whole)
      }
      if (checked === undefined) {
        schedule.release(head.index, slot)
        lane.exclude()
        penalties.refuse(log, {
          peer,
          protocol,
          code: 'corrupt-chunk',
          event: 'corrupt-chunk',
          error: `chunk ${head.index} is not the manifest's: dropped, asked of another holder; the peer is left out`,
          detail: { chunk: head.index }
        })
        throw new Error(`corrupt chunk ${head.index} from ${peer}`)
      }
      lane.progress.made = true
      // Checked again after the check (which may wait, unpacking): the other copy may have been verified meanwhile.
      const first = !schedule.isVerified(head.index)
      schedule.done(head.index, slot)
      if (first) await lane.accept(head.index, checked)
      else lane.wasted?.(head.offset)
      await pump()
    }
    await stream.close().catch(() => {})
  } catch (error) {
    // Frames of a sealed chunk stay with the schedule: it is asked for again from where it stopped. A packed
    // chunk's do not: it is packed anew (another nonce), so it is asked for again from its start.
    for (const { wanted, duplicate } of inFlight) {
      if (wanted.form === CHUNK_FORM.packed && !duplicate) schedule.restart(wanted.index)
      schedule.release(wanted.index, slot)
    }
    stream?.abort(error as Error)
    // A frame that breaks the protocol is no dropped link: the peer is not asked again in this fetch.
    const code = error instanceof BadFrameError ? 'bad-chunk-frame' : refusalCodeOf(error)
    if (code === 'bad-chunk-frame' || code === 'malformed-message' || code === 'oversized-message') {
      lane.exclude()
      const message = (error as Error).message
      const protocol = stream?.protocol ?? CHUNKS_PROTOCOL
      penalties.refuse(log, { peer, protocol, code, event: 'bad-chunk-frame', error: message })
    }
    throw error
  } finally {
    schedule.leave(slot)
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}
