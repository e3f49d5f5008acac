/**
 * A PNG read back to its pixels, as radmesh writes them (node/dicom/render-png.ts): 8-bit grey or RGB, one
 * IDAT stream, every row with the Sub filter. Enough to check what a rendered resource drew, pixel by pixel.
 */
import { inflateSync } from 'node:zlib'

export interface PngPixels {
  data: Uint8Array
  width: number
  height: number
  channels: 1 | 3
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
const SUB_FILTER = 1

export function readPng(png: Uint8Array): PngPixels {
  const buffer = Buffer.from(png.buffer, png.byteOffset, png.byteLength)
  if (SIGNATURE.some((byte, i) => buffer[i] !== byte)) throw new Error('not a PNG')
  const width = buffer.readUInt32BE(16)
  const height = buffer.readUInt32BE(20)
  const channels = buffer[25] === 0 ? 1 : 3
  if (buffer[24] !== 8) throw new Error(`PNG of ${buffer[24]} bits per sample`)
  const idat: Buffer[] = []
  for (let at = 8; at < buffer.byteLength; ) {
    const length = buffer.readUInt32BE(at)
    if (buffer.toString('latin1', at + 4, at + 8) === 'IDAT') idat.push(buffer.subarray(at + 8, at + 8 + length))
    at += 12 + length
  }
  const raw = inflateSync(Buffer.concat(idat))
  const stride = width * channels
  const data = new Uint8Array(stride * height)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]
    if (filter !== SUB_FILTER && filter !== 0) throw new Error(`row ${y}: PNG filter ${filter} is not read here`)
    for (let x = 0; x < stride; x++) {
      const left = filter === 0 || x < channels ? 0 : (data[y * stride + x - channels] as number)
      data[y * stride + x] = ((raw[y * (stride + 1) + 1 + x] as number) + left) & 0xff
    }
  }
  return { data, width, height, channels }
}
