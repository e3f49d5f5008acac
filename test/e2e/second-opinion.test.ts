/**
 * A de-identified second opinion, there and back, in separate processes over real libp2p: the site's stroke CT
 * (a canary patient) is routed to its neuro reader; `radmesh share --deidentify` sends a copy to an msk consultant,
 * whose node gets a second-opinion case for the copy alone, with nothing of the patient in what it sees; the
 * consultant signs a FINAL report on it, and the site shows that report on the original case, beside (never in
 * place of) the primary reader's report. The primary reader never gets the copy's case, and the consultant never
 * gets the original's.
 */
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { test } from 'uvu'
import { nodesOfTests } from '../helpers/nodes.ts'
import * as assert from 'uvu/assert'
import type { SecondOpinion } from '../../protocol/api/second-opinions.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { launchBrowser, pageErrors, screenshot, signedInPage } from '../../scripts/lib/browser.ts'
import { radmesh } from '../../scripts/lib/cli.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { connected, knowsRadiologists, p2pAddr } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { type Entry, report, worklist } from './workflow-helpers.ts'

const CANARY_NAME = 'CANARY^ZEBEDEE'
const CANARY_ID = 'CANARY-4711'
const OPINION = 'Second opinion: no haemorrhage; agree with acute right MCA infarct.'

/** Nodes that settle a study after 1 s. */
const nodes = nodesOfTests(test, 'Second Opinion', { extraArgs: ['--stable-after', '1s'] })
const { start } = nodes
let browser: Browser | undefined

test.after(async () => {
  await browser?.close()
})

test('a second opinion on a de-identified copy: only the consultant reads it, and the report comes back to the original case', async () => {
  const site = await start(await nodes.member('Opinion Site', 'site'), { dicom: true })
  const primary = await start(await nodes.member('Dr Primary Neuro', 'radiologist', [], ['--subspecialty', 'neuro']), {
    peers: [p2pAddr(site)]
  })
  const consultant = await start(
    await nodes.member('Dr Outside Consultant', 'radiologist', [], ['--subspecialty', 'msk']),
    { peers: [p2pAddr(site)] }
  )
  await connected(site, primary)
  await connected(site, consultant)
  await knowsRadiologists(site, 2, 15_000)

  const dir = await tempDir()
  const study = await generateCt({
    out: join(dir, 'ct'),
    slices: 4,
    series: 1,
    rows: 32,
    columns: 32,
    seed: 23,
    studyDescription: 'CT HEAD STROKE PROTOCOL',
    bodyPart: 'HEAD',
    patientName: CANARY_NAME,
    patientId: CANARY_ID
  })
  const sent = await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', join(dir, 'ct')])
  assert.is(sent.code, 0, sent.stderr)
  const original = (await waitFor(
    "the original case on the primary reader's worklist",
    async () => (await worklist(primary)).find(e => e.studyInstanceUid === study.studyInstanceUid),
    20_000
  )) as Entry & { purpose: string }
  assert.is(original.purpose, 'reading')

  const shared = await radmesh([
    'share',
    '--home',
    site.home,
    study.studyInstanceUid,
    '--to',
    consultant.peerId,
    '--deidentify',
    '--retain-patient-characteristics'
  ])
  assert.is(shared.code, 0, shared.stderr)
  const copyUid = /^de-identified copy of [0-9.]+: ([0-9.]+)$/m.exec(shared.stdout)?.[1] as string
  assert.ok(copyUid !== undefined, shared.stdout)

  // The consultant's worklist: the copy's second-opinion case, and nothing else; no trace of the patient.
  const copyCase = (await waitFor(
    "the copy's case on the consultant's worklist",
    async () => (await worklist(consultant)).find(e => e.studyInstanceUid === copyUid),
    20_000
  )) as Entry & { purpose: string; readers: string[] }
  assert.is(copyCase.purpose, 'second-opinion')
  assert.equal(copyCase.readers, [consultant.peerId], 'the copy is for the consultant only')
  const consultantSees = JSON.stringify(await worklist(consultant))
  for (const canary of ['CANARY', CANARY_ID, study.studyInstanceUid, original.caseId]) {
    assert.not.ok(consultantSees.includes(canary), `${canary} is on the consultant's worklist`)
  }
  const originalThere = await consultant.api('GET', `/api/cases/${original.caseId}/report`)
  assert.is(originalThere.status, 404, "the consultant knows nothing of the original's case")

  assert.is((await consultant.api('POST', `/api/worklist/${copyCase.caseId}/claim`)).status, 200)
  const edited = await consultant.api('PUT', `/api/cases/${copyCase.caseId}/report`, {
    sections: { findings: 'No intracranial haemorrhage.', impression: OPINION }
  })
  assert.is(edited.status, 200, JSON.stringify(edited.body))
  const signed = await consultant.api<{ status: string }>('POST', `/api/cases/${copyCase.caseId}/report/sign`, {
    status: 'FINAL'
  })
  assert.is(signed.status, 200, JSON.stringify(signed.body))
  assert.is(signed.body.status, 'FINAL')

  // A critical finding on the copy: the site's list names the patient's case, which only the site can know.
  const flagged = await consultant.api<{ id: string; originalCaseId?: string }>(
    'POST',
    `/api/cases/${copyCase.caseId}/critical`,
    { level: 'urgent', text: 'Small subdural collection the primary read did not mention.' }
  )
  assert.is(flagged.status, 200, JSON.stringify(flagged.body))
  assert.is(flagged.body.originalCaseId, undefined, "the consultant's node knows no original")
  const atSite = await waitFor(
    'the critical result at the site',
    async () =>
      (await site.api<Array<{ id: string; originalCaseId?: string }>>('GET', '/api/critical')).body.find(
        c => c.id === flagged.body.id
      ),
    15_000
  )
  assert.is(atSite.originalCaseId, original.caseId)

  // The site joins the copy's FINAL report to the original case, by the sealed mapping.
  const [opinion] = (await waitFor(
    'the second opinion on the original case at the site',
    async () => {
      const { status, body } = await site.api<SecondOpinion[]>('GET', `/api/cases/${original.caseId}/second-opinions`)
      assert.is(status, 200, JSON.stringify(body))
      return body[0]?.report === null || body[0] === undefined ? undefined : body
    },
    20_000
  )) as SecondOpinion[]
  assert.is(opinion?.copyCaseId, copyCase.caseId)
  assert.is(opinion?.copyStudyInstanceUid, copyUid)
  assert.is(opinion?.status, 'COMPLETED')
  assert.equal(opinion?.sharedWith, [{ peerId: consultant.peerId, name: 'Dr Outside Consultant' }])
  assert.is(opinion?.report?.status, 'FINAL')
  assert.is(opinion?.report?.sections.impression, OPINION)
  assert.is(opinion?.report?.signedBy, consultant.peerId)
  assert.is(opinion?.report?.signedByName, 'Dr Outside Consultant')
  // The site's case page shows it beside the case's own report, in a real Chromium.
  browser = await launchBrowser()
  const page = await signedInPage(browser, site)
  await page.goto(`${new URL(page.url()).origin}/#/case/${original.caseId}`)
  const shown = page.locator(`#second-opinions li[data-copy-case="${copyCase.caseId}"][data-state="FINAL"]`)
  await shown.waitFor({ timeout: 15_000 })
  const text = (await shown.textContent()) ?? ''
  for (const part of ['Dr Outside Consultant', 'FINAL by Dr Outside Consultant', OPINION]) assert.match(text, part)
  assert.equal(pageErrors(page), [])
  await shown.scrollIntoViewIfNeeded()
  await screenshot(page, 'second-opinion')
  // The consultant's worklist page shows the copy's case, marked, though it is not of the consultant's subspecialty.
  const consultantPage = await signedInPage(browser, consultant)
  const row = consultantPage.locator(`tr[data-case="${copyCase.caseId}"]`)
  await row.waitFor({ timeout: 15_000 })
  assert.match((await row.textContent()) ?? '', 'second opinion')
  assert.is(await consultantPage.locator(`tr[data-case="${original.caseId}"]`).count(), 0)
  // The primary reader's report is untouched.
  assert.is((await report(site, original.caseId)).status, 'DRAFT')
  const audit = await radmesh(['audit', '--home', site.home])
  assert.match(audit.stdout, `second opinion FINAL by Dr Outside Consultant on de-identified copy ${copyUid}`)

  // No other reader got the copy's case: the primary reader's node holds neither it nor its report.
  await waitFor(
    'the primary reader to see the original still open',
    async () => (await worklist(primary)).some(e => e.caseId === original.caseId),
    5_000
  )
  assert.not.ok(
    (await worklist(primary)).some(e => e.studyInstanceUid === copyUid || e.caseId === copyCase.caseId),
    'the primary reader was routed the copy'
  )
  assert.is((await primary.api('GET', `/api/cases/${copyCase.caseId}/report`)).status, 404)
  assert.is((await primary.api('GET', `/api/studies/${copyUid}/availability`)).status, 404)
  // Only the site answers the way back.
  assert.equal((await primary.api('GET', `/api/cases/${original.caseId}/second-opinions`)).body, [])
})

test.run()
