/**
 * Interoperability: a real Orthanc PACS forwards a study to a radmesh node by C-STORE, and the
 * `dicomweb-client` library (what OHIF uses) finds it by QIDO-RS and retrieves it by WADO-RS.
 */
import { promises as fs } from 'node:fs'
import { createRequire } from 'node:module'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { sha256Hex } from '../../node/archive/chunks.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { datasetStart } from '../helpers/dicom.ts'
import { type OrthancServer, startOrthanc } from '../../scripts/lib/orthanc.ts'
import { type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

// dicomweb-client is written for browsers: give it Node an XMLHttpRequest.
const require = createRequire(import.meta.url)
;(globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = require('xhr2')
const { api } = require('dicomweb-client') as {
  api: { DICOMwebClient: new (options: { url: string; headers: Record<string, string> }) => DicomWebClient }
}

interface DicomWebClient {
  searchForStudies(options?: {
    queryParams?: Record<string, string>
  }): Promise<Array<Record<string, { Value?: unknown[] }>>>
  searchForSeries(options: { studyInstanceUID: string }): Promise<Array<Record<string, { Value?: unknown[] }>>>
  retrieveStudy(options: { studyInstanceUID: string }): Promise<ArrayBuffer[]>
  retrieveStudyMetadata(options: {
    studyInstanceUID: string
  }): Promise<Array<Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>>>
}

let node: StartedNode
let orthanc: OrthancServer

test.before(async () => {
  const consortium = await createScratchConsortium()
  node = await startNode(await consortium.member('Interop Site', 'site'), { dicom: true })
  orthanc = await startOrthanc({ modalities: { radmesh: ['RADMESH', '127.0.0.1', node.dicomPort] } })
})

test.after(async () => {
  await orthanc?.stop()
  await node?.kill()
})

test(
  'Orthanc forwards a study by C-STORE; dicomweb-client ' + 'finds it by QIDO-RS and retrieves it intact by WADO-RS',
  async () => {
    const dir = await tempDir()
    const study = await generateCt({
      out: dir,
      slices: 3,
      series: 2,
      rows: 64,
      columns: 64,
      seed: 2024,
      patientName: 'INTEROP^TEST'
    })
    let orthancStudy = ''
    for (const file of study.files) {
      const answer = await orthanc.request<{ ParentStudy: string }>('POST', '/instances', await fs.readFile(file))
      orthancStudy = answer.ParentStudy
    }
    const job = await orthanc.request<{ FailedInstancesCount?: number; InstancesCount?: number }>(
      'POST',
      '/modalities/radmesh/store',
      { Resources: [orthancStudy], Synchronous: true }
    )
    assert.is(job.FailedInstancesCount ?? 0, 0)

    const client = new api.DICOMwebClient({
      url: `${node.http}/dicom-web`,
      headers: { Authorization: `Bearer ${node.token}` }
    })
    const found = await waitFor('the study by QIDO', async () => {
      const result = await client.searchForStudies({ queryParams: { PatientName: 'INTEROP*' } })
      return result.length === 1 ? result : undefined
    })
    assert.equal(found[0]?.['0020000D']?.Value, [study.studyInstanceUid])
    assert.equal(found[0]?.['00201208']?.Value, [6])
    assert.is((await client.searchForSeries({ studyInstanceUID: study.studyInstanceUid })).length, 2)

    const retrieved = await client.retrieveStudy({ studyInstanceUID: study.studyInstanceUid })
    assert.is(retrieved.length, 6)
    const sent = new Set(
      await Promise.all(
        study.files.map(async f => {
          const b = await fs.readFile(f)
          return sha256Hex(b.subarray(datasetStart(b)))
        })
      )
    )
    for (const buffer of retrieved) {
      const bytes = new Uint8Array(buffer)
      assert.ok(
        sent.has(sha256Hex(bytes.subarray(datasetStart(bytes)))),
        'a retrieved instance differs from what Orthanc was given'
      )
    }

    const metadata = await client.retrieveStudyMetadata({ studyInstanceUID: study.studyInstanceUid })
    assert.is(metadata.length, 6)
    assert.ok(metadata[0]?.['7FE00010']?.BulkDataURI !== undefined, 'pixel data is a BulkDataURI')
  }
)

test.run()
