/**
 * A real DICOMweb client no one here wrote: Orthanc's DICOMweb plugin stores a study into a node by STOW-RS
 * (`/dicom-web/servers/radmesh/stow`), with the 73-character multipart boundary it sends, and the node holds
 * every instance byte for byte.
 */
import { promises as fs } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { sha256Hex } from '../../node/archive/chunks.ts'
import { parseMultipartRelated } from '../../protocol/dicomweb/multipart.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { type OrthancServer, startOrthanc } from '../../scripts/lib/orthanc.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { datasetStart } from '../helpers/dicom.ts'

const DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so'

let node: StartedNode
let orthanc: OrthancServer

test.before(async () => {
  const consortium = await createScratchConsortium()
  node = await startNode(await consortium.member('STOW Site', 'site'))
  orthanc = await startOrthanc({ plugins: [DICOMWEB_PLUGIN] })
})

test.after(async () => {
  await orthanc?.stop()
  await node?.kill()
})

test("Orthanc's DICOMweb client stores a study by STOW-RS; the node holds every instance as sent", async () => {
  const study = await generateCt({ out: await tempDir(), slices: 3, series: 1, rows: 64, columns: 64, seed: 73 })
  let orthancStudy = ''
  for (const file of study.files) {
    const answer = await orthanc.request<{ ParentStudy: string }>('POST', '/instances', await fs.readFile(file))
    orthancStudy = answer.ParentStudy
  }
  await orthanc.request('PUT', '/dicom-web/servers/radmesh', {
    Url: `${node.http}/dicom-web/`,
    HttpHeaders: { Authorization: `Bearer ${node.token}` }
  })
  await orthanc.request('POST', '/dicom-web/servers/radmesh/stow', { Resources: [orthancStudy] })
  const response = await node.fetch(`/dicom-web/studies/${study.studyInstanceUid}`, {
    headers: { accept: 'multipart/related; type="application/dicom"' }
  })
  assert.is(response.status, 200)
  const body = new Uint8Array(await response.arrayBuffer())
  const back = parseMultipartRelated(body, response.headers.get('content-type') ?? '').map(part => part.body)
  const datasetOf = (file: Uint8Array): string => sha256Hex(file.subarray(datasetStart(file)))
  const sent = new Set(await Promise.all(study.files.map(async file => datasetOf(await fs.readFile(file)))))
  assert.is(back.length, study.files.length)
  for (const file of back) assert.ok(sent.has(datasetOf(file)), 'an instance came back altered')
})

test.run()
