/**
 * The study exchange protocols, one codec per message, each with a hard size limit, and the limits every
 * stream of them keeps. Every message is length-prefixed (unsigned varint, as libp2p's lpStream writes it).
 *
 * `/radmesh/manifest/1.0.0`: ask a member about a study. Request `{ studyUid, knownVersion? }`; answer the
 *   latest manifest it knows, the key wraps it holds for the asker, and which chunks it can serve (a bit
 *   field); when it can still serve `knownVersion` (its latest, or an earlier version it holds open: a study
 *   that grew while the asker fetched it), just `{ status: "current", have }` for that version (an asker that
 *   reconnects over a bad link does not pay for the manifest again, and finishes the version it began).
 * `/radmesh/chunks/1.0.0`: pull chunk bytes. The asker sends requests `{ s, v, i, o }` (study, version,
 *   chunk index, offset), several in a row, and keeps the bytes it has asked for and not received under
 *   WINDOW_BYTES: the server answers requests one at a time, in order, as frames of at most
 *   CHUNK_FRAME_BYTES. A frame lost with a dropped connection costs at most that much: the asker asks again
 *   from the offset it reached. What the asker receives is checked against the manifest (SHA-256 per chunk).
 *   `/radmesh/chunks/2.0.0` (chunks.ts) is the same with chunks compressed where that saves; every node
 *   serves both, so a member on an older radmesh still fetches.
 * `/radmesh/announce/1.0.0`: a sharer tells a recipient about a study: `{ manifest, wraps }`, answered
 *   `{ status }`. The recipient checks the manifest and opens a wrap before it keeps anything.
 */
import { MalformedMessageError } from '../errors.ts'
import { asObject, integerField, parseJsonBytes, stringField, utf8 } from '../json.ts'
import {
  decodeKeyWrap,
  decodeManifest,
  type KeyWrap,
  MAX_CHUNKS,
  MAX_KEY_WRAP_BYTES,
  MAX_MANIFEST_BYTES,
  type StudyManifest,
  TRANSFER_CHUNK_MAX,
  uidField,
  versionIdField
} from './manifest.ts'

export const MANIFEST_PROTOCOL = '/radmesh/manifest/1.0.0'
export const CHUNKS_PROTOCOL = '/radmesh/chunks/1.0.0'
export const ANNOUNCE_PROTOCOL = '/radmesh/announce/1.0.0'

export const MAX_REQUEST_BYTES = 512
/** Wraps in one message: a study shared with a whole department, not more. */
export const MAX_WRAPS_PER_MESSAGE = 64
/** A manifest answer: the manifest, a wrap each, the bit field (base64url) and the rest of the JSON. */
export const MAX_MANIFEST_MESSAGE_BYTES =
  MAX_MANIFEST_BYTES + MAX_WRAPS_PER_MESSAGE * MAX_KEY_WRAP_BYTES + Math.ceil(MAX_CHUNKS / 6) + 1024
/** Small enough that a link cut mid-frame wastes little, large enough to move 1 GB/s on loopback. */
export const CHUNK_FRAME_BYTES = 32 * 1024
export const CHUNK_FRAME_HEADER_BYTES = 9
export const MAX_CHUNK_FRAME_MESSAGE_BYTES = CHUNK_FRAME_HEADER_BYTES + CHUNK_FRAME_BYTES

/** The answer to an announcement: a status and a reason a person can read. */
export const MAX_ANNOUNCE_ANSWER_BYTES = MAX_REQUEST_BYTES + 1024

// Stream limits: every node registers its handlers with these, and holds its own streams to them.

/** A request or an answer, once started, must be whole within this time; so must each frame be taken by the asker. */
export const EXCHANGE_TIMEOUT_MS = 30_000
/** An asker waits on its archive between chunk requests; a chunks stream idle longer than this is given up. */
export const CHUNK_REQUEST_IDLE_MS = 10 * EXCHANGE_TIMEOUT_MS
/**
 * Bytes asked for and not yet received, per peer: libp2p streams have no backpressure of their own, so the
 * asker bounds what a server may send it; memory and what a dropped link wastes stay bounded.
 */
export const WINDOW_BYTES = 4 * 1024 * 1024
/**
 * Chunks streams per peer in one fetch, sharing the window. Four measured only ~8 % faster on loopback, and
 * over a link cut every 3 s they sometimes stalled with two chunks never answered (not understood yet).
 */
export const CHUNKS_STREAMS_PER_PEER = 1
/** An asker's read buffer on a chunks stream: room for a whole window of frames while it waits on its archive. */
export const CHUNKS_READ_BUFFER_BYTES = 2 * WINDOW_BYTES
/**
 * Chunk requests a server reads ahead and prepares (read from its archive, encrypted) while it sends
 * earlier ones, so the disk, the cipher and the network work at once; the asker's window keeps this short.
 */
export const PREPARED_AHEAD = 4
/**
 * Streams of each protocol at once per connection. A fetch asks a member for the manifest once, then
 * again each time it (re)starts pulling from it: 16 is several fetches of one member at once.
 */
export const MANIFEST_MAX_INBOUND_STREAMS = 16
export const MANIFEST_MAX_OUTBOUND_STREAMS = 16
/** One chunks stream per fetch and peer (CHUNKS_STREAMS_PER_PEER): 8 fetches of one member at once. */
export const CHUNKS_MAX_INBOUND_STREAMS = 8
export const CHUNKS_MAX_OUTBOUND_STREAMS = 8
/** One announcement per study shared with a member, each one message and its answer. */
export const ANNOUNCE_MAX_INBOUND_STREAMS = 8
export const ANNOUNCE_MAX_OUTBOUND_STREAMS = 8

const json = (value: unknown): Uint8Array => utf8(JSON.stringify(value))

// /radmesh/manifest/1.0.0

export interface ManifestRequest {
  studyUid: string
  knownVersion?: string
}

export type ManifestResponse =
  | { status: 'ok'; manifest: StudyManifest; wraps: KeyWrap[]; have: Uint8Array }
  | { status: 'current'; have: Uint8Array }
  | { status: 'unknown-study' }

export const encodeManifestRequest = (request: ManifestRequest): Uint8Array => json(request)

export function decodeManifestRequest(bytes: Uint8Array): ManifestRequest {
  const what = 'manifest request'
  const object = asObject(parseJsonBytes(bytes, MAX_REQUEST_BYTES, what), what)
  return {
    studyUid: uidField(object, 'studyUid', what),
    ...(object['knownVersion'] === undefined ? {} : { knownVersion: versionIdField(object, 'knownVersion', what) })
  }
}

export function encodeManifestResponse(response: ManifestResponse): Uint8Array {
  if (response.status === 'unknown-study') return json(response)
  return json({ ...response, have: Buffer.from(response.have).toString('base64url') })
}

/** `chunks` is the number of chunks of the asker's known version: a `current` answer has a bit for each. */
export function decodeManifestResponse(bytes: Uint8Array, chunks?: number): ManifestResponse {
  const what = 'manifest response'
  const object = asObject(parseJsonBytes(bytes, MAX_MANIFEST_MESSAGE_BYTES, what), what)
  const status = stringField(object, 'status', what, 32)
  if (status === 'unknown-study') return { status }
  if (status === 'current') {
    if (chunks === undefined) {
      throw new MalformedMessageError(`${what}: "current" answers a request that named no version`)
    }
    return { status, have: bitField(object, chunks, what) }
  }
  if (status !== 'ok') throw new MalformedMessageError(`${what}.status "${status}" is not one this radmesh knows`)
  const manifest = decodeManifest(object['manifest'])
  const wraps = wrapList(object['wraps'], what)
  return { status, manifest, wraps, have: bitField(object, manifest.chunkHashes.length, what) }
}

function wrapList(value: unknown, what: string): KeyWrap[] {
  if (!Array.isArray(value) || value.length > MAX_WRAPS_PER_MESSAGE) {
    throw new MalformedMessageError(`${what}.wraps must be a list of at most ${MAX_WRAPS_PER_MESSAGE} key wraps`)
  }
  return value.map(decodeKeyWrap)
}

function bitField(object: Record<string, unknown>, bits: number, what: string): Uint8Array {
  const text = stringField(object, 'have', what, Math.ceil(MAX_CHUNKS / 6) + 4)
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new MalformedMessageError(`${what}.have must be base64url`)
  const bytes = new Uint8Array(Buffer.from(text, 'base64url'))
  if (bytes.byteLength !== Math.ceil(bits / 8)) {
    throw new MalformedMessageError(`${what}.have must have one bit per chunk`)
  }
  return bytes
}

// /radmesh/chunks/1.0.0

export interface ChunkRequest {
  studyUid: string
  versionId: string
  index: number
  offset: number
  /**
   * `f`: the largest frame body the asker takes, CHUNK_FRAME_BYTES to MAX_ASKED_FRAME_BYTES. Only servers of
   * `/radmesh/chunks/2.0.0` honour it (chunks.ts); without it, and on 1.0.0, frames are CHUNK_FRAME_BYTES.
   * A server that predates it ignores it, as it ignores every field it does not know.
   */
  frameBytes?: number
  /**
   * `p: 0`: the asker wants this chunk sealed, not packed (its own CPU, not the link, sets its pace; see
   * node/exchange/pack-choice.ts). Only servers of 2.0.0 honour it; one that predates it packs as it would.
   */
  pack?: false
}

/** The largest frame body an asker may ask for (`f`): a dropped link loses at most one frame of a sealed chunk. */
export const MAX_ASKED_FRAME_BYTES = 256 * 1024

export const encodeChunkRequest = (request: ChunkRequest): Uint8Array =>
  json({
    s: request.studyUid,
    v: request.versionId,
    i: request.index,
    o: request.offset,
    ...(request.frameBytes === undefined ? {} : { f: request.frameBytes }),
    ...(request.pack === false ? { p: 0 } : {})
  })

export function decodeChunkRequest(bytes: Uint8Array): ChunkRequest {
  const what = 'chunk request'
  const object = asObject(parseJsonBytes(bytes, MAX_REQUEST_BYTES, what), what)
  const index = integerField(object, 'i', what)
  const offset = integerField(object, 'o', what)
  if (index < 0 || index >= MAX_CHUNKS) throw new MalformedMessageError(`${what}.i must be a chunk index`)
  if (offset < 0 || offset >= TRANSFER_CHUNK_MAX) {
    throw new MalformedMessageError(`${what}.o must be an offset inside a chunk`)
  }
  const frameBytes = object['f'] === undefined ? undefined : integerField(object, 'f', what)
  if (frameBytes !== undefined && (frameBytes < CHUNK_FRAME_BYTES || frameBytes > MAX_ASKED_FRAME_BYTES)) {
    throw new MalformedMessageError(`${what}.f must be ${CHUNK_FRAME_BYTES} to ${MAX_ASKED_FRAME_BYTES} bytes`)
  }
  const pack = object['p'] === undefined ? undefined : integerField(object, 'p', what)
  if (pack !== undefined && pack !== 0 && pack !== 1) throw new MalformedMessageError(`${what}.p must be 0 or 1`)
  return {
    studyUid: uidField(object, 's', what),
    versionId: versionIdField(object, 'v', what),
    index,
    offset,
    ...(frameBytes === undefined ? {} : { frameBytes }),
    ...(pack === 0 ? { pack: false as const } : {})
  }
}

export const FRAME_STATUS = { data: 0, notHeld: 1 } as const
export type FrameStatus = (typeof FRAME_STATUS)[keyof typeof FRAME_STATUS]

/** `status` u8, `index` u32be, `offset` u32be, then the bytes of the chunk from `offset` (none unless data). */
export interface ChunkFrame {
  status: FrameStatus
  index: number
  offset: number
  bytes: Uint8Array
}

export function encodeChunkFrameHeader(status: FrameStatus, index: number, offset: number): Uint8Array {
  const header = Buffer.alloc(CHUNK_FRAME_HEADER_BYTES)
  header.writeUInt8(status, 0)
  header.writeUInt32BE(index, 1)
  header.writeUInt32BE(offset, 5)
  return header
}

export function decodeChunkFrame(bytes: Uint8Array): ChunkFrame {
  if (bytes.byteLength < CHUNK_FRAME_HEADER_BYTES || bytes.byteLength > MAX_CHUNK_FRAME_MESSAGE_BYTES) {
    const range = `${CHUNK_FRAME_HEADER_BYTES} to ${MAX_CHUNK_FRAME_MESSAGE_BYTES} bytes`
    throw new MalformedMessageError(`a chunk frame is ${range}, not ${bytes.byteLength}`)
  }
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const status = view.readUInt8(0)
  if (status !== FRAME_STATUS.data && status !== FRAME_STATUS.notHeld) {
    throw new MalformedMessageError(`chunk frame status ${status} is not one this radmesh knows`)
  }
  const body = bytes.subarray(CHUNK_FRAME_HEADER_BYTES)
  const frame: ChunkFrame = { status, index: view.readUInt32BE(1), offset: view.readUInt32BE(5), bytes: body }
  if (frame.status === FRAME_STATUS.data && body.byteLength === 0) {
    throw new MalformedMessageError('a data frame with no bytes')
  }
  if (frame.status !== FRAME_STATUS.data && body.byteLength !== 0) {
    throw new MalformedMessageError('a not-held frame with bytes')
  }
  return frame
}

// /radmesh/announce/1.0.0

export interface Announcement {
  manifest: StudyManifest
  wraps: KeyWrap[]
}
export type AnnouncementAnswer = { status: 'ok' } | { status: 'refused'; reason: string }

export const encodeAnnouncement = (announcement: Announcement): Uint8Array => json(announcement)

export function decodeAnnouncement(bytes: Uint8Array): Announcement {
  const what = 'announcement'
  const object = asObject(parseJsonBytes(bytes, MAX_MANIFEST_MESSAGE_BYTES, what), what)
  return { manifest: decodeManifest(object['manifest']), wraps: wrapList(object['wraps'], what) }
}

export const encodeAnnouncementAnswer = (answer: AnnouncementAnswer): Uint8Array => json(answer)

export function decodeAnnouncementAnswer(bytes: Uint8Array): AnnouncementAnswer {
  const what = 'announcement answer'
  const object = asObject(parseJsonBytes(bytes, MAX_ANNOUNCE_ANSWER_BYTES, what), what)
  const status = stringField(object, 'status', what, 32)
  if (status === 'ok') return { status }
  if (status === 'refused') return { status, reason: stringField(object, 'reason', what, 512) }
  throw new MalformedMessageError(`${what}.status "${status}" is not one this radmesh knows`)
}
