/**
 * The study exchange end to end, in separate processes over real libp2p: a site shares a study, readers
 * fetch it from whoever holds it, and every instance arrives byte-identical to the site's copy.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import { createTestConsortium, type TestConsortium } from '../helpers/consortium.ts'
import { storescu } from '../helpers/dcmtk.ts'
import { p2pAddr, peersOf, type StartedNode, startNode, tempDir, waitFor } from '../helpers/processes.ts'

interface Availability { instancesTotal: number, instancesLocal: number, bytesTotal: number, bytesLocal: number, complete: boolean, state: string, error?: string, sources?: Record<string, number> }
interface InstanceInfo { sopInstanceUid: string, sha256: string, bytes: number }

let consortium: TestConsortium
const started: StartedNode[] = []

async function start (home: string, extra: Parameters<typeof startNode>[1] = {}): Promise<StartedNode> {
  const node = await startNode(home, extra)
  started.push(node)
  return node
}

async function connected (a: StartedNode, b: StartedNode): Promise<void> {
  await waitFor(`${a.peerId} and ${b.peerId} to see each other`, async () =>
    (await peersOf(a)).some(p => p.peerId === b.peerId) && (await peersOf(b)).some(p => p.peerId === a.peerId), 10_000)
}

async function qido (node: StartedNode, path: string): Promise<Array<Record<string, { Value?: string[] }>>> {
  const response = await node.fetch(`/dicom-web${path}`, { headers: { accept: 'application/dicom+json' } })
  if (response.status === 204) return []
  assert.is(response.status, 200, `GET ${path}`)
  return await response.json() as Array<Record<string, { Value?: string[] }>>
}

/** SOP Instance UID -> SHA-256 of every instance of the study on a node (QIDO, then the instance API). */
async function instanceHashes (node: StartedNode, studyUid: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>()
  for (const series of await qido(node, `/studies/${studyUid}/series`)) {
    for (const entry of await qido(node, `/studies/${studyUid}/series/${series['0020000E']?.Value?.[0]}/instances?limit=100000`)) {
      const sop = entry['00080018']?.Value?.[0] as string
      hashes.set(sop, (await node.api<InstanceInfo>('GET', `/api/instances/${sop}`)).body.sha256)
    }
  }
  return hashes
}

async function availability (node: StartedNode, studyUid: string): Promise<Availability> {
  return (await node.api<Availability>('GET', `/api/studies/${studyUid}/availability`)).body
}

test.before(async () => {
  consortium = await createTestConsortium('Exchange')
})

test.after(async () => {
  await Promise.all(started.map(async node => { await node.kill() }))
})

test('site to reader: a 400-instance study arrives complete, every instance identical to the site\'s copy', async () => {
  const site = await start(await consortium.member('Exchange Site', 'site'), { dicom: true })
  const reader = await start(await consortium.member('Exchange Reader', 'radiologist'), { peers: [p2pAddr(site)] })
  await connected(site, reader)
  const dir = await tempDir()
  const study = await generateCt({ out: dir, slices: 200, series: 2, rows: 64, columns: 64, seed: 11 })
  const sent = await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])
  assert.is(sent.code, 0, sent.stderr)

  const shared = await site.api<{ versionId: string, recipients: Array<{ peerId: string, announced: boolean }> }>('POST', `/api/studies/${study.studyInstanceUid}/share`, { peerIds: [reader.peerId] })
  assert.is(shared.status, 200, JSON.stringify(shared.body))
  assert.equal(shared.body.recipients, [{ peerId: reader.peerId, announced: true }])

  const fetch = await reader.api<Availability>('POST', `/api/studies/${study.studyInstanceUid}/fetch`)
  assert.is(fetch.status, 202)
  const done = await waitFor('the study to arrive', async () => {
    const a = await availability(reader, study.studyInstanceUid)
    if (a.state === 'failed') throw new Error(`fetch failed: ${a.error}`)
    return a.complete ? a : undefined
  }, 60_000, 100)
  assert.is(done.instancesTotal, 400)
  assert.is(done.instancesLocal, 400)

  const siteHashes = await instanceHashes(site, study.studyInstanceUid)
  const readerHashes = await instanceHashes(reader, study.studyInstanceUid)
  assert.is(siteHashes.size, 400)
  assert.equal(readerHashes, siteHashes, 'every instance has the site\'s SHA-256')
})

test.run()
