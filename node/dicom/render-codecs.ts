/**
 * Compressed frames to stored values for rendering, in Node: the maintained decoders OHIF and Cornerstone3D
 * use (WebAssembly builds, loaded once on first use) and PS3.5 Annex G RLE.
 *
 *   JPEG baseline (8 bit)        @cornerstonejs/codec-libjpeg-turbo-8bit
 *   JPEG lossless (process 14)   @cornerstonejs/jpeg-lossless-decoder-js
 *   JPEG-LS                      @cornerstonejs/codec-charls
 *   JPEG 2000                    @cornerstonejs/codec-openjpeg
 *   RLE lossless                 below
 *
 * JPEG extended (12 bit) is not rendered (RADMESH_NOT_ACCEPTABLE, naming …/frames/N instead). Rendered JPEG is
 * written by render-jpeg.ts, not by the encoder of codec-libjpeg-turbo-8bit 1.2.8, measured unfit to serve
 * (deleting one corrupts its module's memory, small greyscale and some colour images come out with an empty
 * scan and no EOI).
 */
import { createRequire } from 'node:module'
import { TRANSFER_SYNTAX } from './dictionary.ts'
import { type DecodedFrame, decodeNative, notRenderable, type RenderInfo } from './render.ts'

const require = createRequire(import.meta.url)
const TS = TRANSFER_SYNTAX

interface FrameInfo {
  width: number
  height: number
  bitsPerSample: number
  componentCount: number
  isSigned?: boolean
}
interface WasmCodec {
  getEncodedBuffer(length?: number): Uint8Array
  getDecodedBuffer(info?: FrameInfo): Uint8Array
  decode(): void
  delete(): void
}
type WasmModule = Record<string, (new () => WasmCodec) | undefined>
const MODULES = {
  'libjpeg-turbo': '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs',
  charls: '@cornerstonejs/codec-charls/decodewasmjs',
  openjpeg: '@cornerstonejs/codec-openjpeg/decodewasmjs'
} as const
const loaded = new Map<string, Promise<WasmModule>>()

async function wasm(name: keyof typeof MODULES): Promise<WasmModule> {
  let module = loaded.get(name)
  if (module === undefined) {
    const factory = require(MODULES[name]) as (options: object) => Promise<WasmModule>
    module = factory({ print: () => {}, printErr: () => {} })
    loaded.set(name, module)
  }
  return await module
}

async function withCodec<T>(name: keyof typeof MODULES, className: string, use: (codec: WasmCodec) => T): Promise<T> {
  const Codec = (await wasm(name))[className]
  if (Codec === undefined) throw new Error(`the ${name} codec has no ${className}`)
  const codec = new Codec()
  try {
    return use(codec)
  } catch (error) {
    throw notRenderable(`${name} failed: ${typeof error === 'number' ? `error ${error}` : String(error)}`)
  } finally {
    codec.delete()
  }
}

const wasmDecode = async (name: keyof typeof MODULES, className: string, frame: Uint8Array): Promise<Uint8Array> =>
  await withCodec(name, className, codec => {
    codec.getEncodedBuffer(frame.byteLength).set(frame)
    codec.decode()
    return codec.getDecodedBuffer().slice()
  })

/** Stored values of a frame in `transferSyntaxUid`; native frames arrive little endian (PS3.18 8.7.3.3.2). */
export async function decodeForRendering(
  frame: Uint8Array,
  transferSyntaxUid: string,
  info: RenderInfo
): Promise<DecodedFrame> {
  switch (transferSyntaxUid) {
    case TS.implicitLittle:
    case TS.explicitLittle:
    case TS.explicitBig:
    case TS.deflatedExplicitLittle:
      return decodeNative(frame, info)
    case TS.rle:
      return { ...decodeNative(decodeRle(frame, info), { ...info, planarConfiguration: 1 }), rgb: false }
    case TS.jpegBaseline:
    case TS.jpegExtended: {
      if (info.bitsAllocated !== 8) throw notRenderable('JPEG of more than 8 bits (process 2 and 4)')
      const bytes = await wasmDecode('libjpeg-turbo', 'JPEGDecoder', frame)
      // libjpeg-turbo turns YCbCr into RGB itself.
      const decoded = decodeNative(bytes, { ...info, photometric: 'RGB', planarConfiguration: 0 })
      return { ...decoded, rgb: info.samplesPerPixel === 3 }
    }
    case TS.jpegLossless:
    case TS.jpegLosslessSV1: {
      const { Decoder } = require('@cornerstonejs/jpeg-lossless-decoder-js') as {
        Decoder: new () => { decompress(buffer: ArrayBufferLike, offset: number, length: number): ArrayBuffer }
      }
      let out: ArrayBuffer
      try {
        out = new Decoder().decompress(frame.buffer, frame.byteOffset, frame.byteLength)
      } catch (error) {
        throw notRenderable(`JPEG lossless: ${String(error)}`)
      }
      return decodeNative(new Uint8Array(out), { ...info, planarConfiguration: 0 })
    }
    case TS.jpegLsLossless:
    case TS.jpegLsNearLossless:
      return decodeNative(await wasmDecode('charls', 'JpegLSDecoder', frame), { ...info, planarConfiguration: 0 })
    case TS.jpeg2000Lossless:
    case TS.jpeg2000: {
      const bytes = await wasmDecode('openjpeg', 'J2KDecoder', frame)
      // OpenJPEG undoes the colour transform (YBR_RCT, YBR_ICT): RGB out.
      return { ...decodeNative(bytes, { ...info, planarConfiguration: 0 }), rgb: info.samplesPerPixel === 3 }
    }
    default:
      throw notRenderable(`transfer syntax ${transferSyntaxUid}`)
  }
}

/** PS3.5 Annex G: a 64-byte header of segment offsets, each segment a byte plane in PackBits. */
export function decodeRle(frame: Uint8Array, info: RenderInfo): Uint8Array {
  const bytesPerSample = info.bitsAllocated / 8
  const pixels = info.rows * info.columns
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  if (frame.byteLength < 64) throw notRenderable('an RLE frame shorter than its header')
  const segments = view.getUint32(0, true)
  if (segments !== info.samplesPerPixel * bytesPerSample) throw notRenderable(`RLE with ${segments} segments`)
  const out = new Uint8Array(pixels * segments)
  for (let s = 0; s < segments; s++) {
    const start = view.getUint32(4 + s * 4, true)
    const end = s + 1 < segments ? view.getUint32(8 + s * 4, true) : frame.byteLength
    // Segment s holds byte (s % bytesPerSample) of sample ⌊s / bytesPerSample⌋, most significant first; out is
    // little endian, plane by plane.
    const sample = Math.floor(s / bytesPerSample)
    const byte = bytesPerSample - 1 - (s % bytesPerSample)
    let o = 0
    let i = start
    const put = (value: number): void => {
      if (o < pixels) out[(sample * pixels + o) * bytesPerSample + byte] = value
      o++
    }
    while (i < end && o < pixels) {
      const n = frame[i++] as number
      if (n < 128) {
        for (let k = 0; k <= n && i < end; k++) put(frame[i++] as number)
      } else if (n > 128) {
        const value = frame[i++] as number
        for (let k = 0; k < 257 - n; k++) put(value)
      }
    }
  }
  return out
}
