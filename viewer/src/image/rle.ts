/**
 * DICOM RLE Lossless (PS3.5 Annex G): a 64-byte header with up to 15 segment offsets, each segment a
 * PackBits stream of one byte plane (most significant byte first, per sample). Decoded to native little
 * endian samples, planar (all of sample 1, then sample 2, …), as the segments are ordered.
 */

export class RleError extends Error {
  constructor(message: string) {
    super(`RLE: ${message}`)
    this.name = 'RleError'
  }
}

export function decodeRle(
  frame: Uint8Array,
  rows: number,
  columns: number,
  samplesPerPixel: number,
  bitsAllocated: number
): Uint8Array {
  if (frame.byteLength < 64) throw new RleError('the frame is shorter than its 64-byte header')
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  const segments = view.getUint32(0, true)
  const bytesPerSample = bitsAllocated / 8
  if (!Number.isInteger(bytesPerSample) || segments !== samplesPerPixel * bytesPerSample) {
    throw new RleError(`${segments} segments for ${samplesPerPixel} sample(s) of ${bitsAllocated} bits`)
  }
  const pixels = rows * columns
  // A PackBits run of 2 bytes makes at most 128: a segment cannot hold more pixels than that (nothing is
  // allocated from a size the data cannot back).
  if (pixels * segments > (frame.byteLength - 64) * 64)
    throw new RleError(`${frame.byteLength} bytes cannot hold ${rows} x ${columns} pixels of ${segments} segment(s)`)
  const out = new Uint8Array(pixels * samplesPerPixel * bytesPerSample)
  for (let s = 0; s < segments; s++) {
    const start = view.getUint32(4 + 4 * s, true)
    const end = s + 1 < segments ? view.getUint32(8 + 4 * s, true) : frame.byteLength
    if (start < 64 || end > frame.byteLength || start > end)
      throw new RleError(`segment ${s + 1} lies outside the frame`)
    const sample = Math.floor(s / bytesPerSample)
    // Segment order is most significant byte first; little endian output puts it last.
    const byte = bytesPerSample - 1 - (s % bytesPerSample)
    const base = sample * pixels * bytesPerSample
    let pixel = 0
    let i = start
    while (i < end && pixel < pixels) {
      const n = ((frame[i++] as number) << 24) >> 24
      if (n >= 0) {
        for (let k = 0; k <= n && pixel < pixels && i < end; k++)
          out[base + pixel++ * bytesPerSample + byte] = frame[i++] as number
      } else if (n !== -128) {
        const value = frame[i++] as number
        for (let k = 0; k < 1 - n && pixel < pixels; k++) out[base + pixel++ * bytesPerSample + byte] = value
      }
    }
    if (pixel < pixels) throw new RleError(`segment ${s + 1} decodes to ${pixel} of ${pixels} pixels`)
  }
  return out
}
