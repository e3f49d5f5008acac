/**
 * The study exchange plugin: recipients once each, a de-identified copy named in the answer (or refused with its
 * own code), a fetch that has found nothing yet, an unknown study.
 */
import { promises as fs } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Availability, Shared } from '../../protocol/api/studies.ts'
import type { StoreResult } from '../../node/archive/archive.ts'
import type { InstanceRecord } from '../../node/archive/records.ts'
import type { DeidMapping } from '../../node/deid/mappings.ts'
import { writeDataset } from '../../node/dicom/writer.ts'
import { studyRoutes } from '../../node/http/api/studies.ts'
import type { StudyFetch } from '../../node/exchange/fetch.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { ACTOR, errorOf, pluginApp } from './fixture.ts'

/** The archive holds `files` as one study; `calls` records what is stored and what is kept at the site. */
async function studiesApp(availability?: Availability, files: Buffer[] = []) {
  const calls: unknown[][] = []
  const app = await pluginApp(studyRoutes, {
    archive: {
      instancesOf: async function* () {
        for (const [i] of files.entries()) yield { sopUid: `${i}` } as InstanceRecord
      },
      read: async instance => files[Number(instance.sopUid)] as Buffer,
      store: async () => {
        calls.push(['store'])
        return {} as StoreResult
      }
    },
    mappings: {
      keep: async (mapping: DeidMapping) => {
        calls.push(['keep', mapping.originalStudyUid])
      }
    },
    exchange: {
      share: async (studyUid, peerIds, actor) => {
        calls.push(['share', studyUid, peerIds, actor])
        return { studyUid, versionId: 'v1', recipients: peerIds.map(peerId => ({ peerId, announced: true })) }
      },
      fetch: (studyUid, actor) => {
        calls.push(['fetch', studyUid, actor])
        return {} as StudyFetch
      },
      availability: async () => availability
    }
  })
  return { app, calls }
}

test('a share names each recipient once', async () => {
  const { app, calls } = await studiesApp()
  const payload = { peerIds: ['a', 'b', 'a'] }
  const response = await app.inject({ method: 'POST', url: '/api/studies/1.2.3/share', payload })
  assert.is(response.statusCode, 200)
  assert.equal(calls, [['share', '1.2.3', ['a', 'b'], ACTOR]])
  assert.is(response.json<Shared>().studyInstanceUid, '1.2.3')
})

/** A generated CT of `slices` instances, the last with Burned In Annotation (0028,0301) YES when `burnedIn`. */
async function ct(slices: number, burnedIn = false): Promise<{ studyUid: string; files: Buffer[] }> {
  const study = await generateCt({ out: await tempDir(), slices, rows: 16, columns: 16, seed: 19 })
  const files = await Promise.all(study.files.map(async file => await fs.readFile(file)))
  const last = files.at(-1) as Buffer
  // (0028,0301) goes just before Window Center (0028,1050), explicit VR "DS", the next element the generator writes.
  const next = last.indexOf(Buffer.from([0x28, 0x00, 0x50, 0x10, 0x44, 0x53]))
  const element = writeDataset([{ tag: 0x00280301, vr: 'CS', value: 'YES' }])
  if (burnedIn) files[files.length - 1] = Buffer.concat([last.subarray(0, next), element, last.subarray(next)])
  return { studyUid: study.studyInstanceUid, files }
}

test('a de-identified share keeps the way back at the site, stores the copy, then shares the copy', async () => {
  const { studyUid, files } = await ct(2)
  const { app, calls } = await studiesApp(undefined, files)
  const payload = { peerIds: ['a'], deidentify: true, retainDates: 'modified', retainPatientCharacteristics: true }
  const response = await app.inject({ method: 'POST', url: `/api/studies/${studyUid}/share`, payload })
  assert.is(response.statusCode, 200, response.body)
  const shared = response.json<Shared>()
  assert.is.not(shared.studyInstanceUid, studyUid)
  assert.is(shared.studyUid, shared.studyInstanceUid)
  assert.is(shared.originalStudyUid, studyUid)
  // The mapping first: the site's workflow knows the copy for a second opinion when it settles (not a routed case).
  assert.equal(calls, [['keep', studyUid], ['store'], ['store'], ['share', shared.studyInstanceUid, ['a'], ACTOR]])
})

test('a de-identified share of a study with a burned-in image is 422: nothing stored, kept or shared', async () => {
  const { studyUid, files } = await ct(2, true)
  const { app, calls } = await studiesApp(undefined, files)
  const url = `/api/studies/${studyUid}/share`
  const response = await app.inject({ method: 'POST', url, payload: { peerIds: ['a'], deidentify: true } })
  assert.is(response.statusCode, 422)
  assert.is(errorOf(response.body).code, 'RADMESH_NOT_DEIDENTIFIABLE')
  assert.equal(calls, [])
  const clean = { peerIds: ['a'], deidentify: true, burnedInAnnotationClean: true }
  assert.is((await app.inject({ method: 'POST', url, payload: clean })).statusCode, 200)
})

test("the profile's options without deidentify, or a retainDates it does not name, are 400", async () => {
  const { app, calls } = await studiesApp()
  for (const payload of [
    { peerIds: ['a'], retainPatientCharacteristics: true },
    { peerIds: ['a'], deidentify: false, retainDates: 'full' },
    { peerIds: ['a'], deidentify: true, retainDates: 'shifted' }
  ]) {
    const response = await app.inject({ method: 'POST', url: '/api/studies/1.2.3/share', payload })
    assert.is(response.statusCode, 400, JSON.stringify(payload))
    assert.is(errorOf(response.body).code, 'RADMESH_BAD_REQUEST')
  }
  assert.equal(calls, [])
})

test('a share needs 1 to 64 recipients and a study UID in its path', async () => {
  const { app, calls } = await studiesApp()
  for (const [url, payload] of [
    ['/api/studies/1.2.3/share', { peerIds: [] }],
    ['/api/studies/1.2.3/share', { peerIds: Array.from({ length: 65 }, (_, i) => `p${i}`) }],
    ['/api/studies/1.2.3/share', { peerIds: 'a' }],
    ['/api/studies/DOE/share', { peerIds: ['a'] }]
  ] as const) {
    const response = await app.inject({ method: 'POST', url, payload })
    assert.is(response.statusCode, 400, `${url} ${JSON.stringify(payload)}`)
  }
  assert.equal(calls, [])
})

test('a fetch is 202 and says it is finding the study before anything is known', async () => {
  const { app, calls } = await studiesApp()
  const response = await app.inject({ method: 'POST', url: '/api/studies/1.2.3/fetch' })
  assert.is(response.statusCode, 202)
  const finding = {
    instancesTotal: 0,
    instancesLocal: 0,
    bytesTotal: 0,
    bytesLocal: 0,
    complete: false,
    state: 'finding'
  }
  assert.equal(response.json(), finding)
  assert.equal(calls, [['fetch', '1.2.3', ACTOR]])
})

test('the availability of a study this node does not know is 404', async () => {
  const { app } = await studiesApp()
  const response = await app.inject({ url: '/api/studies/1.2.3/availability' })
  assert.is(response.statusCode, 404)
  assert.is(errorOf(response.body).code, 'RADMESH_NOT_FOUND')
})

test.run()
