/**
 * Rendering frames for people: rescale, the default window (the instance's, else the frame's range),
 * MONOCHROME1 inverted, colour in every layout turned into RGB, RLE decoded, scaling to a viewport, and the PNG
 * written, each checked pixel by pixel on synthetic frames.
 */
import { inflateSync } from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { expandYbr422 } from '../../node/dicom/geometry.ts'
import { decodeForRendering, decodeRle } from '../../node/dicom/render-codecs.ts'
import { encodePng } from '../../node/dicom/render-png.ts'
import { decodeNative, fitTo, type Rendered, type RenderInfo, renderFrame } from '../../node/dicom/render.ts'
import { isRadmeshError } from '../../node/errors.ts'

const info = (changes: Partial<RenderInfo> = {}): RenderInfo => ({
  rows: 1,
  columns: 4,
  samplesPerPixel: 1,
  bitsAllocated: 16,
  bitsStored: 16,
  pixelRepresentation: 0,
  photometric: 'MONOCHROME2',
  planarConfiguration: 0,
  slope: 1,
  intercept: 0,
  ...changes
})
const int16 = (...values: number[]): Uint8Array => new Uint8Array(Int16Array.from(values).buffer)

/** A PNG's pixels, read back: IHDR's size and colour type, IDAT inflated and its Sub filter undone. */
export function readPng(png: Uint8Array): Rendered {
  const buffer = Buffer.from(png)
  assert.equal([...buffer.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  const width = buffer.readUInt32BE(16)
  const height = buffer.readUInt32BE(20)
  const channels = buffer[25] === 0 ? 1 : 3
  const chunks: Buffer[] = []
  for (let at = 8; at < buffer.byteLength; ) {
    const length = buffer.readUInt32BE(at)
    if (buffer.toString('latin1', at + 4, at + 8) === 'IDAT') chunks.push(buffer.subarray(at + 8, at + 8 + length))
    at += 12 + length
  }
  const raw = inflateSync(Buffer.concat(chunks))
  const stride = width * channels
  const data = new Uint8Array(stride * height)
  for (let y = 0; y < height; y++) {
    assert.is(raw[y * (stride + 1)], 1, 'Sub filter')
    for (let x = 0; x < stride; x++) {
      const left = x < channels ? 0 : (data[y * stride + x - channels] as number)
      data[y * stride + x] = ((raw[y * (stride + 1) + 1 + x] as number) + left) & 0xff
    }
  }
  return { data, width, height, channels }
}

test('a CT frame is rescaled to HU and drawn through its window: below black, above white, linear between', () => {
  // Stored 1024 + HU; window 40/400 shows -160 HU (black) to 240 HU (white).
  const ct = info({ pixelRepresentation: 1, intercept: -1024, window: { center: 40, width: 400 } })
  const image = renderFrame(decodeNative(int16(0, 1024 - 160, 1024 + 40, 1024 + 1000), ct), ct)
  assert.equal([...image.data], [0, 0, 128, 255])
  assert.is(image.channels, 1)
  // The linear function of PS3.3 C.11.2.1.2.1 at a point inside: ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
  const inside = renderFrame(decodeNative(int16(1024 + 100), { ...ct, columns: 1 }), { ...ct, columns: 1 })
  assert.is(inside.data[0], Math.round(((100 - 39.5) / 399 + 0.5) * 255))
})

test("without a window the frame's own range is drawn from black to white; a window asked for wins", () => {
  const mr = info()
  assert.equal([...renderFrame(decodeNative(int16(100, 200, 300, 400), mr), mr).data], [0, 85, 170, 255])
  // 250/100 shows 199.5 to 298.5
  assert.equal(
    [...renderFrame(decodeNative(int16(100, 200, 300, 400), mr), mr, { center: 250, width: 100 }).data],
    [0, 0, 255, 255]
  )
})

test('MONOCHROME1 is drawn inverted, and signed 8-bit values are read as signed', () => {
  const cr = info({ photometric: 'MONOCHROME1', bitsAllocated: 8, bitsStored: 8, pixelRepresentation: 1 })
  // -128, -1, 0, 127: the range -128 to 127 drawn, then inverted
  assert.equal([...renderFrame(decodeNative(Uint8Array.of(0x80, 0xff, 0, 0x7f), cr), cr).data], [255, 128, 127, 0])
})

test('RGB by pixel and by plane, YBR_FULL and YBR_FULL_422 all come out as the same RGB', () => {
  const rgbPixels = [255, 0, 0, 0, 255, 0] // red, green
  const rgb = info({ columns: 2, samplesPerPixel: 3, bitsAllocated: 8, bitsStored: 8, photometric: 'RGB' })
  assert.equal([...renderFrame(decodeNative(Uint8Array.from(rgbPixels), rgb), rgb).data], rgbPixels)
  const planar = { ...rgb, planarConfiguration: 1 }
  assert.equal([...renderFrame(decodeNative(Uint8Array.of(255, 0, 0, 255, 0, 0), planar), planar).data], rgbPixels)
  // Grey in YBR: chroma 128 leaves Y as it is; Cr above 128 pushes red up and green down.
  const ybr = { ...rgb, photometric: 'YBR_FULL' }
  assert.equal(
    [...renderFrame(decodeNative(Uint8Array.of(100, 128, 128, 100, 128, 228), ybr), ybr).data],
    [100, 100, 100, 240, 29, 100]
  )
  const ybr422 = { ...rgb, photometric: 'YBR_FULL_422' }
  const stored422 = Uint8Array.of(90, 110, 128, 128) // Y1 Y2 Cb Cr
  assert.equal([...expandYbr422(stored422, 1, 2)], [90, 128, 128, 110, 128, 128])
  assert.equal([...renderFrame(decodeNative(stored422, ybr422), ybr422).data], [90, 90, 90, 110, 110, 110])
  // Served expanded (3 samples per pixel) it draws the same.
  assert.equal(
    [...renderFrame(decodeNative(expandYbr422(stored422, 1, 2), ybr422), ybr422).data],
    [90, 90, 90, 110, 110, 110]
  )
})

test('an RLE frame (PS3.5 Annex G) decodes to the values it packs, both bytes of 16-bit samples', async () => {
  // One sample of 16 bits: segment 1 the high bytes (a run of 4 x 0x01), segment 2 the low bytes (literal 0..3).
  const header = Buffer.alloc(64)
  header.writeUInt32LE(2, 0)
  header.writeUInt32LE(64, 4)
  header.writeUInt32LE(66, 8)
  const frame = Buffer.concat([header, Buffer.from([257 - 4, 0x01]), Buffer.from([3, 0, 1, 2, 3])])
  const rle = info()
  assert.equal([...new Uint16Array(decodeRle(frame, rle).buffer)], [256, 257, 258, 259])
  const decoded = await decodeForRendering(frame, '1.2.840.10008.1.2.5', rle)
  assert.equal([...renderFrame(decoded, rle).data], [0, 85, 170, 255])
})

test(
  'a frame of a syntax not rendered, or of a photometric ' + 'interpretation not drawn, is refused with a reason',
  async () => {
    const refused = async (run: () => unknown): Promise<string> => {
      try {
        await run()
      } catch (error) {
        return isRadmeshError(error) ? error.code : String(error)
      }
      return 'not refused'
    }
    assert.is(
      await refused(async () => await decodeForRendering(new Uint8Array(8), '1.2.3.4', info())),
      'RADMESH_NOT_ACCEPTABLE'
    )
    const palette = info({ photometric: 'PALETTE COLOR' })
    assert.is(
      await refused(() => renderFrame(decodeNative(int16(1, 2, 3, 4), palette), palette)),
      'RADMESH_NOT_ACCEPTABLE'
    )
  }
)

test('an image fitted to a viewport keeps its aspect, averaging what it shrinks', () => {
  const image: Rendered = { data: Uint8Array.of(0, 100, 200, 50, 0, 100, 200, 50), width: 4, height: 2, channels: 1 }
  const small = fitTo(image, 2, 2)
  assert.equal([small.width, small.height], [2, 1])
  assert.equal([...small.data], [50, 125])
  assert.equal(fitTo(image, 8, 100).width, 8)
})

test('the PNG written reads back pixel for pixel, grey and RGB', () => {
  for (const channels of [1, 3] as const) {
    const width = 7
    const height = 5
    const data = Uint8Array.from({ length: width * height * channels }, (_, i) => (i * 37) % 256)
    const back = readPng(encodePng(data, width, height, channels))
    assert.equal([back.width, back.height, back.channels], [width, height, channels])
    assert.equal([...back.data], [...data])
  }
})

test.run()
