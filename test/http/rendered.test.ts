/**
 * Rendered resources on a real archive, through the WADO-RS plugin with the node's content negotiation: a CT
 * slice drawn through its own window and through one asked for, thumbnails fitted to a viewport, a study drawn
 * by its middle slice, JPEG (decoded and compared with the PNG) or PNG by the Accept (406 for neither), only the drawn instance audited; and a native YBR_FULL_422
 * instance, whose frames and metadata are YBR_FULL while the instance itself comes back as it was stored.
 */
import { promises as fs } from 'node:fs'
import { decode as decodeJpeg } from 'jpeg-js'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { StudyAccess } from '../../node/archive/access.ts'
import type { AuditEntry } from '../../node/audit/log.ts'
import { PIXEL_DATA, TRANSFER_SYNTAX } from '../../node/dicom/dictionary.ts'
import { type Element, elementHeader, part10Header, writeDataset } from '../../node/dicom/writer.ts'
import { negotiateDicomweb } from '../../node/http/dicomweb/accept.ts'
import { wadoRoutes } from '../../node/http/dicomweb/wado.ts'
import { baseServer } from '../../node/http/server.ts'
import { parseMultipartRelated } from '../../protocol/dicomweb/multipart.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { openArchive, type OpenedArchive } from '../helpers/archive.ts'
import { readPng } from '../helpers/png.ts'
import { ACTOR, errorOf } from './fixture.ts'

const SIZE = 32
const SLICES = 3
/** generate-ct's first series: soft tissue, window 40/80, intercept -1024 */
const CT_WINDOW = { center: 40, width: 80 }
const INTERCEPT = -1024
/** JPEG at quality 95 of this 8-bit grey phantom: measured 0.3 levels of error on average; 2 leaves margin */
const JPEG_95_MEAN_ERROR = 2
/** JPEG at quality 100 of the colour instance: rounding in the colour transform and DCT (measured 2 levels at most) */
const JPEG_100_COLOUR_ERROR = 8

const YBR = { study: '2.25.4220001', series: '2.25.4220002', sop: '2.25.4220003', rows: 2, columns: 4 }
/** Y1 Y2 Cb Cr for each pair of pixels, PS3.3 C.7.6.3.1.2 */
const YBR_STORED = Uint8Array.from([10, 20, 100, 150, 30, 40, 110, 160, 50, 60, 120, 170, 70, 80, 130, 180])

let opened: OpenedArchive
let app: Awaited<ReturnType<typeof routes>>
const audits: AuditEntry[] = []
let study = ''
let series = ''
/** by Instance Number: 1, 2, 3 */
const sops: string[] = []
/** the stored values of each slice */
const pixels: Int16Array[] = []
let ybrFile: Buffer

async function routes() {
  const access = new StudyAccess({
    archive: opened.archive,
    audit: {
      append: async entry => {
        audits.push(entry)
        return {} as never
      }
    }
  })
  const server = baseServer()
  server.addHook('onRequest', async request => {
    request.actor = ACTOR
  })
  server.addHook('onRequest', negotiateDicomweb)
  await server.register(wadoRoutes, { archive: opened.archive, access })
  await server.ready()
  return server
}

function ybrInstance(): Buffer {
  const text = (tag: number, vr: string, value: string): Element => ({ tag, vr, value })
  const us = (tag: number, value: number): Element => ({ tag, vr: 'US', value })
  const secondaryCapture = '1.2.840.10008.5.1.4.1.1.7'
  const dataset = [
    text(0x00080016, 'UI', secondaryCapture),
    text(0x00080018, 'UI', YBR.sop),
    text(0x00080060, 'CS', 'OT'),
    text(0x00100010, 'PN', 'YBR^PATIENT'),
    text(0x00100020, 'LO', 'YBR1'),
    text(0x0020000d, 'UI', YBR.study),
    text(0x0020000e, 'UI', YBR.series),
    text(0x00200013, 'IS', '1'),
    us(0x00280002, 3),
    text(0x00280004, 'CS', 'YBR_FULL_422'),
    us(0x00280006, 0),
    us(0x00280010, YBR.rows),
    us(0x00280011, YBR.columns),
    us(0x00280100, 8),
    us(0x00280101, 8),
    us(0x00280102, 7),
    us(0x00280103, 0)
  ]
  const meta = {
    sopClassUid: secondaryCapture,
    sopInstanceUid: YBR.sop,
    transferSyntaxUid: TRANSFER_SYNTAX.explicitLittle
  }
  return Buffer.concat([
    part10Header(meta),
    writeDataset(dataset),
    elementHeader(PIXEL_DATA, 'OB', YBR_STORED.byteLength),
    YBR_STORED
  ])
}

test.before(async () => {
  opened = await openArchive(await tempDir())
  const generated = await generateCt({ out: await tempDir(), slices: SLICES, rows: SIZE, columns: SIZE, seed: 110103 })
  study = generated.studyInstanceUid
  series = generated.series[0]?.seriesInstanceUid ?? ''
  for (const file of generated.files) {
    const bytes = await fs.readFile(file)
    const stored = await opened.archive.store(bytes, ACTOR)
    sops.push(stored.instance.sopUid)
    const pixelBytes = bytes.subarray(bytes.byteLength - SIZE * SIZE * 2)
    pixels.push(new Int16Array(new Uint8Array(pixelBytes).buffer))
  }
  ybrFile = ybrInstance()
  await opened.archive.store(ybrFile, ACTOR)
  app = await routes()
})

test.after(async () => {
  await app?.close()
  await opened?.close()
})

const instancePath = (n: number): string => `/dicom-web/studies/${study}/series/${series}/instances/${sops[n] ?? ''}`

/** PS3.3 C.11.2.1.2.1, the linear VOI function, with 8-bit output. */
function windowed(stored: ArrayLike<number>, window: { center: number; width: number }): number[] {
  const { center: c, width: w } = window
  return Array.from(stored, s => {
    const x = s + INTERCEPT
    if (x <= c - 0.5 - (w - 1) / 2) return 0
    if (x > c - 0.5 + (w - 1) / 2) return 255
    return Math.round(((x - (c - 0.5)) / (w - 1) + 0.5) * 255)
  })
}

async function png(url: string, accept = 'image/png') {
  const response = await app.inject({ url, headers: { accept } })
  assert.is(response.statusCode, 200, `${url}: ${response.body.slice(0, 200)}`)
  assert.is(response.headers['content-type'], 'image/png')
  return readPng(response.rawPayload)
}

test('an instance is drawn as a PNG through its own window, or through the window asked for', async () => {
  const drawn = await png(`${instancePath(0)}/rendered`)
  assert.equal([drawn.width, drawn.height, drawn.channels], [SIZE, SIZE, 1])
  const expected = windowed(pixels[0] as Int16Array, CT_WINDOW)
  assert.equal([...drawn.data], expected)
  // The phantom shows both ends of the window and values between.
  assert.ok(expected.includes(0) && expected.includes(255) && expected.some(v => v > 0 && v < 255))
  const bone = { center: 600, width: 2800 }
  const asked = await png(`${instancePath(0)}/frames/1/rendered?window=600,2800,linear`)
  assert.equal([...asked.data], windowed(pixels[0] as Int16Array, bone))
})

test('a thumbnail with a viewport is fitted to it, aspect kept, each pixel the mean of those it covers', async () => {
  const full = await png(`${instancePath(1)}/rendered`)
  const thumbnail = await png(`${instancePath(1)}/thumbnail?viewport=16,8`)
  assert.equal([thumbnail.width, thumbnail.height], [8, 8])
  const block = SIZE / 8
  const means = Array.from({ length: 64 }, (_, i) => {
    let sum = 0
    for (let y = 0; y < block; y++) {
      for (let x = 0; x < block; x++) {
        sum += full.data[(Math.floor(i / 8) * block + y) * SIZE + (i % 8) * block + x] as number
      }
    }
    return Math.round(sum / (block * block))
  })
  assert.equal([...thumbnail.data], means)
})

test(
  "a study's thumbnail is its middle slice at 128 x " + '128, and only that instance is audited as accessed',
  async () => {
    audits.length = 0
    const studyThumbnail = await png(`/dicom-web/studies/${study}/thumbnail`)
    assert.equal([studyThumbnail.width, studyThumbnail.height], [128, 128])
    const middle = await png(`${instancePath(1)}/thumbnail`)
    assert.equal([...studyThumbnail.data], [...middle.data])
    assert.is(audits.length, 2)
    for (const entry of audits) {
      assert.is(entry.event, 'instancesAccessed')
      assert.is(entry.study, study)
      assert.equal(entry.instances, [sops[1]])
      assert.match(entry.detail ?? '', 'thumbnail')
    }
    const seriesThumbnail = await png(`/dicom-web/studies/${study}/series/${series}/thumbnail?viewport=64,64`)
    assert.equal([seriesThumbnail.width, seriesThumbnail.height], [64, 64])
    assert.equal(audits[2]?.instances, [sops[1]])
  }
)

async function jpeg(url: string, accept = 'image/jpeg') {
  const response = await app.inject({ url, headers: { accept } })
  assert.is(response.statusCode, 200, `${url}: ${response.body.slice(0, 200)}`)
  assert.is(response.headers['content-type'], 'image/jpeg')
  const bytes = response.rawPayload
  const decoded = decodeJpeg(bytes, { useTArray: true, formatAsRGBA: false })
  return { ...decoded, bytes: bytes.byteLength }
}

/** The mean absolute difference between a grey PNG and the red channel of an RGB JPEG of the same size. */
function meanDifference(grey: Uint8Array, rgb: Uint8Array): number {
  let sum = 0
  for (let i = 0; i < grey.length; i++) sum += Math.abs((grey[i] as number) - (rgb[i * 3] as number))
  return sum / grey.length
}

test('JPEG by default and when preferred: it decodes to the size and, within JPEG loss, the pixels of the PNG', async () => {
  const url = `${instancePath(0)}/rendered`
  const lossless = await png(url)
  for (const accept of ['image/jpeg', '*/*', 'image/*', 'image/png;q=0.5, image/jpeg']) {
    const drawn = await jpeg(`${url}?quality=95`, accept)
    assert.equal([drawn.width, drawn.height], [SIZE, SIZE], accept)
    assert.ok(meanDifference(lossless.data, drawn.data) < JPEG_95_MEAN_ERROR, accept)
  }
  const noAccept = await app.inject({ url })
  assert.is(noAccept.headers['content-type'], 'image/jpeg')
  // Grey in, grey out: the three channels agree.
  const grey = await jpeg(url)
  for (let i = 0; i < grey.data.length; i += 3) {
    assert.ok(Math.abs((grey.data[i] as number) - (grey.data[i + 2] as number)) <= 1)
  }
  // Quality is honoured: lower quality, fewer bytes and more error, still the image.
  const low = await jpeg(`${url}?quality=5`)
  const high = await jpeg(`${url}?quality=100`)
  assert.ok(low.bytes < high.bytes, `${low.bytes} < ${high.bytes}`)
  assert.ok(meanDifference(lossless.data, low.data) > meanDifference(lossless.data, high.data))
  for (const bad of ['0', '101', '50.5', 'high', '']) {
    const refused = await app.inject({ url: `${url}?quality=${bad}`, headers: { accept: 'image/jpeg' } })
    assert.is(refused.statusCode, 400, `quality=${bad}`)
  }
})

test('an OHIF-style thumbnail request gets an image; PNG when PNG is weighed more', async () => {
  const thumbnail = `/dicom-web/studies/${study}/series/${series}/instances/${sops[1] ?? ''}/thumbnail`
  const browser = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8'
  const drawn = await jpeg(thumbnail, browser)
  assert.equal([drawn.width, drawn.height], [128, 128])
  const byParameter = await jpeg(`${thumbnail}?accept=image/jpeg`, 'application/json')
  assert.equal([byParameter.width, byParameter.height], [128, 128])
  const preferred = await png(`${thumbnail}?viewport=64,64`, 'image/jpeg;q=0.5, image/png')
  assert.equal([preferred.width, preferred.height], [64, 64])
})

test('an Accept of neither JPEG nor PNG is 406 and nothing is read or audited', async () => {
  audits.length = 0
  for (const accept of ['image/webp', 'application/json', 'image/png;q=0, image/jpeg;q=0, image/*']) {
    for (const url of [`${instancePath(0)}/rendered`, `/dicom-web/studies/${study}/thumbnail`]) {
      const refused = await app.inject({ url, headers: { accept } })
      assert.is(refused.statusCode, 406, `${accept} ${url}`)
      assert.is(errorOf(refused.body).code, 'RADMESH_NOT_ACCEPTABLE')
    }
  }
  const byParameter = await app.inject({ url: `${instancePath(0)}/rendered?accept=image/gif` })
  assert.is(byParameter.statusCode, 406)
  assert.equal(audits, [])
})

test(
  'a native YBR_FULL_422 frame comes back expanded to ' + 'YBR_FULL, as its metadata says; the instance as stored',
  async () => {
    const instance = `/dicom-web/studies/${YBR.study}/series/${YBR.series}/instances/${YBR.sop}`
    const frameAccept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    const frame = await app.inject({ url: `${instance}/frames/1`, headers: { accept: frameAccept } })
    assert.is(frame.statusCode, 200)
    const [part] = parseMultipartRelated(frame.rawPayload, String(frame.headers['content-type']))
    const expanded: number[] = []
    for (let at = 0; at < YBR_STORED.length; at += 4) {
      const [y1, y2, cb, cr] = YBR_STORED.subarray(at, at + 4)
      expanded.push(y1 as number, cb as number, cr as number, y2 as number, cb as number, cr as number)
    }
    assert.is(part?.body.byteLength, 3 * YBR.rows * YBR.columns)
    assert.equal([...(part?.body ?? [])], expanded)

    const metadata = await app.inject({ url: `${instance}/metadata`, headers: { accept: 'application/dicom+json' } })
    assert.is(metadata.statusCode, 200)
    const [dataset] = metadata.json<Array<Record<string, { Value?: unknown[] }>>>()
    assert.equal(dataset?.['00280004']?.Value, ['YBR_FULL'])
    assert.equal(dataset?.['00280002']?.Value, [3])

    const retrieved = await app.inject({
      url: instance,
      headers: { accept: 'multipart/related; type="application/dicom"' }
    })
    assert.is(retrieved.statusCode, 200)
    const [file] = parseMultipartRelated(retrieved.rawPayload, String(retrieved.headers['content-type']))
    assert.ok(Buffer.from(file?.body ?? []).equals(ybrFile), 'the instance is byte-identical to what was stored')

    // Drawn as RGB: the first pixel, Y 10 with Cb 100 and Cr 150 (BT.601 full range).
    const drawn = await png(`${instance}/rendered`)
    assert.equal([drawn.width, drawn.height, drawn.channels], [YBR.columns, YBR.rows, 3])
    const rgb = [10 + 1.402 * 22, 10 - 0.344136 * -28 - 0.714136 * 22, 10 + 1.772 * -28]
    assert.equal(
      [...drawn.data.subarray(0, 3)],
      rgb.map(v => Math.max(0, Math.min(255, Math.round(v))))
    )
    // As JPEG (4:4:4, quality 100): the same colours within a few levels.
    const colour = await jpeg(`${instance}/rendered?quality=100`)
    assert.equal([colour.width, colour.height], [YBR.columns, YBR.rows])
    let worst = 0
    for (let i = 0; i < drawn.data.length; i++) {
      worst = Math.max(worst, Math.abs((drawn.data[i] as number) - (colour.data[i] as number)))
    }
    assert.ok(worst <= JPEG_100_COLOUR_ERROR, `${worst} levels`)
  }
)

test.run()
