/**
 * The viewer's image pipeline in Node, on the pydicom corpus: frames cut by the node's WADO-RS code, decoded
 * by the viewer's decoders, rendered by the viewer's renderer. Compared with an independent reference:
 * DCMTK's dcmj2pnm (dcm2pnm with its JPEG codecs) at the same window (within 1 grey level), and, for each
 * lossless compressed file, the uncompressed twin in the corpus (identical stored values; DCMTK has no JPEG
 * 2000 codec, so JPEG 2000 is checked against its twin only).
 */
import { execFile } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { InstanceRecord } from '../../node/archive/archive.ts'
import { isNativeYbr422 } from '../../node/dicom/geometry.ts'
import { instanceToDicomJson } from '../../node/dicom/json.ts'
import { parsePart10 } from '../../node/dicom/part10.ts'
import { type Frame, planFrames } from '../../node/http/dicomweb/frames.ts'
import { DecodeError, type DecodedFrame, decodeFrame, SUPPORTED_SYNTAXES } from '../../viewer/src/image/decode.ts'
import { type DicomJson, type FrameInfo, frameCount, frameInfo, MAX_FRAMES } from '../../viewer/src/image/frame-info.ts'
import { defaultWindow, renderFrame, type Window } from '../../viewer/src/image/render.ts'
import { decodeRle, RleError } from '../../viewer/src/image/rle.ts'
import { nodeCodecs } from '../helpers/codecs.ts'
import { PYDICOM_CORPUS } from '../../scripts/lib/pydicom-corpus.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const run = promisify(execFile)

interface Loaded {
  info: FrameInfo
  frame: DecodedFrame
  json: DicomJson
}

async function load(name: string, frameNumber = 1): Promise<Loaded> {
  const file = await fs.readFile(join(PYDICOM_CORPUS, name))
  const parsed = parsePart10(file)
  const record = {
    sopUid: parsed.sopInstanceUid,
    transferSyntaxUid: parsed.transferSyntaxUid,
    datasetOffset: parsed.datasetOffset,
    pixelData: parsed.pixelData,
    attributes: parsed.attributes,
    size: file.byteLength
  } as unknown as InstanceRecord
  // The file in memory stands for the archive's chunks.
  const source = {
    readRange: async (_: InstanceRecord, start: number, end: number) => file.subarray(start, end),
    chunksOf: async function* () {
      yield file
    }
  }
  let cut: Frame | undefined
  for await (const frame of planFrames(record, [frameNumber]).frames(source)) cut = frame
  const json = instanceToDicomJson(file, () => 'bulk') as DicomJson
  // As the metadata route says: native YBR_FULL_422 frames are served expanded to YBR_FULL.
  if (isNativeYbr422(record.attributes, record.pixelData)) json['00280004'] = { vr: 'CS', Value: ['YBR_FULL'] }
  const info = frameInfo(json, cut?.transferSyntaxUid ?? '')
  return { info, frame: await decodeFrame(cut?.body ?? new Uint8Array(), info, nodeCodecs), json }
}

function rgba(loaded: Loaded, window?: Window): Uint8ClampedArray {
  const out = new Uint8ClampedArray(loaded.info.rows * loaded.info.columns * 4)
  renderFrame(loaded.frame, loaded.info, window ?? defaultWindow(loaded.frame, loaded.info), out)
  return out
}

/** dcmj2pnm's rendering as RGBA-comparable samples: grey (PGM) or RGB (PPM). */
async function reference(name: string, args: string[]): Promise<{ channels: number; pixels: Uint8Array }> {
  const out = join(await tempDir(), 'reference.pnm')
  await run('dcmj2pnm', [...args, join(PYDICOM_CORPUS, name), out])
  const bytes = await fs.readFile(out)
  const header = /^(P5|P6)\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(bytes.subarray(0, 40).toString('latin1'))
  if (header === null) throw new Error('dcmj2pnm wrote no PNM')
  return { channels: header[1] === 'P6' ? 3 : 1, pixels: bytes.subarray(header[0].length) }
}

function maxDifference(ours: Uint8ClampedArray, theirs: { channels: number; pixels: Uint8Array }): number {
  let worst = 0
  const count = theirs.pixels.length / theirs.channels
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < theirs.channels; c++) {
      const d = Math.abs(
        (ours[i * 4 + (theirs.channels === 1 ? 0 : c)] as number) - (theirs.pixels[i * theirs.channels + c] as number)
      )
      if (d > worst) worst = d
    }
  }
  return worst
}

test('CT and MR at the file window and at set windows match DCMTK within 1 grey level', async () => {
  for (const [name, windows] of [
    [
      'CT_small.dcm',
      [
        { center: 40, width: 400 },
        { center: 40, width: 80 },
        { center: -600, width: 1500 }
      ]
    ],
    [
      'MR_small.dcm',
      [
        { center: 600, width: 1600 },
        { center: 1000, width: 500 }
      ]
    ]
  ] as const) {
    const loaded = await load(name)
    for (const window of windows) {
      const difference = maxDifference(
        rgba(loaded, window),
        await reference(name, ['+Ww', String(window.center), String(window.width)])
      )
      assert.ok(difference <= 1, `${name} at ${window.center}/${window.width}: off by ${difference}`)
    }
  }
  const mr = await load('MR_small.dcm')
  assert.equal(defaultWindow(mr.frame, mr.info), { center: 600, width: 1600 }, "the file's window is the default")
  assert.ok(maxDifference(rgba(mr), await reference('MR_small.dcm', ['+Wi', '1'])) <= 1)
})

test('a narrower window changes the picture as expected: more black and more white', async () => {
  const ct = await load('CT_small.dcm')
  const wide = rgba(ct, { center: 40, width: 2000 })
  const narrow = rgba(ct, { center: 40, width: 80 })
  const extremes = (pixels: Uint8ClampedArray): number =>
    pixels.filter((v, i) => i % 4 === 0 && (v === 0 || v === 255)).length
  assert.ok(
    extremes(narrow) > extremes(wide) * 2,
    `${extremes(narrow)} saturated pixels at width 80, ${extremes(wide)} at 2000`
  )
})

test(
  'every lossless compressed file renders pixel for ' + 'pixel as its uncompressed (or other lossless) twin',
  async () => {
    for (const [compressed, native] of [
      ['MR_small_RLE.dcm', 'MR_small.dcm'],
      ['MR_small_jpeg_ls_lossless.dcm', 'MR_small.dcm'],
      ['MR_small_jp2klossless.dcm', 'MR_small.dcm'],
      ['MR_small_bigendian.dcm', 'MR_small.dcm'],
      ['MR_small_implicit.dcm', 'MR_small.dcm'],
      ['rtdose_rle_1frame.dcm', 'rtdose_1frame.dcm'],
      ['rtdose_expb_1frame.dcm', 'rtdose_1frame.dcm'],
      ['SC_rgb_jpeg_gdcm.dcm', 'SC_rgb_rle.dcm']
    ] as const) {
      const a = await load(compressed)
      const b = await load(native)
      assert.equal(rgba(a), rgba(b), `${compressed} renders as ${native}`)
    }
  }
)

test('RGB, YBR and MONOCHROME1 render like DCMTK (lossy JPEG within 3 levels: two decoders, two IDCTs)', async () => {
  for (const [name, tolerance] of [
    ['SC_rgb_rle.dcm', 0],
    ['SC_rgb_small_odd.dcm', 0],
    ['SC_ybr_full_422_uncompressed.dcm', 2],
    ['SC_rgb_rle_2frame.dcm', 0],
    ['SC_rgb_rle_16bit.dcm', 1],
    ['SC_rgb_rle_32bit.dcm', 1],
    ['SC_rgb_dcmtk_+eb+cy+n1.dcm', 3],
    ['SC_rgb_jpeg_dcmtk.dcm', 3],
    ['SC_rgb_dcmtk_+eb+cy+np.dcm', 3],
    ['SC_rgb_jpeg_dcmd.dcm', 3]
  ] as const) {
    const loaded = await load(name)
    const difference = maxDifference(rgba(loaded), await reference(name, []))
    assert.ok(difference <= tolerance, `${name}: off by ${difference}`)
  }
  const mr = await load('MR_small.dcm')
  const inverted = rgba({ ...mr, info: { ...mr.info, photometric: 'MONOCHROME1' } })
  const normal = rgba(mr)
  for (let i = 0; i < normal.length; i += 4) assert.is(inverted[i], 255 - (normal[i] as number))
})

test(
  'one frame of every corpus file in a displayable syntax decodes, or ' +
    'fails with a reason; every compressed syntax of the corpus is covered',
  async () => {
    const covered = new Set<string>()
    const failures: string[] = []
    for (const name of (await fs.readdir(PYDICOM_CORPUS)).filter(n => n.endsWith('.dcm')).sort()) {
      let parsed: ReturnType<typeof parsePart10>
      try {
        parsed = parsePart10(await fs.readFile(join(PYDICOM_CORPUS, name)))
      } catch {
        continue
      }
      if (parsed.pixelData === undefined || !SUPPORTED_SYNTAXES.includes(parsed.transferSyntaxUid)) continue
      try {
        const loaded = await load(name)
        const pixels = rgba(loaded)
        assert.ok(
          pixels.some((v, i) => i % 4 !== 3 && v !== pixels[0]),
          `${name} is not blank`
        )
        covered.add(parsed.transferSyntaxUid)
      } catch (error) {
        failures.push(`${name}: ${(error as Error).message}`)
      }
    }
    for (const syntax of [
      '1.2.840.10008.1.2.4.50',
      '1.2.840.10008.1.2.4.51',
      '1.2.840.10008.1.2.4.70',
      '1.2.840.10008.1.2.4.80',
      '1.2.840.10008.1.2.4.90',
      '1.2.840.10008.1.2.4.91',
      '1.2.840.10008.1.2.5'
    ]) {
      assert.ok(covered.has(syntax), `a file in ${syntax} rendered (failures: ${failures.join('; ')})`)
    }
    // Its only fragment is 250 bytes: a JPEG 2000 codestream cut short (pydicom keeps it to test parsers).
    assert.equal(
      failures,
      ['JPEG2000-embedded-sequence-delimiter.dcm: JPEG 2000: 0 bytes for a frame of 524288'],
      'every other file in a displayable syntax rendered'
    )
  }
)

test(
  'declared sizes are checked before anything is allocated: ' +
    'a crafted frame is refused, a crafted count is bounded',
  async () => {
    const ct = (await load('CT_small.dcm')).info
    const started = performance.now()
    for (const crafted of [
      { ...ct, rows: 65_535, columns: 65_535, samplesPerPixel: 4, bitsAllocated: 32 },
      { ...ct, rows: 0, columns: 512 },
      { ...ct, rows: 1e9, columns: 1e9 },
      { ...ct, samplesPerPixel: 1000 },
      { ...ct, bitsAllocated: 7 }
    ]) {
      const error = await decodeFrame(new Uint8Array(16), crafted, nodeCodecs).then(
        () => undefined,
        (e: unknown) => e
      )
      assert.instance(error, DecodeError, JSON.stringify({ rows: crafted.rows, columns: crafted.columns }))
    }
    assert.ok(performance.now() - started < 100, 'refused at once, nothing allocated')
    // RLE: a 64-byte header and a few bytes cannot make 30000 x 30000 pixels.
    const rle = new Uint8Array(80)
    new DataView(rle.buffer).setUint32(0, 1, true)
    new DataView(rle.buffer).setUint32(4, 64, true)
    assert.throws(
      () => decodeRle(rle, 30_000, 30_000, 1, 8),
      (error: unknown) => error instanceof RleError
    )
    assert.is(frameCount({ '00280008': { vr: 'IS', Value: [1_000_000_000] } }), MAX_FRAMES)
    assert.is(frameCount({ '00280008': { vr: 'IS', Value: ['1A'] } }), 1)
    assert.is(frameCount({ '00280008': { vr: 'IS', Value: [-3] } }), 1)
  }
)

test('32-bit data spanning billions of values renders without a table as long as its range', () => {
  const info: FrameInfo = {
    ...frameInfo({}, '1.2.840.10008.1.2.1'),
    rows: 2,
    columns: 2,
    bitsAllocated: 32,
    bitsStored: 32,
    pixelRepresentation: 0
  }
  const frame: DecodedFrame = {
    values: new Uint32Array([0, 4_000_000_000, 2_000_000_000, 1]),
    planar: false,
    rgb: false
  }
  const out = new Uint8ClampedArray(16)
  renderFrame(frame, info, { center: 2e9, width: 4e9 }, out)
  assert.ok((out[4] as number) > 250 && (out[0] as number) < 5)
})

test.run()
