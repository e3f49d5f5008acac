/**
 * A STAT study streamed during its acquisition, in separate processes over real libp2p, DCMTK storescu as the
 * modality at scanner pace (10 slices a second, one association each): the case is on the on-duty reader's
 * worklist, still arriving, and images are local there before the acquisition ends; every instance reaches the
 * reader exactly once (counted in instances and in bytes on the wire); the case turns complete once the study
 * is stable; a ROUTINE study still waits for `--stable-after`.
 */
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import {
  connected,
  knowsRadiologists,
  logOf,
  p2pAddr,
  type StartedNode,
  startNode
} from '../../scripts/lib/node-process.ts'
import { pushPaced } from '../../scripts/lib/paced-push.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const SLICES = 40
/** the push is held here until the reader has the case and an image (the acquisition is then half done) */
const CHECKPOINT = 20
/**
 * Long enough that the checkpoint's wait (bounded below it) cannot make the half-sent study stable; the
 * ROUTINE study must wait this long after its last instance before it has a case.
 */
const STABLE_AFTER_S = 10
/** AES-GCM tag on each chunk: the bytes a sealed chunk has over its plaintext */
const CHUNK_TAG_BYTES = 16

interface Entry {
  caseId: string
  studyInstanceUid: string
  priority: string
  createdAt: string
  dueAt: string
  complete: boolean
}
interface Availability {
  instancesTotal: number
  instancesLocal: number
  bytesTotal: number
  complete: boolean
}

const started: StartedNode[] = []
test.after(async () => {
  await Promise.all(started.map(async node => await node.stop()))
})

const caseOf = async (node: StartedNode, studyUid: string): Promise<Entry | undefined> =>
  (await node.api<Entry[]>('GET', '/api/worklist')).body.find(entry => entry.studyInstanceUid === studyUid)
const availability = async (node: StartedNode, studyUid: string): Promise<Availability> =>
  (await node.api<Availability>('GET', `/api/studies/${studyUid}/availability`)).body

test('a STAT study reaches its on-duty reader as it is acquired, each instance once; ROUTINE waits', async () => {
  const consortium = await createScratchConsortium('STAT streaming')
  // The site sends chunks sealed (no packing), so the bytes on the wire can be counted against the study's.
  const site = await startNode(await consortium.member('County Hospital', 'site'), {
    dicom: true,
    extraArgs: ['--stable-after', `${STABLE_AFTER_S}s`],
    env: { RADMESH_CHUNK_PACKING: '0' }
  })
  started.push(site)
  const reader = await startNode(
    await consortium.member('Dr Ada Neuro', 'radiologist', [], ['--subspecialty', 'neuro']),
    { peers: [p2pAddr(site)] }
  )
  started.push(reader)
  await connected(site, reader)
  await knowsRadiologists(site, 1, 15_000)

  const dir = await tempDir()
  const stat = await generateCt({
    out: join(dir, 'stat'),
    slices: SLICES,
    rows: 128,
    columns: 128,
    seed: 16,
    studyDescription: 'CT HEAD STROKE PROTOCOL',
    bodyPart: 'HEAD'
  })
  const studyUid = stat.studyInstanceUid
  let midway: { entry: Entry; local: number } | undefined
  const push = await pushPaced(site.dicomPort, 'RADMESH', stat.files, 10, async index => {
    if (index !== CHECKPOINT) return
    // Half the study is at the site: the reader must have its case, still arriving, and images already.
    midway = await waitFor(
      'the case and a first image on the reader while the study is acquired',
      async () => {
        const entry = await caseOf(reader, studyUid)
        const local = (await availability(reader, studyUid)).instancesLocal
        return entry !== undefined && local > 0 ? { entry, local } : undefined
      },
      (STABLE_AFTER_S - 2) * 1000
    )
  })
  const lastAnswered = performance.now()
  assert.ok(midway !== undefined)
  assert.is(midway.entry.priority, 'STAT')
  assert.is(midway.entry.complete, false, 'the case shows the study still arriving')
  assert.ok(midway.local <= CHECKPOINT, `${midway.local} images local before the rest was sent`)
  assert.is(Date.parse(midway.entry.dueAt) - Date.parse(midway.entry.createdAt), 60 * 60_000, 'due 1 h from creation')
  // The case counts from its creation at the first instance, before the acquisition ended.
  const pushedAtMs = Date.now() - (performance.now() - push.startedAt)
  assert.ok(Date.parse(midway.entry.createdAt) >= pushedAtMs - 1000, 'created after the push began')

  const routine = await generateCt({
    out: join(dir, 'routine'),
    slices: 5,
    rows: 64,
    columns: 64,
    seed: 17,
    studyDescription: 'CT HEAD',
    bodyPart: 'HEAD'
  })
  const routineSentAt = Date.now()
  const sent = await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', join(dir, 'routine')])
  assert.is(sent.code, 0, sent.stderr)
  assert.is(await caseOf(site, routine.studyInstanceUid), undefined, 'a ROUTINE study has no case before it is stable')

  // Every STAT image reaches the reader; the case is still arriving until the site sees the study stable.
  const done = await waitFor(
    'every STAT image on the reader',
    async () => {
      const now = await availability(reader, studyUid)
      return now.instancesTotal === SLICES && now.complete ? now : undefined
    },
    30_000,
    50
  )
  const allLocal = performance.now()
  assert.is(done.instancesLocal, SLICES)
  assert.is((await caseOf(reader, studyUid))?.complete, false, 'not complete before --stable-after')
  process.stdout.write(
    `\n    [stat-stream] every image on the reader ${Math.round(allLocal - lastAnswered)} ms after the last C-STORE\n`
  )

  const complete = await waitFor(
    'the case complete once the study is stable',
    async () => {
      const entry = await caseOf(reader, studyUid)
      return entry?.complete === true ? entry : undefined
    },
    (STABLE_AFTER_S + 20) * 1000
  )
  assert.is(complete.createdAt, midway.entry.createdAt, 'the same case, created at the first instance')

  // Each instance was moved once: the fetches of the growing study's versions add up to the study, in
  // instances and in bytes on the wire (sealed chunks, one per instance here, besides any tail duplicate).
  const fetches = (await logOf(reader.home)).filter(line => line['event'] === 'fetch-complete')
  const fetched = fetches.reduce((sum, line) => sum + (line['fetched'] as number), 0)
  assert.is(fetched, SLICES, `instances fetched over ${fetches.length} version(s)`)
  assert.ok(fetches.length >= 2, `the reader fetched the study as it grew (${fetches.length} version(s))`)
  const received = fetches.reduce(
    (sum, line) => sum + Object.values(line['sources'] as Record<string, number>).reduce((a, b) => a + b, 0),
    0
  )
  const wasted = fetches.reduce((sum, line) => sum + ((line['tail'] as { wastedBytes: number }).wastedBytes ?? 0), 0)
  const atSite = await availability(site, studyUid)
  assert.is(atSite.instancesTotal, SLICES)
  assert.is(received - wasted, atSite.bytesTotal + SLICES * CHUNK_TAG_BYTES, 'bytes on the wire, duplicates aside')
  const versions = (await logOf(site.home)).filter(
    line => line['event'] === 'study-published' && line['study'] === studyUid
  )
  process.stdout.write(
    `    [stat-stream] ${versions.length} versions published, ${fetches.length} fetched, ` +
      `${received} bytes received (${wasted} tail duplicates)\n`
  )

  const routineCase = await waitFor(
    'the ROUTINE case once its study is stable',
    async () => await caseOf(site, routine.studyInstanceUid),
    (STABLE_AFTER_S + 20) * 1000
  )
  assert.is(routineCase.priority, 'ROUTINE')
  assert.is(routineCase.complete, true)
  assert.ok(
    Date.parse(routineCase.createdAt) - routineSentAt >= STABLE_AFTER_S * 1000 - 100,
    `the ROUTINE case came ${Date.parse(routineCase.createdAt) - routineSentAt} ms after its study was sent`
  )
})

test.run()
