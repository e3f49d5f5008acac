/**
 * Priors in the viewer, in a real headless Chromium against real nodes in separate processes and a real Orthanc
 * as the hospital's PACS. The PACS is down when the current CT reaches the site (DCMTK storescu): the site's case
 * page says "PACS unreachable, retrying at HH:MM:SS (…)", the reader's waits for the site. The PACS comes up with
 * the patient's earlier CT HEAD; the site's next attempt finds it and shares it, and both lists show it without a
 * reload. On the reader's (ROUTINE, unclaimed) case, Fetch brings it; then, claimed: it opens beside the current
 * study; scrolling either moves the other (by relative index: two visits have two Frames of Reference);
 * window/level is shared; L unlinks (the indicator says so, and the prior stays where it was) and links again; the
 * COMPARISON offer puts "Compared with CT HEAD of YYYY-MM-DD." (the prior's date) into the co-edited report, read
 * back from the node's report route.
 */
import { promises as fs } from 'node:fs'
import type { Browser, Page } from 'playwright-core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { ReportView } from '../../protocol/api/index.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { launchBrowser, pageErrors, screenshot, signedInPage } from '../../scripts/lib/browser.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { connected, knowsRadiologists, p2pAddr } from '../../scripts/lib/node-process.ts'
import { type OrthancServer, startOrthanc } from '../../scripts/lib/orthanc.ts'
import { freePort } from '../../scripts/lib/ports.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { nodesOfTests } from '../helpers/nodes.ts'

const nodes = nodesOfTests(test, 'PriorsViewer', { extraArgs: ['--stable-after', '1s'] })
let browser: Browser
let pacs: OrthancServer | undefined

test.before(async () => {
  browser = await launchBrowser()
})

test.after(async () => {
  await browser?.close()
  await pacs?.stop()
})

const PATIENT = { patientName: 'PRIOR^CANARY', patientId: 'PV0001', issuerOfPatientId: 'HILLTOP' }
/** Two years ago, at 09:00 UTC (the date the files say), within the default prior rule's 5 years. */
const PRIOR_DATE = new Date(Math.floor(Date.now() / 86_400_000 - 730) * 86_400_000 + 9 * 3_600_000)
const SENTENCE = `Compared with CT HEAD of ${PRIOR_DATE.toISOString().slice(0, 10)}.`

interface Indexes {
  current: number
  prior: number
  linked: boolean
  method: string | undefined
  reason: string | undefined
  windows: Array<{ center: number; width: number } | undefined>
}

const indexes = async (page: Page): Promise<Indexes> =>
  await page.evaluate(() => {
    const radmesh = window.radmesh
    const comparison = radmesh?.comparison
    if (radmesh === undefined || comparison === undefined) throw new Error('no prior beside the current study')
    return {
      current: radmesh.viewport.state().index,
      prior: comparison.viewport.state().index,
      linked: comparison.state().linked,
      method: comparison.state().method,
      reason: comparison.state().reason,
      windows: [radmesh.viewport.state().window, comparison.viewport.state().window]
    }
  })

/** Waits until the viewports show these images (0-based). */
async function showing(page: Page, current: number, prior: number): Promise<void> {
  await page
    .waitForFunction(
      ([c, p]) =>
        window.radmesh?.viewport.state().index === c && window.radmesh?.comparison?.viewport.state().index === p,
      [current, prior] as const,
      { timeout: 10_000 }
    )
    .catch(async () => {
      throw new Error(`expected current ${current} and prior ${prior}, shown: ${JSON.stringify(await indexes(page))}`)
    })
}

test("a reader's case with a prior from the PACS: listed, side by side, linked, unlinked, offered for COMPARISON", async () => {
  const pacsPort = await freePort()
  const site = await nodes.start(await nodes.member('Hilltop Hospital', 'site'), {
    dicom: true,
    extraArgs: ['--pacs', `ORTHANC@127.0.0.1:${pacsPort}`]
  })
  const reader = await nodes.start(
    await nodes.member('Dr Alice Neuro', 'radiologist', [], ['--subspecialty', 'neuro']),
    { peers: [p2pAddr(site)] }
  )
  await connected(site, reader)
  await knowsRadiologists(site, 1, 15_000)
  // Both signed in while the studies are made.
  const [page, sitePage] = await Promise.all([signedInPage(browser, reader), signedInPage(browser, site)])

  // The prior will be in the PACS only: 6 slices where the current study has 12; each has a soft tissue and a bone
  // series.
  const priorDir = await tempDir()
  const prior = await generateCt({
    out: priorDir,
    slices: 6,
    series: 2,
    rows: 64,
    columns: 64,
    seed: 301,
    ...PATIENT,
    studyDescription: 'CT HEAD',
    bodyPart: 'HEAD',
    studyDate: PRIOR_DATE
  })
  const currentDir = await tempDir()
  const current = await generateCt({
    out: currentDir,
    slices: 12,
    series: 2,
    rows: 64,
    columns: 64,
    seed: 302,
    ...PATIENT,
    // Not a stroke: a ROUTINE case, whose priors the reader's node fetches only once it is claimed.
    studyDescription: 'CT HEAD FOLLOW-UP',
    bodyPart: 'HEAD',
    studyDate: new Date()
  })

  // The PACS is down when the case goes out: the site's case page says so, with the time of the next attempt.
  const intoSite = await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', currentDir])
  assert.is(intoSite.code, 0, intoSite.stderr)
  const caseId = await waitFor(
    "the case on the reader's worklist",
    async () => (await reader.api<Array<{ caseId: string }>>('GET', '/api/worklist')).body[0]?.caseId,
    20_000
  )
  await sitePage.goto(`${new URL(sitePage.url()).origin}/#/case/${caseId}`)
  const siteSearch = sitePage.locator('#priors-search[data-state="retrying"]')
  await siteSearch.waitFor({ timeout: 15_000 })
  assert.match(
    (await siteSearch.textContent()) ?? '',
    /^PACS unreachable, retrying at \d\d:\d\d:\d\d \(\d+ attempts?: .*ECONNREFUSED.*\)$/
  )
  const caseUrl = `${new URL(page.url()).origin}/#/case/${caseId}`
  await page.goto(caseUrl)
  await page.locator('#priors-search[data-state="pending"]').waitFor({ timeout: 15_000 })
  assert.is(await page.locator('#priors-search').textContent(), "Waiting for the site's search of its PACS…")

  // The PACS comes up with the prior (it answers the AE titles it knows; the site retrieves by C-GET, so Orthanc
  // never connects to it). The site's next attempt finds it; both pages show it without a reload.
  const server = await startOrthanc({
    dicomPort: pacsPort,
    modalities: { radmesh: ['RADMESH', '127.0.0.1', site.dicomPort] }
  })
  pacs = server
  for (const file of prior.files) await server.request('POST', '/instances', await fs.readFile(file))
  const entry = `#priors-list li.prior[data-prior="${prior.studyInstanceUid}"]`
  // The site retries 5, 10, then 20 s apart: its next attempt after the PACS is up comes within 20 s (40 s if the
  // PACS took longer to start than the gap before it), and the reader's list asks every 2 s.
  await page.locator(`${entry}[data-state="shared"]`).waitFor({ timeout: 50_000 })
  await sitePage.locator(`${entry}[data-state="local"]`).waitFor({ timeout: 15_000 })
  assert.is(await sitePage.locator('#priors-search').textContent(), `1 prior from ORTHANC@127.0.0.1:${pacsPort}`)
  assert.equal(pageErrors(sitePage), [])

  // The reader's case is not claimed yet: the prior is shared, not here; Fetch brings it, and the list shows it
  // local without a reload.
  assert.match((await page.locator(entry).textContent()) ?? '', 'shared, arriving on this node')
  assert.is(await page.locator(`${entry} button.open-prior`).count(), 0, 'nothing to open yet')
  await page.locator(`${entry} button.fetch-prior`).click()
  const item = page.locator(`${entry}[data-state="local"]`)
  await item.waitFor({ timeout: 30_000 })
  const listed = (await item.textContent()) ?? ''
  for (const part of [PRIOR_DATE.toISOString().slice(0, 10), 'CT HEAD', 'local']) assert.match(listed, part)
  assert.match((await page.locator('#priors-search').textContent()) ?? '', "1 prior from the site's PACS")

  // Claimed, the case's report can be written here; the page is opened again to bind to it.
  assert.is((await reader.api('POST', `/api/worklist/${caseId}/claim`)).status, 200)
  await page.goto(`${new URL(page.url()).origin}/#/`)
  await page.goto(caseUrl)
  await item.waitFor({ timeout: 15_000 })

  // Side by side.
  await page.waitForSelector('#viewport[data-drawn]', { timeout: 15_000 })
  await item.locator('button.open-prior').click()
  await page.waitForSelector('#prior-viewport[data-drawn]', { timeout: 15_000 })
  assert.match(
    (await page.locator('#prior-title').textContent()) ?? '',
    `${PRIOR_DATE.toISOString().slice(0, 10)} CT HEAD`
  )
  assert.is(
    await page.locator('#prior-series').inputValue(),
    prior.series[0]?.seriesInstanceUid,
    "the prior's series that goes with the current one: the soft tissue series"
  )
  const link = page.locator('#link-state')
  await page.waitForSelector('#link-state[data-method="index"]', { timeout: 10_000 })
  assert.is(await link.getAttribute('data-linked'), 'true')
  assert.match((await link.textContent()) ?? '', 'Linked by index')
  // Both stacks were read as placed and axial (from WADO-RS series metadata); only their frames differ.
  const linked = await indexes(page)
  assert.equal(
    [linked.method, linked.reason],
    ['index', 'different frames of reference'],
    'two visits, two frames of reference: linked by relative index'
  )

  // Scrolling the current study moves the prior: 12 slices against 6, first to first and last to last. The
  // current study is fetched from the claim on, so its stack grows while the page is open: both whole first.
  await page.waitForFunction(
    () => window.radmesh?.viewport.state().count === 12 && window.radmesh?.comparison?.viewport.state().count === 6,
    undefined,
    { timeout: 30_000 }
  )
  await page.locator('#viewport').focus()
  await page.keyboard.press('End')
  await showing(page, 11, 5)
  await page.keyboard.press('Home')
  await showing(page, 0, 0)
  for (let i = 0; i < 6; i++) await page.keyboard.press('ArrowDown')
  await showing(page, 6, 3) // 6 / 11 of the way: 2.7 of 5
  // And scrolling the prior moves the current study.
  await page.locator('#prior-viewport').focus()
  await page.keyboard.press('ArrowDown')
  await showing(page, 9, 4) // 4 / 5 of the way: 8.8 of 11

  // Window/level is shared: a preset in either applies to both.
  await page.keyboard.press('4') // lung, in the prior
  await page.waitForFunction(() => window.radmesh?.viewport.state().window?.width === 1500, undefined, {
    timeout: 5_000
  })
  assert.equal((await indexes(page)).windows, [
    { center: -600, width: 1500 },
    { center: -600, width: 1500 }
  ])
  await screenshot(page, 'priors-side-by-side')

  // L unlinks: the indicator says so, and the prior stays where it is while the current study moves.
  await page.locator('#viewport').focus()
  await page.keyboard.press('l')
  await page.waitForSelector('#link-state[data-linked="false"]', { timeout: 5_000 })
  assert.match((await link.textContent()) ?? '', 'Unlinked')
  await page.keyboard.press('Home')
  await page.keyboard.press('1') // brain, in the current study only
  await page.waitForFunction(() => window.radmesh?.viewport.state().index === 0, undefined, { timeout: 5_000 })
  await page.waitForTimeout(500) // what a linked prior would have needed to follow (it follows within one frame)
  const unlinked = await indexes(page)
  assert.equal([unlinked.current, unlinked.prior, unlinked.linked], [0, 4, false])
  assert.equal(unlinked.windows, [
    { center: 40, width: 80 },
    { center: -600, width: 1500 }
  ])
  // L again links them: the prior comes to the current slice and window.
  await page.keyboard.press('L')
  await showing(page, 0, 0)
  assert.equal((await indexes(page)).windows[1], { center: 40, width: 80 })

  // Another series of the current study: the prior shows its series of that kind, linked again from the start.
  await page.locator(`button.thumb[data-series="${current.series[1]?.seriesInstanceUid}"]`).click()
  await page.waitForFunction(
    uid => (document.querySelector('#prior-series') as HTMLSelectElement | null)?.value === uid,
    prior.series[1]?.seriesInstanceUid,
    { timeout: 10_000 }
  )
  await page.waitForFunction(
    () => /PRIOR CT AXIAL BONE/.test(document.querySelector('#prior-viewport-overlay-tl')?.textContent ?? ''),
    undefined,
    { timeout: 10_000 }
  )
  await page.locator('#viewport').focus()
  await page.keyboard.press('End')
  await showing(page, 11, 5)

  // The COMPARISON section offers the prior; one click puts the sentence into the co-edited report, and another
  // client of the report (a second window) sees it arrive as it would a co-author's typing.
  const other = await signedInPage(browser, reader)
  await other.goto(caseUrl)
  await other.waitForSelector('#section-comparison:not([readonly])', { timeout: 15_000 })
  const offer = page.locator(`#comparison-offers button[data-key="${prior.studyInstanceUid}"]`)
  await page.waitForSelector(`#comparison-offers button[data-key="${prior.studyInstanceUid}"]:not([disabled])`, {
    timeout: 10_000
  })
  assert.match((await offer.textContent()) ?? '', SENTENCE)
  await offer.click()
  await waitFor(
    "the sentence in the reader's node's report",
    async () =>
      (await reader.api<ReportView>('GET', `/api/cases/${caseId}/report`)).body.sections.comparison === SENTENCE,
    10_000
  )
  assert.is(await page.locator('#section-comparison').inputValue(), SENTENCE)
  await page.waitForSelector(`#comparison-offers button.added[data-key="${prior.studyInstanceUid}"]`, {
    timeout: 5_000
  })
  await other.waitForFunction(
    sentence => (document.querySelector('#section-comparison') as HTMLTextAreaElement | null)?.value === sentence,
    SENTENCE,
    { timeout: 10_000 }
  )
  await other.waitForSelector(`#comparison-offers button.added[data-key="${prior.studyInstanceUid}"]`, {
    timeout: 5_000
  })
  assert.equal(pageErrors(other), [])
  await screenshot(page, 'priors-comparison')
  assert.equal(pageErrors(page), [])
})

test.run()
