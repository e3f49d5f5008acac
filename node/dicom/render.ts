/**
 * Rendering a frame for people (PS3.18 8.3.5, rendered resources): stored values through the Modality LUT
 * (Rescale Slope and Intercept), a linear VOI window (PS3.3 C.11.2.1.2: the instance's first Window Center
 * and Width, else the frame's own minimum and maximum), MONOCHROME1 inverted; colour (RGB, YBR_FULL,
 * YBR_FULL_422, by pixel or by plane) turned into 8-bit RGB. What an image needs to be drawn is read from its
 * DICOM JSON (dicom/json.ts), as WADO-RS metadata gives it. Decoding compressed frames is render-codecs.ts.
 */
import { RadmeshError } from '../errors.ts'
import { expandYbr422 } from './geometry.ts'

type JsonDataset = Record<string, { Value?: unknown[] } | undefined>

export interface RenderInfo {
  rows: number
  columns: number
  samplesPerPixel: number
  bitsAllocated: number
  bitsStored: number
  /** 1: two's complement */
  pixelRepresentation: number
  photometric: string
  /** 1: all of the first sample, then the second, …; 0: sample by sample within each pixel */
  planarConfiguration: number
  slope: number
  intercept: number
  window?: Window
}

/** A linear VOI window, in rescaled (modality) units. */
export interface Window {
  center: number
  width: number
}

/** Stored values of one frame, decoded. `rgb`: the decoder already turned YCbCr into RGB. */
export interface DecodedFrame {
  values: ArrayLike<number>
  planar: boolean
  rgb: boolean
}

/** An 8-bit image ready to encode: grey (1 channel) or RGB (3 channels), rows top to bottom. */
export interface Rendered {
  data: Uint8Array
  width: number
  height: number
  channels: 1 | 3
}

export const notRenderable = (why: string): RadmeshError =>
  new RadmeshError('RADMESH_NOT_ACCEPTABLE', `this frame cannot be rendered: ${why}; retrieve it with …/frames/N`)

function number(dataset: JsonDataset, tag: string): number | undefined {
  const value = dataset[tag]?.Value?.[0]
  const n = typeof value === 'string' ? Number(value) : value
  return typeof n === 'number' && Number.isFinite(n) ? n : undefined
}

export function renderInfoOf(dataset: JsonDataset): RenderInfo {
  const bitsAllocated = number(dataset, '00280100') ?? 16
  const center = number(dataset, '00281050')
  const width = number(dataset, '00281051')
  return {
    rows: number(dataset, '00280010') ?? 0,
    columns: number(dataset, '00280011') ?? 0,
    samplesPerPixel: number(dataset, '00280002') ?? 1,
    bitsAllocated,
    bitsStored: number(dataset, '00280101') ?? bitsAllocated,
    pixelRepresentation: number(dataset, '00280103') ?? 0,
    photometric: String(dataset['00280004']?.Value?.[0] ?? 'MONOCHROME2').trim(),
    planarConfiguration: number(dataset, '00280006') ?? 0,
    slope: number(dataset, '00281053') ?? 1,
    intercept: number(dataset, '00281052') ?? 0,
    ...(center !== undefined && width !== undefined && width >= 1 ? { window: { center, width } } : {})
  }
}

/** Native (uncompressed, little endian) frame bytes as stored values. */
export function decodeNative(frame: Uint8Array, info: RenderInfo): DecodedFrame {
  const { rows, columns, samplesPerPixel, bitsAllocated } = info
  const pixels = rows * columns
  if (bitsAllocated === 1) {
    if (frame.byteLength * 8 < pixels) throw notRenderable(`${frame.byteLength} bytes for ${pixels} one-bit pixels`)
    const values = Uint8Array.from({ length: pixels }, (_, i) => ((frame[i >> 3] as number) >> (i & 7)) & 1)
    return { values, planar: false, rgb: false }
  }
  if (info.photometric === 'YBR_FULL_422' && samplesPerPixel === 3 && frame.byteLength < pixels * 3) {
    if (frame.byteLength < rows * Math.ceil(columns / 2) * 4) {
      throw notRenderable(`${frame.byteLength} bytes of YBR_FULL_422`)
    }
    return { values: expandYbr422(frame, rows, columns), planar: false, rgb: false }
  }
  const count = pixels * samplesPerPixel
  const bytes = bitsAllocated / 8
  if (![1, 2, 4].includes(bytes)) throw notRenderable(`${bitsAllocated} bits allocated`)
  if (frame.byteLength < count * bytes) throw notRenderable(`${frame.byteLength} bytes for a frame of ${count * bytes}`)
  const copy = new Uint8Array(frame.subarray(0, count * bytes)).buffer
  const signed = info.pixelRepresentation === 1
  const values =
    bytes === 1
      ? signed
        ? new Int8Array(copy)
        : new Uint8Array(copy)
      : bytes === 2
        ? signed
          ? new Int16Array(copy)
          : new Uint16Array(copy)
        : signed
          ? new Int32Array(copy)
          : new Uint32Array(copy)
  return { values, planar: info.planarConfiguration === 1, rgb: false }
}

const clampByte = (v: number): number => (v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v))

/**
 * The frame as the default presentation shows it: greyscale through rescale and window (`window` overrides the
 * instance's, as PS3.18's `window` parameter does), colour as RGB.
 */
export function renderFrame(frame: DecodedFrame, info: RenderInfo, window?: Window): Rendered {
  const { rows: height, columns: width } = info
  const pixels = width * height
  if (frame.values.length < pixels * info.samplesPerPixel) {
    throw notRenderable(`${frame.values.length} values for ${pixels} pixels`)
  }
  if (info.samplesPerPixel === 1) {
    if (info.photometric !== 'MONOCHROME1' && info.photometric !== 'MONOCHROME2') {
      throw notRenderable(`Photometric Interpretation ${info.photometric}`)
    }
    return { data: renderGrey(frame.values, pixels, info, window ?? info.window), width, height, channels: 1 }
  }
  if (info.samplesPerPixel !== 3) throw notRenderable(`${info.samplesPerPixel} samples per pixel`)
  return { data: renderColour(frame, pixels, info), width, height, channels: 3 }
}

function renderGrey(
  values: ArrayLike<number>,
  pixels: number,
  info: RenderInfo,
  window: Window | undefined
): Uint8Array {
  const { slope, intercept } = info
  let center: number
  let width: number
  if (window !== undefined) {
    ;({ center, width } = window)
  } else {
    let min = Infinity
    let max = -Infinity
    for (let i = 0; i < pixels; i++) {
      const v = (values[i] as number) * slope + intercept
      if (v < min) min = v
      if (v > max) max = v
    }
    // Linear over [min, max]: centre and width such that min maps to 0 and max to 255.
    width = Math.max(1, max - min + 1)
    center = min + (width - 1) / 2 + 0.5
  }
  const low = center - 0.5 - (width - 1) / 2
  const high = center - 0.5 + (width - 1) / 2
  const invert = info.photometric === 'MONOCHROME1'
  const out = new Uint8Array(pixels)
  for (let i = 0; i < pixels; i++) {
    const x = (values[i] as number) * slope + intercept
    const y = x <= low ? 0 : x > high ? 255 : ((x - (center - 0.5)) / Math.max(1, width - 1) + 0.5) * 255
    out[i] = invert ? 255 - clampByte(y) : clampByte(y)
  }
  return out
}

function renderColour(frame: DecodedFrame, pixels: number, info: RenderInfo): Uint8Array {
  const ybr = !frame.rgb && (info.photometric === 'YBR_FULL' || info.photometric === 'YBR_FULL_422')
  if (!frame.rgb && !ybr && !['RGB', 'YBR_RCT', 'YBR_ICT'].includes(info.photometric)) {
    throw notRenderable(`Photometric Interpretation ${info.photometric}`)
  }
  // Samples wider than 8 bits keep their top 8 stored bits.
  const shift = Math.max(0, Math.min(info.bitsStored, info.bitsAllocated) - 8)
  const scale = 1 / 2 ** shift
  const { values, planar } = frame
  const at = (pixel: number, sample: number): number =>
    (values[planar ? sample * pixels + pixel : pixel * 3 + sample] as number) * scale
  const out = new Uint8Array(pixels * 3)
  for (let i = 0; i < pixels; i++) {
    const a = at(i, 0)
    const b = at(i, 1)
    const c = at(i, 2)
    if (ybr) {
      // PS3.3 C.7.6.3.1.2, YBR_FULL to RGB (ITU-R BT.601 full range)
      out[i * 3] = clampByte(a + 1.402 * (c - 128))
      out[i * 3 + 1] = clampByte(a - 0.344136 * (b - 128) - 0.714136 * (c - 128))
      out[i * 3 + 2] = clampByte(a + 1.772 * (b - 128))
    } else {
      out[i * 3] = clampByte(a)
      out[i * 3 + 1] = clampByte(b)
      out[i * 3 + 2] = clampByte(c)
    }
  }
  return out
}

/**
 * The image scaled to fit `maxWidth` x `maxHeight`, its aspect kept (PS3.18 8.3.5.1.3, `viewport`): smaller by
 * averaging the source pixels each output pixel covers, larger by repeating them.
 */
export function fitTo(image: Rendered, maxWidth: number, maxHeight: number): Rendered {
  const ratio = Math.min(maxWidth / image.width, maxHeight / image.height)
  const width = Math.max(1, Math.round(image.width * ratio))
  const height = Math.max(1, Math.round(image.height * ratio))
  if (width === image.width && height === image.height) return image
  const { channels } = image
  const out = new Uint8Array(width * height * channels)
  for (let y = 0; y < height; y++) {
    const y0 = Math.floor((y * image.height) / height)
    const y1 = Math.max(y0 + 1, Math.floor(((y + 1) * image.height) / height))
    for (let x = 0; x < width; x++) {
      const x0 = Math.floor((x * image.width) / width)
      const x1 = Math.max(x0 + 1, Math.floor(((x + 1) * image.width) / width))
      for (let c = 0; c < channels; c++) {
        let sum = 0
        for (let sy = y0; sy < y1; sy++) {
          for (let sx = x0; sx < x1; sx++) sum += image.data[(sy * image.width + sx) * channels + c] as number
        }
        out[(y * width + x) * channels + c] = Math.round(sum / ((y1 - y0) * (x1 - x0)))
      }
    }
  }
  return { data: out, width, height, channels }
}
