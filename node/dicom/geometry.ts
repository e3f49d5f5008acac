/**
 * Frame geometry: how many frames an instance's pixel data really holds, and how many bytes each native
 * frame takes. Declared values (Number of Frames, Rows, Columns, Samples per Pixel, Bits Allocated) are
 * never trusted as sizes: what they declare is checked against the pixel data actually stored, so a file
 * that declares a billion frames is refused at ingest, and one stored before that check is served with what
 * it holds.
 */
import { TRANSFER_SYNTAX } from './dictionary.ts'
import type { AttributeValue, PixelDataLocation } from './instance.ts'

export interface FrameGeometry {
  /** frames the pixel data holds: what is declared, bounded by what is there (0: no pixel data) */
  frames: number
  /** native pixel data: bytes per frame */
  frameBytes?: number
  /** why the declared geometry does not match the pixel data (the instance is refused at ingest) */
  problem?: string
}

/** Largest Number of Frames radmesh stores (cine loops and tomosynthesis have thousands at most). */
export const MAX_FRAMES = 100_000

const first = (value: AttributeValue | undefined): string | undefined => (Array.isArray(value) ? value[0] : value)

/** A declared unsigned integer, or undefined when absent or not one. */
function declaredInteger(value: AttributeValue | undefined): number | undefined {
  const text = first(value)?.trim()
  if (text === undefined || !/^\+?\d{1,10}$/.test(text)) return undefined
  return Number(text)
}

export function frameGeometry(
  attributes: Record<string, AttributeValue>,
  pixelData: PixelDataLocation | undefined
): FrameGeometry {
  if (pixelData === undefined) return { frames: 0 }
  const declaredFrames = declaredInteger(attributes['00280008'])
  // Absent or unreadable (an IS of "1A" is seen in real files): one frame.
  const declared = declaredFrames === undefined || declaredFrames < 1 ? 1 : declaredFrames
  /** what is served: what the pixel data holds, never more than was declared or than MAX_FRAMES */
  const bounded = (available: number, frameBytes?: number, mismatch?: string): FrameGeometry => {
    const frames = Math.min(declared, available, MAX_FRAMES)
    const problem =
      declared > MAX_FRAMES
        ? `Number of Frames is ${declared}, over the ${MAX_FRAMES} radmesh stores`
        : declared > available
          ? mismatch
          : undefined
    return {
      frames,
      ...(frameBytes === undefined ? {} : { frameBytes }),
      ...(problem === undefined ? {} : { problem })
    }
  }
  if (pixelData.encapsulated) {
    // Every frame starts in a fragment of its own (PS3.5 A.4).
    const available = pixelData.fragments.length
    return bounded(
      available,
      undefined,
      `Number of Frames is ${declared}, but the encapsulated pixel data has ${available} fragment(s)`
    )
  }
  const rows = declaredInteger(attributes['00280010']) ?? 0
  const columns = declaredInteger(attributes['00280011']) ?? 0
  const samples = declaredInteger(attributes['00280002']) ?? 1
  const bitsAllocated = declaredInteger(attributes['00280100']) ?? 16
  if (rows === 0 || columns === 0 || rows > 0xffff || columns > 0xffff) {
    return { frames: 0, problem: `Rows ${rows} and Columns ${columns} do not describe an image` }
  }
  if (samples < 1 || samples > 4 || ![1, 8, 16, 32, 64].includes(bitsAllocated)) {
    return {
      frames: 0,
      problem: `Samples per Pixel ${samples} at Bits Allocated ${bitsAllocated} do not describe an image`
    }
  }
  // YBR_FULL_422 keeps two chroma samples per two pixels (PS3.3 C.7.6.3.1.2): 2 samples per pixel on average.
  const photometric = String(first(attributes['00280004']) ?? '').trim()
  const samplesStored = samples === 3 && photometric === 'YBR_FULL_422' ? 2 : samples
  const frameBytes =
    bitsAllocated === 1
      ? Math.ceil((rows * columns * samples) / 8)
      : rows * columns * samplesStored * (bitsAllocated / 8)
  const available = Math.floor(pixelData.length / frameBytes)
  return bounded(
    available,
    frameBytes,
    `Number of Frames is ${declared}, of ${rows}x${columns}x${samples} at ${bitsAllocated} bits ` +
      `(${frameBytes} bytes each), but the pixel data holds ${pixelData.length} bytes (${available} frame(s))`
  )
}

/**
 * A native frame as PS3.18 serves it, little endian: in a big endian data set, its 16- or 32-bit words are
 * swapped (Bits Allocated says which); in any other, it is returned as it is.
 */
export function littleEndianFrame(
  frame: Uint8Array,
  transferSyntaxUid: string,
  attributes: Record<string, AttributeValue>
): Uint8Array {
  if (transferSyntaxUid !== TRANSFER_SYNTAX.explicitBig) return frame
  const bitsAllocated = declaredInteger(attributes['00280100']) ?? 16
  if (bitsAllocated === 16) return Buffer.from(frame).swap16()
  if (bitsAllocated === 32) return Buffer.from(frame).swap32()
  return frame
}

/**
 * Whether native pixel data is YBR_FULL_422 (two pixels share one Cb and one Cr: Y1 Y2 Cb Cr, PS3.3
 * C.7.6.3.1.2). Such frames are served expanded to YBR_FULL, the same image with each pair's chroma given to
 * both pixels, and the metadata says YBR_FULL: Cornerstone (OHIF's image loader) expects a native colour frame
 * to hold three samples per pixel, and draws a native YBR_FULL_422 one garbled or not at all.
 */
export function isNativeYbr422(
  attributes: Record<string, AttributeValue>,
  pixelData: PixelDataLocation | undefined
): boolean {
  return (
    pixelData !== undefined &&
    !pixelData.encapsulated &&
    String(first(attributes['00280004']) ?? '').trim() === 'YBR_FULL_422' &&
    declaredInteger(attributes['00280002']) === 3 &&
    (declaredInteger(attributes['00280100']) ?? 8) === 8
  )
}

/** Y1 Y2 Cb Cr per pair of pixels of each row to Y Cb Cr per pixel (YBR_FULL, by pixel). */
export function expandYbr422(frame: Uint8Array, rows: number, columns: number): Uint8Array {
  const pairs = Math.ceil(columns / 2)
  if (frame.byteLength < rows * pairs * 4) {
    throw new RangeError(`${frame.byteLength} bytes of YBR_FULL_422 for ${rows} x ${columns} pixels`)
  }
  const out = new Uint8Array(rows * columns * 3)
  for (let row = 0; row < rows; row++) {
    for (let pair = 0; pair < pairs; pair++) {
      const i = (row * pairs + pair) * 4
      for (let k = 0; k < 2 && pair * 2 + k < columns; k++) {
        const o = (row * columns + pair * 2 + k) * 3
        out[o] = frame[i + k] as number
        out[o + 1] = frame[i + 2] as number
        out[o + 2] = frame[i + 3] as number
      }
    }
  }
  return out
}

/**
 * A native frame as WADO-RS serves it: little endian (PS3.18 8.7.3.3.2), and YBR_FULL_422 expanded to
 * YBR_FULL (isNativeYbr422).
 */
export function servedNativeFrame(
  frame: Uint8Array,
  transferSyntaxUid: string,
  attributes: Record<string, AttributeValue>,
  pixelData: PixelDataLocation
): Uint8Array {
  if (!isNativeYbr422(attributes, pixelData)) return littleEndianFrame(frame, transferSyntaxUid, attributes)
  return expandYbr422(frame, declaredInteger(attributes['00280010']) ?? 0, declaredInteger(attributes['00280011']) ?? 0)
}
