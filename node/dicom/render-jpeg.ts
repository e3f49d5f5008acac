/**
 * A JPEG writer for rendered frames (PS3.18 8.3.5: image/jpeg is the default rendered media type): baseline
 * JPEG by jpeg-js, a pure JavaScript encoder (no WebAssembly heap to corrupt, no native build; the one
 * Playwright encodes its screenshots with). It writes YCbCr, 4:4:4, so a greyscale frame comes out as three
 * equal channels, which every viewer shows as grey.
 */
import { encode } from 'jpeg-js'

/** The quality used when the request names none (PS3.18 leaves it to the server). */
export const DEFAULT_JPEG_QUALITY = 90

/** `pixels`: rows top to bottom, `channels` (1 grey, 3 RGB) bytes per pixel; `quality` from 1 to 100. */
export function encodeJpeg(
  pixels: Uint8Array,
  width: number,
  height: number,
  channels: 1 | 3,
  quality = DEFAULT_JPEG_QUALITY
): Buffer {
  if (pixels.byteLength !== width * height * channels) {
    throw new RangeError(`JPEG: ${pixels.byteLength} bytes for ${width} x ${height} x ${channels}`)
  }
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`JPEG quality ${quality}: give an integer from 1 to 100`)
  }
  // jpeg-js takes RGBA (alpha ignored).
  const rgba = Buffer.alloc(width * height * 4)
  for (let i = 0, o = 0; o < rgba.byteLength; i += channels, o += 4) {
    const r = pixels[i] as number
    rgba[o] = r
    rgba[o + 1] = channels === 1 ? r : (pixels[i + 1] as number)
    rgba[o + 2] = channels === 1 ? r : (pixels[i + 2] as number)
    rgba[o + 3] = 255
  }
  return encode({ data: rgba, width, height }, quality).data
}
