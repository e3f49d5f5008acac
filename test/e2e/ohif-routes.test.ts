/**
 * The DICOMweb requests OHIF v3 makes, as it makes them (its DicomWebDataSource: QIDO-RS with its default
 * parameters, series metadata, frames as Cornerstone's WADO-RS image loader asks for them, thumbnails as its
 * default `thumbnailRendering: 'thumbnail'` asks for them), answered as OHIF reads them; and cross-origin access for an OHIF served from elsewhere (`--cors ORIGIN`).
 */
import { decode as decodeJpeg } from 'jpeg-js'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseContentType, parseMultipartRelated } from '../../protocol/dicomweb/multipart.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

type DicomJson = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>
const OHIF_ORIGIN = 'http://ohif.example:3000'
/** What Cornerstone's WADO-RS loader sends for a frame */
const FRAME_ACCEPT = 'multipart/related; type=application/octet-stream; transfer-syntax=*'

let node: StartedNode
let studyUid = ''

test.before(async () => {
  const consortium = await createScratchConsortium('OHIF')
  node = await startNode(await consortium.member('OHIF Site', 'site'), {
    dicom: true,
    extraArgs: ['--cors', OHIF_ORIGIN]
  })
  const dir = await tempDir()
  const study = await generateCt({
    out: dir,
    slices: 4,
    series: 2,
    rows: 64,
    columns: 64,
    seed: 9,
    patientName: 'OHIF^CANARY'
  })
  studyUid = study.studyInstanceUid
  assert.is((await storescu(node.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
})

test.after(async () => {
  await node?.kill()
})

async function get(path: string, accept = 'application/dicom+json', origin?: string): Promise<Response> {
  return await node.fetch(path, { headers: { accept, ...(origin === undefined ? {} : { origin }) } })
}

test("study search with OHIF's parameters answers the attributes its worklist shows; its filters match", async () => {
  const response = await get(
    '/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060'
  )
  assert.is(response.status, 200)
  assert.match(response.headers.get('content-type') ?? '', 'application/dicom+json')
  const [study] = (await response.json()) as DicomJson[]
  for (const tag of [
    '0020000D',
    '00100010',
    '00100020',
    '00080020',
    '00080050',
    '00081030',
    '00080061',
    '00201206',
    '00201208'
  ])
    assert.ok(study?.[tag] !== undefined, `study has ${tag}`)
  assert.equal(study?.['00100010']?.Value, [{ Alphabetic: 'OHIF^CANARY' }])
  assert.equal(study?.['00201208']?.Value, [8])
  for (const [query, hits] of [
    ['PatientName=*CANARY*', 1],
    ['PatientName=*NOBODY*', 0],
    ['ModalitiesInStudy=CT', 1],
    ['ModalitiesInStudy=MR', 0],
    ['StudyDate=19000101-21001231', 1],
    [`StudyInstanceUID=${studyUid}`, 1]
  ] as const) {
    const found = (await (
      await get(`/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060&${query}`)
    ).json()) as unknown[]
    assert.is(found.length, hits, query)
  }
})

test('series list and series metadata, as OHIF loads a study', async () => {
  const series = (await (await get(`/dicom-web/studies/${studyUid}/series`)).json()) as DicomJson[]
  assert.is(series.length, 2)
  for (const s of series)
    for (const tag of ['0020000E', '00080060', '00200011', '0008103E', '00201209'])
      assert.ok(s[tag] !== undefined, `series has ${tag}`)
  const seriesUid = series[0]?.['0020000E']?.Value?.[0] as string
  const response = await get(`/dicom-web/studies/${studyUid}/series/${seriesUid}/metadata`)
  assert.is(response.status, 200)
  const instances = (await response.json()) as DicomJson[]
  assert.is(instances.length, 4)
  for (const instance of instances) {
    for (const tag of [
      '00080016',
      '00080018',
      '00200013',
      '00280010',
      '00280011',
      '00280100',
      '00280103',
      '00281050',
      '00281051',
      '00281052',
      '00281053',
      '00200032',
      '00200037',
      '00280030'
    ])
      assert.ok(instance[tag] !== undefined, `instance has ${tag}`)
    assert.match(instance['7FE00010']?.BulkDataURI ?? '', /\/frames\/1$/)
  }
  // The frame, asked for as Cornerstone's loader asks: one part, its transfer syntax named.
  const sopUid = instances[0]?.['00080018']?.Value?.[0] as string
  const frame = await get(
    `/dicom-web/studies/${studyUid}/series/${seriesUid}/instances/${sopUid}/frames/1`,
    FRAME_ACCEPT
  )
  assert.is(frame.status, 200)
  const type = parseContentType(frame.headers.get('content-type') ?? '')
  assert.is(type.type, 'multipart/related')
  const [part] = parseMultipartRelated(
    new Uint8Array(await frame.arrayBuffer()),
    frame.headers.get('content-type') ?? ''
  )
  assert.is(parseContentType(part?.headers['content-type'] ?? '').params['transfer-syntax'], '1.2.840.10008.1.2.1')
  assert.is(part?.body.byteLength, 64 * 64 * 2)
})

test("thumbnails as OHIF's default rendering asks for them (image/jpeg) and as a browser's <img> does", async () => {
  const series = (await (await get(`/dicom-web/studies/${studyUid}/series`)).json()) as DicomJson[]
  const seriesUid = series[0]?.['0020000E']?.Value?.[0] as string
  const instances = (await (
    await get(`/dicom-web/studies/${studyUid}/series/${seriesUid}/instances`)
  ).json()) as DicomJson[]
  const sopUid = instances[0]?.['00080018']?.Value?.[0] as string
  const browser = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8'
  for (const [path, accept] of [
    [`/dicom-web/studies/${studyUid}/series/${seriesUid}/instances/${sopUid}/thumbnail`, 'image/jpeg'],
    [`/dicom-web/studies/${studyUid}/series/${seriesUid}/thumbnail`, browser]
  ] as const) {
    const response = await get(path, accept)
    assert.is(response.status, 200, path)
    assert.is(response.headers.get('content-type'), 'image/jpeg')
    const image = decodeJpeg(new Uint8Array(await response.arrayBuffer()), { useTArray: true })
    assert.equal([image.width, image.height], [128, 128])
    // A CT slice through its window: dark air and bright tissue both drawn.
    const reds = Array.from({ length: image.width * image.height }, (_, i) => image.data[i * 4] as number)
    assert.ok(Math.min(...reds) < 32 && Math.max(...reds) > 160, `${Math.min(...reds)}..${Math.max(...reds)}`)
  }
})

test(
  'an OHIF served from another origin gets CORS answers for DICOMweb ' +
    'only when that origin is allowed; the token is still needed',
  async () => {
    const preflight = await fetch(`${node.http}/dicom-web/studies`, {
      method: 'OPTIONS',
      headers: {
        origin: OHIF_ORIGIN,
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'authorization'
      }
    })
    assert.is(preflight.status, 204)
    assert.is(preflight.headers.get('access-control-allow-origin'), OHIF_ORIGIN)
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', 'authorization')
    const allowed = await get('/dicom-web/studies', 'application/dicom+json', OHIF_ORIGIN)
    assert.is(allowed.headers.get('access-control-allow-origin'), OHIF_ORIGIN)
    const other = await get('/dicom-web/studies', 'application/dicom+json', 'http://evil.example')
    assert.is(other.headers.get('access-control-allow-origin'), null)
    const refusedPreflight = await fetch(`${node.http}/dicom-web/studies`, {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example' }
    })
    assert.is(refusedPreflight.status, 403)
    const api = await get('/api/worklist', 'application/json', OHIF_ORIGIN)
    assert.is(api.headers.get('access-control-allow-origin'), null, "the node's own API is not shared across origins")
    const noToken = await fetch(`${node.http}/dicom-web/studies`, { headers: { origin: OHIF_ORIGIN } })
    assert.is(noToken.status, 401)
  }
)

test.run()
