/**
 * The study exchange end to end, in separate processes over real libp2p: a site shares a study, readers
 * fetch it from whoever holds it, and every instance arrives byte-identical to the site's copy.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { test } from 'uvu'
import { nodesOfTests } from '../helpers/nodes.ts'
import * as assert from 'uvu/assert'
import type { Availability } from '../../protocol/api/studies.ts'
import { ANNOUNCE_PROTOCOL, CHUNKS_PROTOCOL, MANIFEST_PROTOCOL } from '../../protocol/exchange/messages.ts'
import { type GeneratedStudy, generateCt } from '../../scripts/generate-ct.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { intrude } from '../helpers/intrude.ts'
import { connected, logOf, p2pAddr, type StartedNode } from '../../scripts/lib/node-process.ts'
import { radmesh, ROOT } from '../../scripts/lib/cli.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const nodes = nodesOfTests(test, 'Exchange')
const { start } = nodes

interface InstanceInfo {
  sopInstanceUid: string
  sha256: string
  bytes: number
}

async function qido(node: StartedNode, path: string): Promise<Array<Record<string, { Value?: string[] }>>> {
  const response = await node.fetch(`/dicom-web${path}`, { headers: { accept: 'application/dicom+json' } })
  if (response.status === 204) return []
  assert.is(response.status, 200, `GET ${path}`)
  return (await response.json()) as Array<Record<string, { Value?: string[] }>>
}

/** SOP Instance UID -> SHA-256 of every instance of the study on a node (QIDO, then the instance API). */
async function instanceHashes(node: StartedNode, studyUid: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>()
  for (const series of await qido(node, `/studies/${studyUid}/series`)) {
    for (const entry of await qido(
      node,
      `/studies/${studyUid}/series/${series['0020000E']?.Value?.[0]}/instances?limit=100000`
    )) {
      const sop = entry['00080018']?.Value?.[0] as string
      hashes.set(sop, (await node.api<InstanceInfo>('GET', `/api/instances/${sop}`)).body.sha256)
    }
  }
  return hashes
}

/**
 * A 5-slice study pushed to the site by storescu, shared with the reader and fetched by it: waited for (`what`)
 * until complete at the reader.
 */
async function fetchedByReader(
  site: StartedNode,
  reader: StartedNode,
  seed: number,
  what: string
): Promise<GeneratedStudy> {
  const dir = await tempDir()
  const study = await generateCt({ out: dir, slices: 5, rows: 64, columns: 64, seed })
  assert.is((await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
  assert.is(
    (await site.api('POST', `/api/studies/${study.studyInstanceUid}/share`, { peerIds: [reader.peerId] })).status,
    200
  )
  assert.is((await reader.api('POST', `/api/studies/${study.studyInstanceUid}/fetch`)).status, 202)
  await waitFor(what, async () => (await availability(reader, study.studyInstanceUid)).complete, 30_000)
  return study
}

async function availability(node: StartedNode, studyUid: string): Promise<Availability> {
  return (await node.api<Availability>('GET', `/api/studies/${studyUid}/availability`)).body
}

test("site to reader: a 400-instance study arrives complete, every instance identical to the site's copy", async () => {
  const site = await start(await nodes.member('Exchange Site', 'site'), { dicom: true })
  const reader = await start(await nodes.member('Exchange Reader', 'radiologist'), { peers: [p2pAddr(site)] })
  await connected(site, reader)
  const dir = await tempDir()
  const study = await generateCt({ out: dir, slices: 200, series: 2, rows: 64, columns: 64, seed: 11 })
  const sent = await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])
  assert.is(sent.code, 0, sent.stderr)

  const shared = await site.api<{ versionId: string; recipients: Array<{ peerId: string; announced: boolean }> }>(
    'POST',
    `/api/studies/${study.studyInstanceUid}/share`,
    { peerIds: [reader.peerId] }
  )
  assert.is(shared.status, 200, JSON.stringify(shared.body))
  assert.equal(shared.body.recipients, [{ peerId: reader.peerId, announced: true }])

  const fetch = await reader.api<Availability>('POST', `/api/studies/${study.studyInstanceUid}/fetch`)
  assert.is(fetch.status, 202)
  const done = await waitFor(
    'the study to arrive',
    async () => {
      const a = await availability(reader, study.studyInstanceUid)
      if (a.state === 'failed') throw new Error(`fetch failed: ${a.error}`)
      return a.complete ? a : undefined
    },
    60_000,
    100
  )
  assert.is(done.instancesTotal, 400)
  assert.is(done.instancesLocal, 400)

  const siteHashes = await instanceHashes(site, study.studyInstanceUid)
  const readerHashes = await instanceHashes(reader, study.studyInstanceUid)
  assert.is(siteHashes.size, 400)
  assert.equal(readerHashes, siteHashes, "every instance has the site's SHA-256")
})

test(
  'three nodes: a second reader fetches from the site ' + 'and the first reader at once (radmesh share / fetch)',
  async () => {
    const site = await start(await nodes.member('Three Site', 'site'), { dicom: true })
    const first = await start(await nodes.member('Three Reader 1', 'radiologist'), { peers: [p2pAddr(site)] })
    const second = await start(await nodes.member('Three Reader 2', 'radiologist'), {
      peers: [p2pAddr(site), p2pAddr(first)]
    })
    await connected(site, first)
    await connected(site, second)
    await connected(first, second)
    const dir = await tempDir()
    const study = await generateCt({ out: dir, slices: 60, rows: 256, columns: 256, seed: 12 })
    assert.is((await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)

    const shared = await radmesh([
      'share',
      '--home',
      site.home,
      study.studyInstanceUid,
      '--to',
      first.peerId,
      '--to',
      second.peerId
    ])
    assert.is(shared.code, 0, shared.stderr)
    assert.match(shared.stdout, `shared ${study.studyInstanceUid} with ${second.peerId}`)
    const firstFetch = await radmesh(['fetch', '--home', first.home, study.studyInstanceUid, '--timeout', '60'])
    assert.is(firstFetch.code, 0, firstFetch.stderr)
    assert.match(firstFetch.stdout, `${study.studyInstanceUid}: complete, 60 instances`)

    const secondFetch = await radmesh(['fetch', '--home', second.home, study.studyInstanceUid, '--timeout', '60'])
    assert.is(secondFetch.code, 0, secondFetch.stderr)
    const done = await availability(second, study.studyInstanceUid)
    assert.ok((done.sources?.[site.peerId] ?? 0) > 0, `chunks came from the site: ${JSON.stringify(done.sources)}`)
    assert.ok(
      (done.sources?.[first.peerId] ?? 0) > 0,
      `chunks came from the first reader: ${JSON.stringify(done.sources)}`
    )
    assert.equal(
      await instanceHashes(second, study.studyInstanceUid),
      await instanceHashes(site, study.studyInstanceUid)
    )
    const audit = await second.api<{ records: Array<{ eventCode: string; detail?: string; study?: string }> }>(
      'GET',
      '/api/audit'
    )
    assert.ok(
      audit.body.records.some(
        r =>
          r.eventCode === '110104' && r.study === study.studyInstanceUid && r.detail?.startsWith('fetched 60 instances')
      ),
      'the fetch is in the audit trail'
    )
  }
)

test('a member that is not a recipient cannot read the study: its fetch fails, nothing is stored', async () => {
  const site = await start(await nodes.member('Private Site', 'site'), { dicom: true })
  const reader = await start(await nodes.member('Private Reader', 'radiologist'), { peers: [p2pAddr(site)] })
  const outsider = await start(await nodes.member('Not A Recipient', 'radiologist'), {
    peers: [p2pAddr(site), p2pAddr(reader)]
  })
  await connected(site, reader)
  await connected(site, outsider)
  const study = await fetchedByReader(site, reader, 13, 'the reader to have the study')

  const refused = await radmesh(['fetch', '--home', outsider.home, study.studyInstanceUid, '--timeout', '30'])
  assert.is(refused.code, 1)
  assert.match(refused.stderr, 'not a recipient')
  assert.equal(await instanceHashes(outsider, study.studyInstanceUid), new Map(), 'nothing of the study is stored')

  const revoked = await site.api<{ error: { code: string } }>('POST', `/api/studies/${study.studyInstanceUid}/share`, {
    peerIds: ['12D3KooWNotAMemberNotAMemberNotAMemberNotAMember1']
  })
  assert.is(revoked.status, 400)
  assert.is(revoked.body.error.code, 'RADMESH_NOT_A_MEMBER')
})

test(
  'garbage on the exchange protocols resets those ' + 'streams; the node logs it and still shares and serves',
  async () => {
    const site = await start(await nodes.member('Garbage Site', 'site'), { dicom: true })
    const reader = await start(await nodes.member('Patient Reader', 'radiologist'), { peers: [p2pAddr(site)] })
    await connected(site, reader)
    const vandal = await nodes.member('Vandal', 'radiologist')
    for (const protocol of [MANIFEST_PROTOCOL, CHUNKS_PROTOCOL, ANNOUNCE_PROTOCOL]) {
      const result = await intrude(['garbage', vandal, p2pAddr(site), '1', protocol])
      assert.ok((result.sent ?? 0) >= 2, `garbage reached ${protocol}`)
    }
    const refused = (await logOf(site.home)).filter(line => line['event'] === 'bad-message')
    assert.equal(
      [...new Set(refused.map(line => line['protocol']))].sort(),
      [ANNOUNCE_PROTOCOL, CHUNKS_PROTOCOL, MANIFEST_PROTOCOL].sort(),
      'each protocol refused the garbage'
    )

    await fetchedByReader(site, reader, 15, 'the study to arrive after the garbage')
  }
)

test('a member that serves corrupted chunks: rejected, fetched from another holder, peer penalised', async () => {
  const siteHome = await nodes.member('Honest Site', 'site')
  let site = await start(siteHome, { dicom: true })
  const reader = await start(await nodes.member('Careful Reader', 'radiologist'), { peers: [p2pAddr(site)] })
  await connected(site, reader)
  const dir = await tempDir()
  const study = await generateCt({ out: dir, slices: 20, rows: 128, columns: 128, seed: 14 })
  assert.is((await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
  assert.is(
    (await site.api('POST', `/api/studies/${study.studyInstanceUid}/share`, { peerIds: [reader.peerId] })).status,
    200
  )

  const bad = spawn(
    process.execPath,
    [
      join(ROOT, 'test/helpers/bad-holder.ts'),
      await nodes.member('Bad Holder', 'radiologist'),
      p2pAddr(site),
      study.studyInstanceUid,
      p2pAddr(reader)
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] }
  )
  try {
    const [line] = (await once(bad.stdout, 'data')) as [Buffer]
    const badHolder = JSON.parse(line.toString()) as { peerId: string }
    // With the site gone, the bad holder is the only one to ask.
    await site.kill()
    assert.is((await reader.api('POST', `/api/studies/${study.studyInstanceUid}/fetch`)).status, 202)
    const corrupt = await waitFor(
      'a corrupt chunk to be refused',
      async () => {
        const lines = (await logOf(reader.home)).filter(l => l['event'] === 'corrupt-chunk')
        return lines.length > 0 ? lines : undefined
      },
      20_000
    )
    assert.ok(
      corrupt.every(l => l['peer'] === badHolder.peerId),
      'the chunk was refused as coming from the bad holder'
    )
    assert.is(
      (await availability(reader, study.studyInstanceUid)).instancesLocal,
      0,
      'nothing from the bad holder was stored'
    )

    site = await start(siteHome, { dicom: true, p2pPort: site.p2pPort, wsPort: site.wsPort, httpPort: site.httpPort })
    await waitFor(
      'the study to arrive from the site',
      async () => {
        const a = await availability(reader, study.studyInstanceUid)
        if (a.state === 'failed') throw new Error(`fetch failed: ${a.error}`)
        return a.complete
      },
      60_000
    )
    const done = await availability(reader, study.studyInstanceUid)
    assert.equal(
      Object.keys(done.sources ?? {})
        .filter(peer => (done.sources?.[peer] ?? 0) > 0)
        .sort(),
      [badHolder.peerId, site.peerId].sort()
    )
    assert.equal(
      await instanceHashes(reader, study.studyInstanceUid),
      await instanceHashes(site, study.studyInstanceUid)
    )
    assert.is(
      (await logOf(reader.home)).filter(l => l['event'] === 'corrupt-chunk').length,
      corrupt.length,
      'the bad holder was not asked again'
    )
  } finally {
    bad.kill('SIGKILL')
  }
})

test.run()
