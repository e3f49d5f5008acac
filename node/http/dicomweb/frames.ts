/**
 * Cutting frames out of stored pixel data (WADO-RS `…/frames/N`): native pixel data by frame size (big
 * endian turned little endian, as PS3.18 wants), encapsulated pixel data by the basic offset table, one
 * fragment per frame, or all fragments of a single frame.
 *
 * Only the chunks that hold a frame are read (`archive.readRange`), one frame at a time; a deflated data set
 * is inflated as a stream, off the event loop, up to the last byte asked for. How many frames there are is
 * what the pixel data holds (dicom/geometry.ts), never what the object declares.
 */
import { createInflateRaw } from 'node:zlib'
import type { Archive, InstanceRecord } from '../../archive/archive.ts'
import { DEFLATED_SYNTAXES, TRANSFER_SYNTAX } from '../../dicom/dictionary.ts'
import { frameGeometry, servedNativeFrame } from '../../dicom/geometry.ts'
import type { FilePiece } from '../../dicom/json.ts'
import { CHUNK_SIZE } from '../../archive/chunks.ts'
import { BadRequestError, RadmeshError } from '../../errors.ts'

const MEDIA_TYPES = new Map<string, string>(
  Object.entries({
    [TRANSFER_SYNTAX.jpegBaseline]: 'image/jpeg',
    [TRANSFER_SYNTAX.jpegExtended]: 'image/jpeg',
    [TRANSFER_SYNTAX.jpegLossless]: 'image/jpeg',
    [TRANSFER_SYNTAX.jpegLosslessSV1]: 'image/jpeg',
    [TRANSFER_SYNTAX.jpegLsLossless]: 'image/jls',
    [TRANSFER_SYNTAX.jpegLsNearLossless]: 'image/jls',
    [TRANSFER_SYNTAX.jpeg2000Lossless]: 'image/jp2',
    [TRANSFER_SYNTAX.jpeg2000]: 'image/jp2',
    [TRANSFER_SYNTAX.rle]: 'image/x-dicom-rle'
  })
)

/** Frames one request may name (a frame may be named more than once). */
export const MAX_FRAMES_PER_REQUEST = 1000
/** One frame is read into memory whole: a mammogram is 50 MB, a frame over this is not served. */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024

export interface Frame {
  body: Uint8Array
  contentType: string
  transferSyntaxUid: string
}

type FrameSource = Pick<Archive, 'readRange' | 'chunksOf'>

export function parseFrameList(text: string): number[] {
  const parts = text.split(',')
  if (parts.length > MAX_FRAMES_PER_REQUEST)
    throw new BadRequestError(
      `frame list of ${parts.length} frames: ask for at most ${MAX_FRAMES_PER_REQUEST} at a time`
    )
  const frames = parts.map(part => Number(part.trim()))
  if (frames.some(n => !Number.isSafeInteger(n) || n < 1))
    throw new BadRequestError(`frame list "${text.slice(0, 80)}": give frame numbers from 1, separated by commas`)
  return frames
}

/** How many frames an instance's stored pixel data holds (0 when none). */
export const frameCount = (instance: InstanceRecord): number =>
  frameGeometry(instance.attributes, instance.pixelData).frames

/** A span of the data set: where it starts, and how long it is. */
interface Span {
  offset: number
  length: number
}

/**
 * The frames asked for, one at a time (RADMESH_NOT_FOUND for one the instance does not hold, before any is
 * read). The media type of every frame is the same: `contentType`, `transferSyntaxUid`.
 */
export function planFrames(
  instance: InstanceRecord,
  frameNumbers: number[]
): { contentType: string; transferSyntaxUid: string; frames: (source: FrameSource) => AsyncGenerator<Frame> } {
  const pixelData = instance.pixelData
  if (pixelData === undefined)
    throw new RadmeshError('RADMESH_NOT_FOUND', `instance ${instance.sopUid} has no pixel data`)
  const geometry = frameGeometry(instance.attributes, pixelData)
  if (geometry.frames === 0 && geometry.problem !== undefined)
    throw new RadmeshError('RADMESH_INVALID_DICOM', `instance ${instance.sopUid}: ${geometry.problem}`)
  for (const n of frameNumbers) {
    if (n > geometry.frames)
      throw new RadmeshError(
        'RADMESH_NOT_FOUND',
        `instance ${instance.sopUid} holds ${geometry.frames} frame(s), not ${n}`
      )
  }
  const deflated = DEFLATED_SYNTAXES.has(instance.transferSyntaxUid)
  const tooLarge = (bytes: number): RadmeshError =>
    new RadmeshError(
      'RADMESH_TOO_LARGE',
      `instance ${instance.sopUid}: a frame of ${bytes} bytes is over the ${MAX_FRAME_BYTES} bytes served at once`
    )
  if (!pixelData.encapsulated) {
    const frameBytes = geometry.frameBytes as number
    if (frameBytes > MAX_FRAME_BYTES) throw tooLarge(frameBytes)
    return {
      contentType: 'application/octet-stream',
      transferSyntaxUid: TRANSFER_SYNTAX.explicitLittle,
      frames: async function* (source) {
        for (const n of frameNumbers) {
          const span = { offset: pixelData.offset + (n - 1) * frameBytes, length: frameBytes }
          const read = await readSpans(source, instance, [span], deflated)
          const body = servedNativeFrame(read, instance.transferSyntaxUid, instance.attributes, pixelData)
          yield { body, contentType: 'application/octet-stream', transferSyntaxUid: TRANSFER_SYNTAX.explicitLittle }
        }
      }
    }
  }
  const { fragments, offsetTable } = pixelData
  let groups: Span[][]
  if (geometry.frames === 1) {
    groups = [fragments]
  } else if (offsetTable.length === geometry.frames) {
    // Offsets in the table count from the first fragment's item tag; each fragment item adds 8 bytes of header.
    const first = fragments[0]?.offset ?? 0
    const starts = offsetTable.map(o => first - 8 + o)
    groups = starts.map((start, i) =>
      fragments.filter(
        f => f.offset - 8 >= start && (i + 1 >= starts.length || f.offset - 8 < (starts[i + 1] as number))
      )
    )
  } else if (fragments.length === geometry.frames) {
    groups = fragments.map(f => [f])
  } else {
    throw new RadmeshError(
      'RADMESH_INVALID_DICOM',
      `instance ${instance.sopUid}: ${fragments.length} fragments for ${geometry.frames} frames and no offset table; ` +
        'its frames cannot be told apart'
    )
  }
  for (const n of frameNumbers) {
    const bytes = (groups[n - 1] ?? []).reduce((sum, f) => sum + f.length, 0)
    if (bytes > MAX_FRAME_BYTES) throw tooLarge(bytes)
  }
  const contentType = MEDIA_TYPES.get(instance.transferSyntaxUid) ?? 'application/octet-stream'
  return {
    contentType,
    transferSyntaxUid: instance.transferSyntaxUid,
    frames: async function* (source) {
      for (const n of frameNumbers) {
        yield {
          body: await readSpans(source, instance, groups[n - 1] ?? [], deflated),
          contentType,
          transferSyntaxUid: instance.transferSyntaxUid
        }
      }
    }
  }
}

/** The spans of the data set, joined: read from the chunks that hold them, or inflated up to them. */
async function readSpans(
  source: FrameSource,
  instance: InstanceRecord,
  spans: Span[],
  deflated: boolean
): Promise<Buffer> {
  if (spans.length === 0) return Buffer.alloc(0)
  if (deflated) return await inflatedSpans(source, instance, spans)
  // The fragments of one frame lie one after the other: read from the first to the last, then cut.
  const from = instance.datasetOffset + (spans[0] as Span).offset
  const to = instance.datasetOffset + Math.max(...spans.map(span => span.offset + span.length))
  const bytes = await source.readRange(instance, from, to)
  if (spans.length === 1) return bytes
  return Buffer.concat(
    spans.map(span =>
      bytes.subarray(
        span.offset + instance.datasetOffset - from,
        span.offset + instance.datasetOffset - from + span.length
      )
    )
  )
}

/** The spans of a deflated data set, inflated as a stream from its start up to the last byte asked for. */
async function inflatedSpans(source: FrameSource, instance: InstanceRecord, spans: Span[]): Promise<Buffer> {
  const end = Math.max(...spans.map(span => span.offset + span.length))
  const start = Math.min(...spans.map(span => span.offset))
  const window = Buffer.alloc(end - start)
  let inflated = 0
  const inflater = createInflateRaw({ chunkSize: 256 * 1024 })
  const done = new Promise<void>((resolve, reject) => {
    inflater.on('data', (piece: Buffer) => {
      const pieceStart = inflated
      inflated += piece.byteLength
      const from = Math.max(pieceStart, start)
      const to = Math.min(inflated, end)
      if (from < to) piece.copy(window, from - start, from - pieceStart, to - pieceStart)
      if (inflated >= end) {
        inflater.destroy()
        resolve()
      }
    })
    inflater.on('error', reject)
    inflater.on('end', () => {
      inflated >= end ? resolve() : reject(new Error('the deflated data set ends before its pixel data'))
    })
  })
  done.catch(() => {})
  let offset = 0
  for await (const chunk of source.chunksOf(instance)) {
    if (inflated >= end) break
    const from = Math.max(0, instance.datasetOffset - offset)
    offset += chunk.byteLength
    if (from >= chunk.byteLength) continue
    if (!inflater.write(chunk.subarray(from)))
      await Promise.race([new Promise(resolve => inflater.once('drain', resolve)), done.catch(() => {})])
  }
  if (inflated < end && !inflater.destroyed) inflater.end()
  await done
  return Buffer.concat(spans.map(span => window.subarray(span.offset - start, span.offset - start + span.length)))
}

/**
 * A stored file's chunks for a reader that passes over the pixel data: a chunk wholly inside native pixel data
 * (of a data set not deflated) is offered as a count of bytes to skip, and read only if the reader needs it.
 */
export async function* piecesOf(
  archive: Pick<Archive, 'readRange'>,
  instance: InstanceRecord
): AsyncGenerator<FilePiece> {
  const pixels = instance.pixelData
  const skippable = pixels !== undefined && !pixels.encapsulated && !DEFLATED_SYNTAXES.has(instance.transferSyntaxUid)
  const from = skippable ? instance.datasetOffset + pixels.offset : 0
  const to = skippable ? from + pixels.length : 0
  for (let i = 0; i < instance.chunks.length; i++) {
    const start = i * CHUNK_SIZE
    const end = Math.min(instance.size, start + CHUNK_SIZE)
    if (start >= from && end <= to) {
      yield { skip: end - start, read: async () => await archive.readRange(instance, start, end) }
    } else {
      yield await archive.readRange(instance, start, end)
    }
  }
}
