/**
 * Content negotiation on DICOMweb (PS3.18 8.7): an Accept none of whose media types a resource can be answered
 * with gets 406 RADMESH_NOT_ACCEPTABLE, and every Accept that OHIF, Cornerstone and dicomweb-client send still
 * gets its answer. Parsing and matching of Accept headers first, then a real node.
 */
import { promises as fs } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { createRequire } from 'node:module'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { acceptable, dicomwebResource, parseAccept } from '../../node/http/dicomweb/accept.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const require = createRequire(import.meta.url)
;(globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = require('xhr2')
type Json = Array<Record<string, { Value?: unknown[]; BulkDataURI?: string }>>
interface MediaType {
  mediaType: string
  transferSyntaxUID?: string
}
interface StudyIds {
  studyInstanceUID: string
}
interface SeriesIds extends StudyIds {
  seriesInstanceUID: string
}
interface InstanceIds extends SeriesIds {
  sopInstanceUID: string
}
interface FrameIds extends InstanceIds {
  frameNumbers: number[]
  mediaTypes?: MediaType[]
}
interface DicomWebClient {
  searchForStudies(options?: { queryParams?: Record<string, string> }): Promise<Json>
  searchForSeries(options: StudyIds): Promise<Json>
  searchForInstances(options: SeriesIds): Promise<Json>
  retrieveStudy(options: StudyIds): Promise<ArrayBuffer[]>
  retrieveSeries(options: SeriesIds): Promise<ArrayBuffer[]>
  retrieveInstance(options: InstanceIds): Promise<ArrayBuffer>
  retrieveStudyMetadata(options: StudyIds): Promise<Json>
  retrieveSeriesMetadata(options: SeriesIds): Promise<Json>
  retrieveInstanceMetadata(options: InstanceIds): Promise<Json>
  retrieveInstanceFrames(options: FrameIds): Promise<ArrayBuffer[]>
  retrieveBulkData(options: { BulkDataURI: string; mediaTypes?: MediaType[] }): Promise<ArrayBuffer[]>
}
type ClientClass = new (options: { url: string; headers: Record<string, string> }) => DicomWebClient
const { api } = require('dicomweb-client') as { api: { DICOMwebClient: ClientClass } }

test('a DICOMweb path is classified by its shape: search, instances, metadata, frames, bulk', () => {
  const S = '/dicom-web/studies/1.2'
  const I = `${S}/series/1.2.3/instances/1.2.3.4`
  const expected: Array<[string, string | undefined]> = [
    ['/dicom-web/studies', 'search'],
    [`${S}/series`, 'search'],
    [`${S}/series/1.2.3/instances`, 'search'],
    [S, 'instances'],
    [`${S}/series/1.2.3`, 'instances'],
    [I, 'instances'],
    [`${S}/metadata`, 'metadata'],
    [`${S}/series/1.2.3/metadata`, 'metadata'],
    [`${I}/metadata`, 'metadata'],
    [`${I}/frames/1,2`, 'frames'],
    [`${I}/bulk/7FE00010`, 'bulk'],
    [`${I}/bulk/00540016/0/00181072`, 'bulk'],
    ['/api/worklist', undefined],
    [`${S}/frames/1`, undefined],
    [`${S}/instances/1.2.3.4`, undefined],
    [`${I}/rendered`, 'rendered'],
    [`${I}/frames/1/rendered`, 'rendered'],
    [`${I}/thumbnail`, 'rendered'],
    [`${S}/thumbnail`, 'rendered'],
    [`${I}/frames`, undefined],
    [`${I}/frames/1/2`, undefined],
    [`${S}/metadata/x`, undefined]
  ]
  for (const [path, resource] of expected) assert.is(dicomwebResource(path), resource, path)
})

test('Accept ranges: wildcards, q-values (q=0 refuses), the most specific range decides, multipart part types', () => {
  type Offers = Parameters<typeof acceptable>[1]
  const json: Offers = [
    { type: 'application', subtype: 'dicom+json' },
    { type: 'application', subtype: 'json' }
  ]
  const dicom: Offers = [{ type: 'multipart', subtype: 'related', part: 'application/dicom' }]
  const taken = (accept: string, offers: Offers): boolean => acceptable(parseAccept(accept), offers)
  const yes = (accept: string, offers: Offers): void => {
    assert.ok(taken(accept, offers), accept)
  }
  const no = (accept: string, offers: Offers): void => {
    assert.not.ok(taken(accept, offers), accept)
  }
  const jsonYes = [
    'application/dicom+json',
    'application/json',
    '*/*',
    'application/*',
    '',
    'garbage',
    'text/html;q=0.5, */*;q=0.1'
  ]
  for (const accept of jsonYes) yes(accept, json)
  const jsonNo = [
    'text/html',
    '*/*;q=0',
    'application/*;q=0',
    'application/dicom+json;q=0, application/json;q=0, text/*'
  ]
  for (const accept of jsonNo) no(accept, json)
  yes('application/dicom+json;q=0, */*', json) // application/json is still acceptable
  no('application/*;q=0, application/dicom+xml', json)
  const dicomYes = [
    'multipart/related; type="application/dicom"',
    'multipart/related; type=application/dicom; transfer-syntax=*',
    'multipart/related',
    'multipart/*',
    '*/*',
    'multipart/related; type="application/*"',
    'Multipart/Related; Type="Application/DICOM"'
  ]
  for (const accept of dicomYes) yes(accept, dicom)
  const dicomNo = [
    'application/dicom',
    'multipart/related; type="application/octet-stream"',
    'application/dicom+json',
    'multipart/related; type="application/dicom"; q=0',
    '*/*, multipart/related; type="application/dicom";q=0'
  ]
  for (const accept of dicomNo) no(accept, dicom)
  yes('multipart/related; type="application/dicom"; q=0.8, text/html', dicom)
  yes('text/html; foo="a,b"; q=1, multipart/related; type="application/dicom"', dicom) // a comma inside quotes
})

let node: StartedNode
let client: DicomWebClient
let study = ''
let series = ''
let sop = ''

test.before(async () => {
  const consortium = await createScratchConsortium('Accept')
  node = await startNode(await consortium.member('Accept Site', 'site'))
  const generated = await generateCt({ out: await tempDir(), slices: 2, series: 1, rows: 32, columns: 32, seed: 406 })
  for (const file of generated.files) {
    const body = await fs.readFile(file)
    const headers = { 'content-type': 'application/dicom' }
    const response = await node.fetch('/api/import', { method: 'POST', headers, body })
    assert.is(response.status, 200)
  }
  study = generated.studyInstanceUid
  series = generated.series[0]?.seriesInstanceUid ?? ''
  const instances = (await (await node.fetch(`/dicom-web/studies/${study}/series/${series}/instances`)).json()) as Json
  sop = instances[0]?.['00080018']?.Value?.[0] as string
  client = new api.DICOMwebClient({ url: `${node.http}/dicom-web`, headers: { Authorization: `Bearer ${node.token}` } })
})

test.after(async () => {
  await node?.kill()
})

const paths = (): Record<string, string> => ({
  search: '/dicom-web/studies',
  seriesSearch: `/dicom-web/studies/${study}/series`,
  instanceSearch: `/dicom-web/studies/${study}/series/${series}/instances`,
  study: `/dicom-web/studies/${study}`,
  series: `/dicom-web/studies/${study}/series/${series}`,
  instance: `/dicom-web/studies/${study}/series/${series}/instances/${sop}`,
  studyMetadata: `/dicom-web/studies/${study}/metadata`,
  seriesMetadata: `/dicom-web/studies/${study}/series/${series}/metadata`,
  metadata: `/dicom-web/studies/${study}/series/${series}/instances/${sop}/metadata`,
  frames: `/dicom-web/studies/${study}/series/${series}/instances/${sop}/frames/1`,
  bulk: `/dicom-web/studies/${study}/series/${series}/instances/${sop}/bulk/7FE00010`
})

async function statusOf(path: string, accept: string): Promise<{ status: number; code?: string }> {
  const response = await node.fetch(path, { headers: { accept } })
  const text = await response.text()
  if (response.status < 400) return { status: response.status }
  return { status: response.status, code: (JSON.parse(text) as { error: { code: string } }).error.code }
}

test('an Accept a DICOMweb resource cannot be answered with is 406 RADMESH_NOT_ACCEPTABLE', async () => {
  const p = paths()
  const refused: Array<[string | undefined, string]> = [
    [p.search, 'text/html'],
    [p.seriesSearch, 'application/dicom+xml'],
    [p.instanceSearch, 'multipart/related; type="application/dicom"'],
    [p.search, 'application/dicom+json; q=0'],
    [p.search, '*/*;q=0'],
    [p.study, 'application/pdf'],
    [p.series, 'application/dicom+json'],
    [p.instance, 'application/zip'],
    [p.instance, 'multipart/related; type="application/octet-stream"'],
    [p.instance, 'multipart/related; type="application/dicom"; q=0'],
    [p.studyMetadata, 'multipart/related; type="application/dicom"'],
    [p.metadata, 'text/html'],
    [p.frames, 'text/html'],
    [p.frames, 'application/dicom+json'],
    [p.frames, 'multipart/related; type="application/dicom"'],
    [p.bulk, 'application/pdf'],
    [p.bulk, 'multipart/related; type="image/jpeg"'],
    [`${p.search}?accept=text%2Fhtml`, 'application/dicom+json']
  ]
  for (const [path = '', accept] of refused) {
    const answer = await statusOf(path, accept)
    assert.equal(answer, { status: 406, code: 'RADMESH_NOT_ACCEPTABLE' }, `${path} with ${accept}`)
  }
})

test('the Accepts DICOMweb clients send are answered', async () => {
  const p = paths()
  const frameAccepts = [
    'multipart/related; type=application/octet-stream; transfer-syntax=*', // Cornerstone's WADO-RS loader (OHIF)
    'multipart/related; type="application/octet-stream"; transfer-syntax=*', // radmesh's viewer
    // dicomweb-client asking for a compressed frame or any other (OHIF's configurations do)
    'multipart/related; type="image/jls"; transfer-syntax=1.2.840.10008.1.2.4.80, ' +
      'multipart/related; type="application/octet-stream"; transfer-syntax=*',
    'multipart/related; type="image/jpeg"',
    'multipart/related',
    '*/*'
  ]
  const jsonAccepts = [
    'application/dicom+json',
    'application/json',
    '*/*',
    'application/*',
    'application/dicom+json, application/json;q=0.9, */*;q=0.1'
  ]
  const jsonPaths = [p.search, p.seriesSearch, p.instanceSearch, p.studyMetadata, p.seriesMetadata, p.metadata]
  const instanceAccepts = [
    'multipart/related; type="application/dicom"',
    'multipart/related; type=application/dicom; transfer-syntax=*',
    'multipart/related',
    '*/*'
  ]
  const every = (paths: Array<string | undefined>, accepts: string[]): Array<[string | undefined, string]> =>
    paths.flatMap(path => accepts.map(accept => [path, accept] as [string | undefined, string]))
  const answered = [
    ...every(jsonPaths, jsonAccepts),
    ...every([p.study, p.series, p.instance], instanceAccepts),
    ...every([p.frames], frameAccepts),
    ...every([p.bulk], ['multipart/related; type="application/octet-stream"', '*/*']),
    ...every([`${p.search}?accept=application%2Fdicom%2Bjson`], ['text/html'])
  ]
  for (const [path = '', accept] of answered) {
    const { status } = await statusOf(path, accept)
    assert.ok(status !== 406 && status < 500, `${path} with ${accept}: ${status}`)
  }
})

test('a request without an Accept header is answered', async () => {
  for (const path of Object.values(paths())) {
    const status = await new Promise<number>((resolve, reject) => {
      const headers = { authorization: `Bearer ${node.token}` }
      const request = httpRequest(`${node.http}${path}`, { headers }, response => {
        response.resume()
        resolve(response.statusCode ?? 0)
      })
      request.on('error', reject)
      request.end()
    })
    assert.ok(status !== 406 && status < 500, `${path}: ${status}`)
  }
})

test('dicomweb-client (what OHIF is built on) searches, retrieves, reads metadata, frames and bulk data', async () => {
  const ids = { studyInstanceUID: study, seriesInstanceUID: series, sopInstanceUID: sop }
  assert.is((await client.searchForStudies({ queryParams: { StudyInstanceUID: study } })).length, 1)
  assert.is((await client.searchForSeries({ studyInstanceUID: study })).length, 1)
  assert.is((await client.searchForInstances(ids)).length, 2)
  assert.is((await client.retrieveStudy({ studyInstanceUID: study })).length, 2)
  assert.is((await client.retrieveSeries(ids)).length, 2)
  assert.ok((await client.retrieveInstance(ids)).byteLength > 0)
  assert.is((await client.retrieveStudyMetadata({ studyInstanceUID: study })).length, 2)
  assert.is((await client.retrieveSeriesMetadata(ids)).length, 2)
  const [metadata] = await client.retrieveInstanceMetadata(ids)
  const frame = { ...ids, frameNumbers: [1] }
  assert.is((await client.retrieveInstanceFrames(frame))[0]?.byteLength, 32 * 32 * 2)
  const octet = [{ mediaType: 'application/octet-stream', transferSyntaxUID: '1.2.840.10008.1.2.1' }]
  assert.is((await client.retrieveInstanceFrames({ ...frame, mediaTypes: octet }))[0]?.byteLength, 32 * 32 * 2)
  const any = [
    { mediaType: 'image/jls', transferSyntaxUID: '1.2.840.10008.1.2.4.80' },
    { mediaType: 'application/octet-stream', transferSyntaxUID: '*' }
  ]
  assert.is((await client.retrieveInstanceFrames({ ...frame, mediaTypes: any }))[0]?.byteLength, 32 * 32 * 2)
  const bulk = metadata?.['7FE00010']?.BulkDataURI
  assert.type(bulk, 'string')
  assert.ok((await client.retrieveBulkData({ BulkDataURI: bulk as string })).length > 0)
})

test('an unauthenticated request is 401 whatever its Accept', async () => {
  const response = await fetch(`${node.http}/dicom-web/studies`, { headers: { accept: 'text/html' } })
  assert.is(response.status, 401)
})

test.run()
