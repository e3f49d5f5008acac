/**
 * A PNG writer (RFC 2083 / ISO 15948) for rendered frames: 8-bit greyscale or RGB, no interlace, each row
 * filtered with Sub (small and fast to choose), the image data deflated by node:zlib.
 */
import { deflateSync } from 'node:zlib'

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)

/** CRC-32 (ISO 3309) over a chunk's type and data. */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (const byte of bytes) c = (CRC_TABLE[(c ^ byte) & 0xff] as number) ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.byteLength)
  out.writeUInt32BE(data.byteLength, 0)
  out.write(type, 4, 'latin1')
  out.set(data, 8)
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.byteLength)), 8 + data.byteLength)
  return out
}

/** `pixels`: rows top to bottom, `channels` (1 grey, 3 RGB) bytes per pixel. */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3): Buffer {
  if (pixels.byteLength !== width * height * channels) {
    throw new RangeError(`PNG: ${pixels.byteLength} bytes for ${width} x ${height} x ${channels}`)
  }
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header[8] = 8 // bit depth
  header[9] = channels === 1 ? 0 : 2 // colour type: greyscale, truecolour
  const stride = width * channels
  const filtered = Buffer.alloc((stride + 1) * height)
  for (let y = 0; y < height; y++) {
    const row = y * stride
    const out = y * (stride + 1)
    filtered[out] = 1 // Sub: each byte minus the one `channels` before it
    for (let x = 0; x < stride; x++) {
      const left = x < channels ? 0 : (pixels[row + x - channels] as number)
      filtered[out + 1 + x] = ((pixels[row + x] as number) - left) & 0xff
    }
  }
  const data = deflateSync(filtered, { level: 6 })
  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', data), chunk('IEND', new Uint8Array(0))])
}
