/**
 * Frames to stored pixel values, by transfer syntax. Native frames (WADO-RS sends them little endian) are
 * read as they are; compressed ones go through maintained decoders, the ones OHIF and Cornerstone3D use:
 *
 *   JPEG baseline (8 bit)         @cornerstonejs/codec-libjpeg-turbo-8bit (libjpeg-turbo, WebAssembly)
 *   JPEG extended (12 bit)        Cornerstone's JPEG decoder (pdf.js lineage), from @cornerstonejs/dicom-image-loader
 *   JPEG lossless (process 14)    @cornerstonejs/jpeg-lossless-decoder-js
 *   JPEG-LS                       @cornerstonejs/codec-charls (CharLS, WebAssembly)
 *   JPEG 2000                     @cornerstonejs/codec-openjpeg (OpenJPEG, WebAssembly)
 *   RLE lossless                  rle.ts (PS3.5 Annex G is a page of PackBits)
 *
 * The WebAssembly modules are loaded once, on first use, through `CodecLoader` (the browser fetches the
 * .wasm files from the node; tests in Node read them from node_modules).
 */
import { TRANSFER_SYNTAX } from '../../../protocol/dicomweb/transfer-syntaxes.ts'
import { decodeRle } from './rle.ts'
import { type FrameInfo, frameInfoProblem } from './frame-info.ts'

const TS = TRANSFER_SYNTAX

/** Stored values of one frame. `planar`: all of sample 1, then sample 2, …; else interleaved. */
export interface DecodedFrame {
  values: Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  planar: boolean
  /** the decoder already turned YCbCr into RGB (JPEG baseline, JPEG 2000 with its colour transform) */
  rgb: boolean
}

export class DecodeError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DecodeError'
  }
}

interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array
  decode(): void
  getDecodedBuffer(): Uint8Array
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned?: boolean }
  delete(): void
}
type WasmModule = Record<string, new () => WasmDecoder>
export type CodecName = 'libjpeg-turbo' | 'charls' | 'openjpeg'
export interface Codecs {
  wasm(name: CodecName): Promise<WasmModule>
  jpeg12(): Promise<
    new () => {
      parse(data: Uint8Array): void
      colorTransform: boolean | undefined
      getData(w: number, h: number): Uint8Array
      getData16(w: number, h: number): Uint16Array
    }
  >
  jpegLossless(): Promise<
    new () => { decompress(buffer: ArrayBufferLike, offset: number, length: number): ArrayBuffer }
  >
}

export const SUPPORTED_SYNTAXES: readonly string[] = Object.values(TS).filter(ts => ts !== TS.deflatedExplicitLittle)

function typed(bytes: Uint8Array, info: FrameInfo, signed: boolean): DecodedFrame['values'] {
  const count = info.rows * info.columns * info.samplesPerPixel
  // A view at an odd offset (a part inside a multipart body) is copied, as typed arrays need aligned starts.
  const aligned = bytes.byteOffset % (info.bitsAllocated / 8) === 0 ? bytes : new Uint8Array(bytes)
  const { buffer, byteOffset } = aligned
  switch (info.bitsAllocated) {
    case 8:
      return signed ? new Int8Array(buffer, byteOffset, count) : new Uint8Array(buffer, byteOffset, count)
    case 16:
      return signed ? new Int16Array(buffer, byteOffset, count) : new Uint16Array(buffer, byteOffset, count)
    case 32:
      return signed ? new Int32Array(buffer, byteOffset, count) : new Uint32Array(buffer, byteOffset, count)
    default:
      throw new DecodeError(`${info.bitsAllocated} bits allocated per sample is not supported`)
  }
}

function expectLength(bytes: Uint8Array, info: FrameInfo, what: string): void {
  const needed = (info.rows * info.columns * info.samplesPerPixel * info.bitsAllocated) / 8
  if (bytes.byteLength < needed) throw new DecodeError(`${what}: ${bytes.byteLength} bytes for a frame of ${needed}`)
}

async function wasmDecode(
  codecs: Codecs,
  name: CodecName,
  decoderClass: string,
  frame: Uint8Array
): Promise<{ bytes: Uint8Array; components: number; bits: number }> {
  const module = await codecs.wasm(name)
  const Decoder = module[decoderClass]
  if (Decoder === undefined) throw new DecodeError(`the ${name} codec has no ${decoderClass}`)
  const decoder = new Decoder()
  try {
    decoder.getEncodedBuffer(frame.byteLength).set(frame)
    decoder.decode()
    const info = decoder.getFrameInfo()
    return { bytes: decoder.getDecodedBuffer().slice(), components: info.componentCount, bits: info.bitsPerSample }
  } catch (error) {
    throw new DecodeError(
      `${name} could not decode the frame: ` +
        `${typeof error === 'number' ? `error ${error}` : ((error as Error).message ?? String(error))}`
    )
  } finally {
    decoder.delete()
  }
}

export async function decodeFrame(frame: Uint8Array, info: FrameInfo, codecs: Codecs): Promise<DecodedFrame> {
  const problem = frameInfoProblem(info)
  if (problem !== undefined) throw new DecodeError(`this frame cannot be shown: ${problem}`)
  const signed = info.pixelRepresentation === 1
  switch (info.transferSyntaxUid) {
    case TS.implicitLittle:
    case TS.explicitLittle:
    case TS.explicitBig: // WADO-RS frames of big endian objects arrive little endian (PS3.18 8.7.3.3.2)
      if (info.bitsAllocated === 1) return { values: unpackBits(frame, info), planar: false, rgb: false }
      if (info.photometric === 'YBR_FULL_422' && info.samplesPerPixel === 3 && info.bitsAllocated === 8)
        return { values: expand422(frame, info), planar: false, rgb: false }
      expectLength(frame, info, 'native frame')
      return { values: typed(frame, info, signed), planar: info.planarConfiguration === 1, rgb: false }
    case TS.rle: {
      const bytes = decodeRle(frame, info.rows, info.columns, info.samplesPerPixel, info.bitsAllocated)
      return { values: typed(bytes, info, signed), planar: true, rgb: false }
    }
    case TS.jpegBaseline: {
      if (info.bitsAllocated !== 8)
        return await decodeFrame(frame, { ...info, transferSyntaxUid: TS.jpegExtended }, codecs)
      const { bytes } = await wasmDecode(codecs, 'libjpeg-turbo', 'JPEGDecoder', frame)
      expectLength(bytes, info, 'JPEG baseline')
      // libjpeg-turbo turns YCbCr into RGB unless the image says its components are RGB already.
      return { values: typed(bytes, info, false), planar: false, rgb: info.samplesPerPixel === 3 }
    }
    case TS.jpegExtended: {
      if (info.bitsStored <= 8 && info.bitsAllocated === 8)
        return await decodeFrame(frame, { ...info, transferSyntaxUid: TS.jpegBaseline }, codecs)
      const JpegImage = await codecs.jpeg12()
      const jpeg = new JpegImage()
      try {
        jpeg.parse(frame)
        jpeg.colorTransform = false
        const values =
          info.bitsAllocated === 8 ? jpeg.getData(info.columns, info.rows) : jpeg.getData16(info.columns, info.rows)
        return {
          values:
            signed && values instanceof Uint16Array
              ? new Int16Array(values.buffer, values.byteOffset, values.length)
              : values,
          planar: false,
          rgb: false
        }
      } catch (error) {
        throw new DecodeError(`JPEG extended: ${(error as Error).message ?? String(error)}`)
      }
    }
    case TS.jpegLossless:
    case TS.jpegLosslessSV1: {
      const Decoder = await codecs.jpegLossless()
      let out: ArrayBuffer
      try {
        out = new Decoder().decompress(frame.buffer, frame.byteOffset, frame.byteLength)
      } catch (error) {
        throw new DecodeError(`JPEG lossless: ${(error as Error).message ?? String(error)}`)
      }
      const bytes = new Uint8Array(out)
      expectLength(bytes, info, 'JPEG lossless')
      return { values: typed(bytes, info, signed), planar: false, rgb: false }
    }
    case TS.jpegLsLossless:
    case TS.jpegLsNearLossless: {
      const { bytes } = await wasmDecode(codecs, 'charls', 'JpegLSDecoder', frame)
      expectLength(bytes, info, 'JPEG-LS')
      return { values: typed(bytes, info, signed), planar: false, rgb: false }
    }
    case TS.jpeg2000Lossless:
    case TS.jpeg2000: {
      const { bytes } = await wasmDecode(codecs, 'openjpeg', 'J2KDecoder', frame)
      expectLength(bytes, info, 'JPEG 2000')
      // OpenJPEG undoes the reversible / irreversible colour transform (YBR_RCT / YBR_ICT): RGB out.
      return { values: typed(bytes, info, signed), planar: false, rgb: info.samplesPerPixel === 3 }
    }
    default:
      throw new DecodeError(`transfer syntax ${info.transferSyntaxUid} cannot be displayed`)
  }
}

/** 1 bit per pixel (segmentations, some masks): to 0/1 bytes. */
function unpackBits(frame: Uint8Array, info: FrameInfo): Uint8Array {
  const count = info.rows * info.columns
  if (frame.byteLength * 8 < count)
    throw new DecodeError(`native frame: ${frame.byteLength} bytes for ${count} one-bit pixels`)
  const out = new Uint8Array(count)
  for (let i = 0; i < count; i++) out[i] = ((frame[i >> 3] as number) >> (i & 7)) & 1
  return out
}

/** Native YBR_FULL_422 (Y1 Y2 Cb Cr per pair of pixels, PS3.3 C.7.6.3.1.2) to Y Cb Cr per pixel. */
function expand422(frame: Uint8Array, info: FrameInfo): Uint8Array {
  const pairsPerRow = Math.ceil(info.columns / 2)
  if (frame.byteLength < info.rows * pairsPerRow * 4)
    throw new DecodeError(
      `native YBR_FULL_422 frame: ${frame.byteLength} bytes for ${info.rows} x ${info.columns} pixels`
    )
  const out = new Uint8Array(info.rows * info.columns * 3)
  for (let row = 0; row < info.rows; row++) {
    for (let pair = 0; pair < pairsPerRow; pair++) {
      const i = (row * pairsPerRow + pair) * 4
      for (let k = 0; k < 2; k++) {
        const column = pair * 2 + k
        if (column >= info.columns) break
        const o = (row * info.columns + column) * 3
        out[o] = frame[i + k] as number
        out[o + 1] = frame[i + 2] as number
        out[o + 2] = frame[i + 3] as number
      }
    }
  }
  return out
}
