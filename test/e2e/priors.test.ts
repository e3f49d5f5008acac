/**
 * A case's priors end to end, with Debian's Orthanc as the hospital's PACS: a site that names it
 * (`start --pacs`) searches it when a case is published, retrieves the priors the rule picks (C-GET), and
 * shares them with the case's reader, who fetches them after the case's images (a STAT case, on duty). The
 * PACS is down when the first case goes out: the case reaches its reader at once, the search is retried (its
 * state visible on the case), resumed after the site is killed and restarted, and the prior follows once the
 * PACS is up. A second site names the PACS in routing.json and retrieves by C-MOVE to its own DICOM port.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { CasePriors } from '../../protocol/api/priors.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { logOf, p2pAddr, type StartedNode } from '../../scripts/lib/node-process.ts'
import { type OrthancServer, startOrthanc } from '../../scripts/lib/orthanc.ts'
import { freePort } from '../../scripts/lib/ports.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { nodesOfTests } from '../helpers/nodes.ts'
import { worklist } from './workflow-helpers.ts'

const nodes = nodesOfTests(test, 'Priors', { extraArgs: ['--stable-after', '1s'] })
let orthanc: OrthancServer | undefined
let site: StartedNode
let reader: StartedNode
let pacsPort: number

test.after(async () => {
  await orthanc?.stop()
})

const YEAR_MS = 365.25 * 86_400_000
const yearsAgo = (years: number): Date => new Date(Date.now() - years * YEAR_MS)

/** A small CT study of a patient, written to a folder of its own. */
async function study(
  patientId: string,
  seed: number,
  options: { bodyPart: string; description: string; date: Date }
): Promise<{ uid: string; dir: string; files: string[] }> {
  const dir = await tempDir('priors-')
  const generated = await generateCt({
    out: dir,
    slices: 2,
    rows: 16,
    columns: 16,
    seed,
    patientId,
    issuerOfPatientId: 'RADMESH-TEST-HOSPITAL',
    bodyPart: options.bodyPart,
    studyDescription: options.description,
    studyDate: options.date
  })
  return { uid: generated.studyInstanceUid, dir, files: generated.files }
}

async function intoPacs(server: OrthancServer, files: string[]): Promise<void> {
  for (const file of files) await server.request('POST', '/instances', await fs.readFile(file))
}

async function priorsOf(node: StartedNode, caseId: string): Promise<CasePriors> {
  const { status, body } = await node.api<CasePriors>('GET', `/api/cases/${caseId}/priors`)
  assert.is(status, 200, JSON.stringify(body))
  return body
}

/** Pushes a study to the site; the case on the reader's worklist, which it reaches without waiting for priors. */
async function caseAtReader(dir: string, uid: string): Promise<string> {
  assert.is((await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
  const entry = await waitFor(
    "the case on the reader's worklist",
    async () => (await worklist(reader)).find(e => e.studyInstanceUid === uid),
    20_000
  )
  return entry?.caseId as string
}

test.before(async () => {
  pacsPort = await freePort()
  site = await nodes.start(await nodes.member('Priors General', 'site'), {
    dicom: true,
    extraArgs: ['--pacs', `ORTHANC@127.0.0.1:${pacsPort}`, '--pacs-retry', '1s']
  })
  reader = await nodes.start(await nodes.member('Dr Prior Reader', 'radiologist'), { peers: [p2pAddr(site)] })
})

test('with the PACS down the case goes out at once, and its prior follows once the PACS is up', async () => {
  const prior = await study('PRIORS-DOWN', 41, { bodyPart: 'HEAD', description: 'CT HEAD', date: yearsAgo(1) })
  const current = await study('PRIORS-DOWN', 42, {
    bodyPart: 'HEAD',
    description: 'CT HEAD STROKE',
    date: new Date()
  })
  const caseId = await caseAtReader(current.dir, current.uid)
  const retrying = await waitFor(
    'the site to retry the search',
    async () => {
      const answer = await priorsOf(site, caseId)
      return answer.search.state === 'retrying' ? answer : undefined
    },
    15_000
  )
  assert.is(retrying.search.pacs, `ORTHANC@127.0.0.1:${pacsPort}`)
  assert.ok(retrying.search.attempts >= 1)
  assert.match(retrying.search.lastError ?? '', /ECONNREFUSED/)
  assert.ok(Date.parse(retrying.search.nextAttemptAt ?? '') > Date.now() - 1000)
  assert.equal(retrying.priors, [])
  assert.is((await priorsOf(reader, caseId)).search.state, 'pending')
  for (const [path, status, code] of [
    [`/api/cases/${'0'.repeat(24)}/priors`, 404, 'RADMESH_NOT_FOUND'],
    ['/api/cases/not-a-case/priors', 400, 'RADMESH_BAD_REQUEST']
  ] as const) {
    const answer = await site.api<{ error: { code: string } }>('GET', path)
    assert.equal([answer.status, answer.body.error?.code], [status, code], path)
  }
  assert.ok((await logOf(site.home)).some(line => line['event'] === 'prior-search-retry'))

  // The site goes down hard and comes back: the search resumes from what it kept on disk.
  await site.kill()
  site = await nodes.start(site.home, {
    dicom: site.dicomPort,
    p2pPort: site.p2pPort,
    wsPort: site.wsPort,
    httpPort: site.httpPort,
    extraArgs: ['--pacs', `ORTHANC@127.0.0.1:${pacsPort}`, '--pacs-retry', '1s']
  })
  const resumed = await priorsOf(site, caseId)
  assert.ok(['retrying', 'querying'].includes(resumed.search.state), resumed.search.state)
  assert.ok(resumed.search.attempts >= retrying.search.attempts)

  // With --pacs-retry 1s the search is tried 1 s, then 2, 4, 8, 16 s after each failure: an Orthanc up within
  // ~15 s is asked within ~30 s, then the C-GET and the reader's fetch (a few seconds): 90 s leaves twice that.
  orthanc = await startOrthanc({
    dicomPort: pacsPort,
    // The PACS answers the AE titles it knows; with C-GET it never connects to the node, so no port is asked.
    modalities: { radmesh: ['RADMESH', '127.0.0.1', site.dicomPort] }
  })
  await intoPacs(orthanc, prior.files)
  const arrived = await waitFor(
    'the prior at the reader, fetched',
    async () => {
      const answer = await priorsOf(reader, caseId)
      return answer.priors[0]?.local === true ? answer : undefined
    },
    90_000,
    500
  )
  assert.equal(
    arrived.priors.map(p => [p.studyInstanceUid, p.state, p.instances]),
    [[prior.uid, 'shared', 2]]
  )
  const atSite = await priorsOf(site, caseId)
  assert.is(atSite.search.state, 'done')
  assert.ok(atSite.search.attempts >= 2)
})

test('a case reaches its reader with exactly the two relevant of the patient’s three earlier studies', async () => {
  const server = orthanc as OrthancServer
  const headLastYear = await study('PRIORS-3', 51, { bodyPart: 'HEAD', description: 'CT HEAD', date: yearsAgo(1) })
  // A description the site's routing makes STAT (routed at its first instance): as a prior, still no case.
  const headThreeYears = await study('PRIORS-3', 52, {
    bodyPart: 'HEAD',
    description: 'CT HEAD STROKE PROTOCOL',
    date: yearsAgo(3)
  })
  const chest = await study('PRIORS-3', 53, { bodyPart: 'CHEST', description: 'CT CHEST', date: yearsAgo(2) })
  for (const s of [headLastYear, headThreeYears, chest]) await intoPacs(server, s.files)
  const current = await study('PRIORS-3', 54, { bodyPart: 'HEAD', description: 'CT HEAD STROKE', date: new Date() })

  const caseId = await caseAtReader(current.dir, current.uid)
  const answer = await waitFor(
    'both priors fetched at the reader',
    async () => {
      const priors = await priorsOf(reader, caseId)
      return priors.priors.length === 2 && priors.priors.every(p => p.local) ? priors : undefined
    },
    30_000,
    500
  )
  assert.is(answer.search.state, 'done')
  // Newest first; the chest CT is of another body part.
  assert.equal(
    answer.priors.map(p => p.studyInstanceUid),
    [headLastYear.uid, headThreeYears.uid]
  )
  const first = answer.priors[0]
  assert.is(first?.studyDescription, 'CT HEAD')
  assert.equal(first?.modalities, ['CT'])
  assert.is(first?.bodyPart, 'HEAD')
  assert.match(first?.studyDate ?? '', /^\d{8}$/)
  const availability = await reader.api<{ complete: boolean; instancesLocal: number }>(
    'GET',
    `/api/studies/${headThreeYears.uid}/availability`
  )
  assert.equal([availability.body.complete, availability.body.instancesLocal], [true, 2])

  // The report compares with last year's head CT: the site's FHIR report names it (and not the other prior).
  const compared = `${first?.studyDate.slice(0, 4)}-${first?.studyDate.slice(4, 6)}-${first?.studyDate.slice(6)}`
  assert.is((await reader.api('POST', `/api/worklist/${caseId}/claim`)).status, 200)
  const sections = {
    comparison: `Compared with CT HEAD of ${compared}.`,
    findings: 'Stable.',
    impression: 'No change.'
  }
  assert.is((await reader.api('PUT', `/api/cases/${caseId}/report`, { sections })).status, 200)
  assert.is((await reader.api('POST', `/api/cases/${caseId}/report/sign`, { status: 'FINAL' })).status, 200)
  const fhir = await waitFor(
    'the FINAL report as FHIR at the site',
    async () => {
      const answer = await site.api<{ extension?: Array<{ extension: Array<Record<string, unknown>> }> }>(
        'GET',
        `/api/cases/${caseId}/report/fhir`
      )
      return answer.status === 200 ? answer.body : undefined
    },
    20_000
  )
  const references = (fhir.extension ?? []).map(e => {
    const reference = e.extension.find(x => x['url'] === 'reference')?.['valueReference']
    return (reference as { identifier?: { value?: string } } | undefined)?.identifier?.value
  })
  assert.equal(references, [`urn:oid:${headLastYear.uid}`])

  // The priors the site retrieved are no cases of their own: each became stable and was passed over (three:
  // this test's two and the first test's one), and the site's worklist holds the two cases only.
  await waitFor(
    'the site to pass over the three priors as they became stable',
    async () => (await logOf(site.home)).filter(line => line['event'] === 'prior-not-a-case').length >= 3,
    15_000
  )
  const cases = (await worklist(site)).map(e => e.studyInstanceUid)
  assert.is(cases.length, 2)
  assert.ok(cases.includes(current.uid))
  for (const prior of [headLastYear, headThreeYears]) assert.not.ok(cases.includes(prior.uid))

  // Each query of the PACS about a patient is in the site's audit trail (110112 Query), failed ones too.
  const audit = (await fs.readFile(join(site.home, 'audit.log'), 'utf8'))
    .split('\n')
    .filter(line => line.includes('for the priors of case'))
    .map(line => JSON.parse(line) as { eventCode: string; outcome: number; detail: string; study: string })
  assert.ok(audit.some(r => r.eventCode === '110112' && r.outcome === 0 && r.study === current.uid))
  assert.ok(audit.some(r => r.eventCode === '110112' && r.outcome === 8 && /ECONNREFUSED/.test(r.detail)))
})

test('a site that names its PACS in routing.json, retrieving by C-MOVE, gives its case the newest prior only', async () => {
  const server = orthanc as OrthancServer
  const home = await nodes.member('Priors Move Hospital', 'site')
  await fs.writeFile(
    join(home, 'routing.json'),
    JSON.stringify({ pacs: `ORTHANC@127.0.0.1:${pacsPort}`, priors: { retrieve: 'move', max: 1 } })
  )
  const moving = await nodes.start(home, { dicom: true, extraArgs: ['--ae', 'MOVESITE'], peers: [p2pAddr(reader)] })
  // A C-MOVE goes to an AE title the PACS knows at an address: this site's DICOM port.
  const registered = await fetch(`${server.http}/modalities/movesite`, {
    method: 'PUT',
    body: JSON.stringify({ AET: 'MOVESITE', Host: '127.0.0.1', Port: moving.dicomPort })
  })
  assert.ok(registered.ok, `Orthanc PUT /modalities: ${registered.status}`)
  const older = await study('PRIORS-MOVE', 61, { bodyPart: 'HEAD', description: 'CT HEAD', date: yearsAgo(2) })
  const newer = await study('PRIORS-MOVE', 62, { bodyPart: 'HEAD', description: 'CT HEAD', date: yearsAgo(1) })
  for (const s of [older, newer]) await intoPacs(server, s.files)
  const current = await study('PRIORS-MOVE', 63, { bodyPart: 'HEAD', description: 'CT HEAD STROKE', date: new Date() })

  assert.is((await storescu(moving.dicomPort, 'MOVESITE', ['+sd', '+r', current.dir])).code, 0)
  const entry = await waitFor(
    "the case on the reader's worklist",
    async () => (await worklist(reader)).find(e => e.studyInstanceUid === current.uid),
    20_000
  )
  const answer = await waitFor(
    'the prior fetched at the reader',
    async () => {
      const priors = await priorsOf(reader, entry?.caseId as string)
      return priors.priors.length > 0 && priors.priors.every(p => p.local) ? priors : undefined
    },
    30_000,
    500
  )
  assert.equal(
    answer.priors.map(p => p.studyInstanceUid),
    [newer.uid]
  )
  const atSite = await priorsOf(moving, entry?.caseId as string)
  assert.equal(
    [atSite.search.state, atSite.search.pacs, atSite.priors[0]?.state],
    ['done', `ORTHANC@127.0.0.1:${pacsPort}`, 'shared']
  )
  // It came in on the site's DICOM port, from the PACS's AE title.
  assert.ok((await logOf(moving.home)).some(line => line['event'] === 'prior-retrieved' && line['completed'] === 2))
  assert.not.ok((await worklist(moving)).some(e => e.studyInstanceUid === newer.uid))
})

test.run()
