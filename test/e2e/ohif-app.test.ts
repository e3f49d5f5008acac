/**
 * The real OHIF Viewer v3 (`@ohif/app` 3.13.2, its npm build) in Chromium against a real node, deployed as
 * docs/OHIF.md says: OHIF's files, the app-config.js of docs/OHIF.md, and the node's /dicom-web and /signin
 * on one origin (scripts/lib/ohif.ts), the browser signed in by a one-time link. The study list shows the study,
 * the viewer draws the CT, and no request is refused or fails. The package is fetched once with npm into
 * node_modules/.cache; without it (no registry) the test fails.
 */
import type { Browser, Page } from 'playwright-core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import { launchBrowser, screenshot } from '../../scripts/lib/browser.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { appConfigFromDocs, type OhifServer, ohifDist, serveOhif } from '../../scripts/lib/ohif.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

/** OHIF's first load parses about 20 MB of scripts: slow on a busy machine. */
const LOAD_TIMEOUT_MS = 120_000
const PATIENT = 'OHIF^EndToEnd'
const PATIENT_SHOWN = 'OHIF, EndToEnd'
const DESCRIPTION = 'OHIF app check'

let node: StartedNode
let ohif: OhifServer
let browser: Browser
let page: Page
let studyUid = ''
const failed: string[] = []
const refused: string[] = []
const errors: string[] = []
/** Why the setup failed: uvu ends a run quietly when a `before` hook throws, so each test throws it instead. */
let setupError: unknown

test.before(async () => {
  await setUp().catch((error: unknown) => {
    setupError = error
  })
})
test.before.each(() => {
  if (setupError !== undefined) throw setupError
})

async function setUp(): Promise<void> {
  const [dist, appConfig] = await Promise.all([ohifDist(), appConfigFromDocs()])
  const consortium = await createScratchConsortium('OHIFAPP')
  node = await startNode(await consortium.member('OHIF App Site', 'site'), { dicom: true })
  const dir = await tempDir()
  const study = await generateCt({
    out: dir,
    slices: 20,
    rows: 128,
    columns: 128,
    seed: 17,
    patientName: PATIENT,
    studyDescription: DESCRIPTION
  })
  studyUid = study.studyInstanceUid
  const stored = await storescu(node.dicomPort, 'RADMESH', ['+sd', '+r', dir])
  assert.is(stored.code, 0, stored.stderr)
  ohif = await serveOhif({ dist, node: node.http, appConfig })
  browser = await launchBrowser()
  page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage()
  page.setDefaultTimeout(LOAD_TIMEOUT_MS)
  page.on('requestfailed', request => {
    failed.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`)
  })
  page.on('response', response => {
    if (response.status() >= 400) refused.push(`${response.status()} ${response.request().method()} ${response.url()}`)
  })
  page.on('pageerror', error => {
    errors.push(error.message)
  })
}

test.after(async () => {
  await browser?.close()
  await ohif?.close()
  await node?.kill()
})

test('signing in through the one origin sets the session cookie, and the study list shows the study', async () => {
  // As docs/OHIF.md says: a one-time link from the node (what `radmesh viewer` prints), opened on OHIF's origin.
  const link = await node.api<{ url: string }>('POST', '/api/signin-links')
  assert.is(link.status, 200)
  await page.goto(`${ohif.url}${new URL(link.body.url).pathname}`)
  const cookies = await page.context().cookies(ohif.url)
  const session = cookies.find(c => c.name === 'radmesh_session')
  assert.ok(session !== undefined, 'the session cookie is set on the proxy origin')
  assert.is(session.httpOnly, true)
  assert.is(session.sameSite, 'Strict')
  assert.is(session.path, '/')
  assert.is(new URL(page.url()).pathname, '/')
  await page.getByText(DESCRIPTION).first().waitFor()
  // OHIF writes a person's name as "Family, Given".
  await page.getByText(PATIENT_SHOWN).first().waitFor()
  await screenshot(page, 'ohif-study-list')
  const searches = ohif.forwarded.filter(r => r.url.startsWith('/dicom-web/studies?'))
  assert.ok(searches.length > 0, 'the study list searched the node')
  assert.ok(
    searches.every(r => r.status === 200),
    JSON.stringify(searches)
  )
})

test("the viewer draws the CT from the node's frames", async () => {
  await page.goto(`${ohif.url}/viewer?StudyInstanceUIDs=${studyUid}`)
  const canvas = page.locator('canvas.cornerstone-canvas').first()
  await canvas.waitFor()
  // Cornerstone draws into a 2D canvas per viewport (from its WebGL canvas, or on the CPU without one).
  const drawn = await waitForImage(page)
  await screenshot(page, 'ohif-viewer')
  assert.ok(drawn.distinct >= 16, `the image has ${drawn.distinct} grey levels`)
  // The head fills a few per cent of the viewport: OHIF fits the 128 x 128 slice in a viewport of about 950 x 740.
  assert.ok(drawn.lit > 0.01 && drawn.lit < 0.95, `${(drawn.lit * 100).toFixed(1)} % of its pixels are lit`)
  const frames = ohif.forwarded.filter(r => /\/frames\/\d+$/.test(r.url))
  assert.ok(frames.length > 0, 'frames came from the node')
  const metadata = ohif.forwarded.filter(r => r.url.endsWith('/metadata'))
  assert.ok(metadata.length > 0, 'series metadata came from the node')
})

test('no request was refused or failed, and OHIF threw nothing', async () => {
  // OHIF goes on fetching the study's other frames after the first is drawn.
  await waitFor(
    'every request forwarded to the node to be answered',
    () => ohif.forwarded.every(r => r.status !== 0),
    LOAD_TIMEOUT_MS
  )
  const notOk = ohif.forwarded.filter(r => r.status >= 400 || r.status === 0)
  assert.equal(notOk, [], 'every request forwarded to the node was answered below 400')
  assert.equal(refused, [], 'no response in the page had a status of 400 or more')
  assert.equal(failed, [], 'no request of the page failed')
  assert.equal(errors, [], 'no uncaught error in the page')
})

test('the session cookie is what signs OHIF in: the proxy adds no credentials of its own', async () => {
  assert.is((await fetch(`${ohif.url}/dicom-web/studies`)).status, 401)
  const fromPage = await page.evaluate(async () => (await fetch('/dicom-web/studies')).status)
  assert.is(fromPage, 200)
})

/** Waits until the viewport's canvas holds an image: more than a few grey levels. */
async function waitForImage(page: Page): Promise<{ distinct: number; lit: number }> {
  const handle = await page.waitForFunction(
    () => {
      const canvas = document.querySelector<HTMLCanvasElement>('canvas.cornerstone-canvas')
      const context = canvas?.getContext('2d')
      if (canvas == null || context == null || canvas.width === 0 || canvas.height === 0) return false
      const { data } = context.getImageData(0, 0, canvas.width, canvas.height)
      const levels = new Set<number>()
      let lit = 0
      for (let i = 0; i < data.length; i += 4) {
        const grey = data[i] ?? 0
        levels.add(grey)
        if (grey > 16) lit++
      }
      return levels.size >= 16 ? { distinct: levels.size, lit: lit / (data.length / 4) } : false
    },
    undefined,
    { timeout: LOAD_TIMEOUT_MS, polling: 500 }
  )
  const drawn = await handle.jsonValue()
  if (drawn === false) throw new Error('no image drawn')
  return drawn
}

test.run()
