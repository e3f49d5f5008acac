/**
 * Stored values to screen pixels, the DICOM way (PS3.3 C.11, PS3.4 N.2): grayscale goes through the
 * Modality LUT (rescale slope and intercept), then the VOI LUT (the linear window function of C.11.2.1.2.1,
 * centre and width in modality units), then MONOCHROME1 is inverted; colour (RGB, or YBR turned RGB)
 * is shown as stored, scaled to 8 bits. Pure functions, shared by the viewer and its tests.
 */
import type { DecodedFrame } from './decode.ts'
import type { FrameInfo } from './frame-info.ts'

export interface Window {
  center: number
  width: number
}

export function isColour(info: FrameInfo): boolean {
  return info.samplesPerPixel === 3
}

/** Stored value range of a frame after the bits-stored mask, in modality units. */
export function modalityRange(frame: DecodedFrame, info: FrameInfo): { min: number; max: number } {
  let min = Infinity
  let max = -Infinity
  const values = frame.values
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number
    if (v < min) min = v
    if (v > max) max = v
  }
  const a = min * info.rescaleSlope + info.rescaleIntercept
  const b = max * info.rescaleSlope + info.rescaleIntercept
  return { min: Math.min(a, b), max: Math.max(a, b) }
}

/** The window the file suggests, else one spanning the frame's values. */
export function defaultWindow(frame: DecodedFrame, info: FrameInfo): Window {
  const suggested = info.windows[0]
  if (suggested !== undefined) return { center: suggested.center, width: suggested.width }
  const { min, max } = modalityRange(frame, info)
  return { center: (min + max) / 2, width: Math.max(1, max - min + 1) }
}

/** VOI linear (PS3.3 C.11.2.1.2.1) to 0..255. */
export function voiLinear(x: number, { center, width }: Window): number {
  const c = center - 0.5
  const w = width - 1
  if (w <= 0) return x <= c ? 0 : 255
  if (x <= c - w / 2) return 0
  if (x > c + w / 2) return 255
  return ((x - c) / w + 0.5) * 255
}

/** Masks a stored value to bits stored, sign-extending when pixel representation is signed. */
function storedValue(raw: number, info: FrameInfo): number {
  if (info.bitsStored >= info.bitsAllocated || info.bitsAllocated === 32) return raw
  const mask = (1 << info.bitsStored) - 1
  const v = raw & mask
  if (info.pixelRepresentation === 1 && (v & (1 << (info.bitsStored - 1))) !== 0) return v - (1 << info.bitsStored)
  return v
}

/** A lookup table longer than this (a range of 32-bit values) is not made. */
const MAX_LUT_ENTRIES = 1 << 20

/** RGBA pixels of a frame at a window (grayscale) into `out` (width x height x 4). */
export function renderFrame(frame: DecodedFrame, info: FrameInfo, window: Window, out: Uint8ClampedArray): void {
  const pixels = info.rows * info.columns
  if (out.length < pixels * 4) throw new Error('the output is smaller than the frame')
  if (isColour(info)) {
    renderColour(frame, info, out)
    return
  }
  const invert = info.photometric === 'MONOCHROME1'
  const values = frame.values
  const { rescaleSlope: slope, rescaleIntercept: intercept } = info
  // A lookup table over the stored range makes scrolling cheap: one table per frame and window.
  let min = Infinity
  let max = -Infinity
  for (let i = 0; i < pixels; i++) {
    const v = storedValue(values[i] as number, info)
    if (v < min) min = v
    if (v > max) max = v
  }
  if (pixels === 0) return
  const span = max - min + 1
  const masked = info.bitsStored < info.bitsAllocated && info.bitsAllocated !== 32
  if (span > MAX_LUT_ENTRIES) {
    // 32-bit data can span billions of values: no table as long as that, each pixel computed instead.
    for (let i = 0, o = 0; i < pixels; i++, o += 4) {
      const y = Math.round(voiLinear(storedValue(values[i] as number, info) * slope + intercept, window))
      const g = invert ? 255 - y : y
      out[o] = g
      out[o + 1] = g
      out[o + 2] = g
      out[o + 3] = 255
    }
    return
  }
  const lut = new Uint8ClampedArray(span)
  for (let v = 0; v < span; v++) {
    const y = Math.round(voiLinear((v + min) * slope + intercept, window))
    lut[v] = invert ? 255 - y : y
  }
  for (let i = 0, o = 0; i < pixels; i++, o += 4) {
    const raw = values[i] as number
    const g = lut[(masked ? storedValue(raw, info) : raw) - min] as number
    out[o] = g
    out[o + 1] = g
    out[o + 2] = g
    out[o + 3] = 255
  }
}

function renderColour(frame: DecodedFrame, info: FrameInfo, out: Uint8ClampedArray): void {
  const pixels = info.rows * info.columns
  const values = frame.values
  const shift = Math.max(0, info.bitsStored - 8)
  const scale = 1 / 2 ** shift
  const ybr = !frame.rgb && (info.photometric === 'YBR_FULL' || info.photometric === 'YBR_FULL_422')
  for (let i = 0, o = 0; i < pixels; i++, o += 4) {
    let a: number
    let b: number
    let c: number
    if (frame.planar) {
      a = values[i] as number
      b = values[i + pixels] as number
      c = values[i + 2 * pixels] as number
    } else {
      a = values[3 * i] as number
      b = values[3 * i + 1] as number
      c = values[3 * i + 2] as number
    }
    a *= scale
    b *= scale
    c *= scale
    if (ybr) {
      out[o] = a + 1.402 * (c - 128)
      out[o + 1] = a - 0.344136 * (b - 128) - 0.714136 * (c - 128)
      out[o + 2] = a + 1.772 * (b - 128)
    } else {
      out[o] = a
      out[o + 1] = b
      out[o + 2] = c
    }
    out[o + 3] = 255
  }
}
