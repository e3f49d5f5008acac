/**
 * `/radmesh/chunks/2.0.0`: the chunks protocol of messages.ts, with chunks compressed on the wire where that
 * saves. Requests are the same `{ s, v, i, o }`, and may say `f`, the largest frame body the asker takes (up
 * to MAX_ASKED_FRAME_BYTES; a frame costs the same work at both ends whatever its size, so larger frames
 * move more per unit of work on a fast link). The server answers each in frames as in 1.0.0, of `f` bytes
 * (CHUNK_FRAME_BYTES without it), and says in every frame in which form it sends the chunk and how long the
 * chunk is in that form:
 *
 * - `sealed`: the chunk as the manifest lists it (AES-256-GCM of the plaintext under the content key);
 * - `packed`: nonce (12 random bytes) || AES-256-GCM, under the version's wire key, of the plaintext
 *   compressed with zstd || tag. The wire key is HKDF-SHA256 of the content key (`packedKeyInfo`), so only
 *   those who can read the study can unpack a chunk, and the two forms never share a key and nonce. A
 *   server packs a chunk only when that is at least PACK_MIN_SAVING smaller than its plaintext.
 *
 * The asker unpacks a packed chunk (its length bounded by the manifest's), seals it again under the content
 * key (deterministic) and checks the SHA-256 against the manifest, as for a sealed chunk: what it stores is
 * what the manifest's origin signed, whatever form it came in. A packed chunk is random-nonced, so one cut
 * short by a dropped link is asked for again from its start; a request from an offset (`o` > 0) is always
 * answered sealed. A member that speaks only 1.0.0 is served sealed chunks in 1.0.0's frames.
 */
import { MalformedMessageError } from '../errors.ts'
import { utf8 } from '../json.ts'
import { TRANSFER_CHUNK_MAX } from './manifest.ts'
import { CHUNK_FRAME_BYTES, FRAME_STATUS, type FrameStatus } from './messages.ts'

export const CHUNKS_PROTOCOL_2 = '/radmesh/chunks/2.0.0'

export const CHUNK_FORM = { sealed: 0, packed: 1 } as const
export type ChunkForm = (typeof CHUNK_FORM)[keyof typeof CHUNK_FORM]

/** AES-256-GCM's nonce and tag around a packed chunk. */
export const PACKED_NONCE_BYTES = 12
export const PACKED_TAG_BYTES = 16
/**
 * A chunk is packed only when that makes it at least this much smaller than its plaintext: below it the
 * server's and the asker's CPU cost more than the link saves, and incompressible data (already compressed
 * images, random bytes) goes as it is.
 */
export const PACK_MIN_SAVING = 0.05
/**
 * zstd level 2: on the phantom CT, per 1 MiB chunk, 3.07x at 156-177 MB/s per core here, against level 1's
 * 2.79x at 147-196 MB/s and level 3's 3.02x at 124-143 MB/s (two noisy runs, docs/PERFORMANCE.md). On a thin
 * link the ratio is the time; the asker unpacks at about 400 MB/s.
 */
export const PACK_ZSTD_LEVEL = 2

/** Associated data of a packed chunk: the chunk's place, as for the sealed form, and the form. */
export function packedChunkAssociatedData(
  studyUid: string,
  versionId: string,
  index: number,
  last: boolean
): Uint8Array {
  return utf8(`radmesh/chunk-packed/v1\n${studyUid}\n${versionId}\n${index}\n${last ? 'last' : 'more'}`)
}

/** HKDF-SHA256 info that derives a version's wire key from its content key. */
export const packedKeyInfo = (studyUid: string, versionId: string): Uint8Array =>
  utf8(`radmesh/chunk-wire-key/v1\n${studyUid}\n${versionId}`)

/**
 * `status` u8, `index` u32be, `offset` u32be, `form` u8, `length` u32be (the chunk's bytes in that form),
 * then the bytes of the chunk in that form from `offset` (none unless data). A not-held frame: form 0, length 0.
 */
export const CHUNK_FRAME_2_HEADER_BYTES = 14
/** A frame of 2.0.0 at most, given the frame body the asker asked for (`f`, messages.ts). */
export const maxChunkFrame2MessageBytes = (frameBytes = CHUNK_FRAME_BYTES): number =>
  CHUNK_FRAME_2_HEADER_BYTES + frameBytes
export const MAX_CHUNK_FRAME_2_MESSAGE_BYTES = maxChunkFrame2MessageBytes()

export interface ChunkFrame2 {
  status: FrameStatus
  index: number
  offset: number
  form: ChunkForm
  length: number
  bytes: Uint8Array
}

export function encodeChunkFrame2Header(frame: Omit<ChunkFrame2, 'bytes'>): Uint8Array {
  const header = Buffer.alloc(CHUNK_FRAME_2_HEADER_BYTES)
  header.writeUInt8(frame.status, 0)
  header.writeUInt32BE(frame.index, 1)
  header.writeUInt32BE(frame.offset, 5)
  header.writeUInt8(frame.form, 9)
  header.writeUInt32BE(frame.length, 10)
  return header
}

/** A frame of 2.0.0; `frameBytes`: the largest frame body the asker asked for. */
export function decodeChunkFrame2(bytes: Uint8Array, frameBytes = CHUNK_FRAME_BYTES): ChunkFrame2 {
  const most = maxChunkFrame2MessageBytes(frameBytes)
  if (bytes.byteLength < CHUNK_FRAME_2_HEADER_BYTES || bytes.byteLength > most) {
    const range = `${CHUNK_FRAME_2_HEADER_BYTES} to ${most} bytes`
    throw new MalformedMessageError(`a chunk frame is ${range}, not ${bytes.byteLength}`)
  }
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const status = view.readUInt8(0)
  if (status !== FRAME_STATUS.data && status !== FRAME_STATUS.notHeld) {
    throw new MalformedMessageError(`chunk frame status ${status} is not one this radmesh knows`)
  }
  const form = view.readUInt8(9)
  if (form !== CHUNK_FORM.sealed && form !== CHUNK_FORM.packed) {
    throw new MalformedMessageError(`chunk form ${form} is not one this radmesh knows`)
  }
  const body = bytes.subarray(CHUNK_FRAME_2_HEADER_BYTES)
  const index = view.readUInt32BE(1)
  const offset = view.readUInt32BE(5)
  const length = view.readUInt32BE(10)
  if (status === FRAME_STATUS.notHeld) {
    if (body.byteLength !== 0 || form !== CHUNK_FORM.sealed || length !== 0) {
      throw new MalformedMessageError('a not-held frame with bytes, a form or a length')
    }
    return { status, index, offset, form, length, bytes: body }
  }
  if (body.byteLength === 0) throw new MalformedMessageError('a data frame with no bytes')
  const least = form === CHUNK_FORM.packed ? PACKED_NONCE_BYTES + PACKED_TAG_BYTES + 1 : 1
  if (length < least || length > TRANSFER_CHUNK_MAX || offset + body.byteLength > length) {
    throw new MalformedMessageError(`a frame of ${body.byteLength} bytes at ${offset} of a ${length}-byte chunk`)
  }
  return { status, index, offset, form, length, bytes: body }
}
