/**
 * A de-identified second opinion end to end, in separate processes over real libp2p: the site stores a CT with a
 * canary patient name and ID over DIMSE, `radmesh share --deidentify` sends a copy, and the reader gets the copy
 * under its new Study Instance UID with nothing of the patient's identity in it, and never sees the original.
 */
import { join } from 'node:path'
import { test } from 'uvu'
import { nodesOfTests } from '../helpers/nodes.ts'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import { radmesh } from '../../scripts/lib/cli.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { connected, p2pAddr, type StartedNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const nodes = nodesOfTests(test, 'Deid')
const { start } = nodes

type DicomJson = Array<Record<string, { Value?: unknown[] }>>

const CANARY_NAME = 'CANARY^ZEBEDEE'
const CANARY_ID = 'CANARY-4711'

/** The DICOM JSON a DICOMweb path answers, as text (to look for canaries) and parsed. */
async function dicomweb(node: StartedNode, path: string): Promise<{ text: string; json: DicomJson }> {
  const response = await node.fetch(`/dicom-web${path}`, { headers: { accept: 'application/dicom+json' } })
  if (response.status === 204) return { text: '', json: [] }
  assert.is(response.status, 200, `GET ${path}`)
  const text = await response.text()
  return { text, json: JSON.parse(text) as DicomJson }
}

test("radmesh share --deidentify: the reader gets a copy under a new UID without the patient's identity", async () => {
  const site = await start(await nodes.member('Deid Site', 'site'), { dicom: true })
  const reader = await start(await nodes.member('Deid Reader', 'radiologist'), { peers: [p2pAddr(site)] })
  await connected(site, reader)
  const dir = await tempDir()
  const study = await generateCt({
    out: join(dir, 'ct'),
    slices: 4,
    series: 2,
    rows: 32,
    columns: 32,
    seed: 19,
    patientName: CANARY_NAME,
    patientId: CANARY_ID
  })
  const sent = await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', join(dir, 'ct')])
  assert.is(sent.code, 0, sent.stderr)
  const original = await dicomweb(site, `/studies/${study.studyInstanceUid}/metadata`)
  const birthDate = original.json[0]?.['00100030']?.Value?.[0]
  assert.ok(typeof birthDate === 'string' && /^\d{8}$/.test(birthDate), 'the original has a birth date')
  assert.ok(original.text.includes('CANARY'), 'the site holds the original with its canary')

  const shared = await radmesh([
    'share',
    '--home',
    site.home,
    study.studyInstanceUid,
    '--to',
    reader.peerId,
    '--deidentify',
    '--retain-patient-characteristics'
  ])
  assert.is(shared.code, 0, shared.stderr)
  const copyUid = /^de-identified copy of [0-9.]+: ([0-9.]+)$/m.exec(shared.stdout)?.[1]
  assert.ok(copyUid !== undefined, `no new Study Instance UID in: ${shared.stdout}`)
  assert.is.not(copyUid, study.studyInstanceUid)
  assert.match(shared.stdout, `shared ${copyUid} with ${reader.peerId}`)

  const fetched = await radmesh(['fetch', '--home', reader.home, copyUid, '--timeout', '60'])
  assert.is(fetched.code, 0, fetched.stderr)
  assert.match(fetched.stdout, `${copyUid}: complete, 8 instances`)

  const studies = await dicomweb(reader, `/studies?StudyInstanceUID=${copyUid}&includefield=all`)
  assert.is(studies.json.length, 1)
  const metadata = await dicomweb(reader, `/studies/${copyUid}/metadata`)
  assert.is(metadata.json.length, 8)
  for (const { text } of [studies, metadata]) {
    for (const canary of ['CANARY', CANARY_ID, birthDate, study.studyInstanceUid]) {
      assert.not.ok(text.includes(canary), `${canary} reached the reader`)
    }
  }
  for (const instance of metadata.json) {
    assert.equal(instance['00120062']?.Value, ['YES'], 'Patient Identity Removed')
    assert.equal(instance['00100040']?.Value, ['O'], "Patient's Sex kept")
    assert.equal(instance['0020000D']?.Value, [copyUid])
  }

  assert.equal((await dicomweb(reader, `/studies?StudyInstanceUID=${study.studyInstanceUid}`)).json, [])
  const availability = await reader.api('GET', `/api/studies/${study.studyInstanceUid}/availability`)
  assert.is(availability.status, 404, 'the reader knows nothing of the original')
})

test('the de-identification options need --deidentify, and a study not in the archive is not copied', async () => {
  const site = nodes.started[0] as StartedNode
  const usage = await radmesh(['share', '--home', site.home, '1.2.3', '--to', 'x', '--retain-dates', 'full'])
  assert.is(usage.code, 2, usage.stderr)
  const missing = await radmesh(['share', '--home', site.home, '1.2.3', '--to', site.peerId, '--deidentify'])
  assert.is(missing.code, 1, missing.stderr)
})

test.run()
