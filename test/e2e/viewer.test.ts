/**
 * The reading viewer in a real headless Chromium (Debian's, driven by playwright-core), against real nodes
 * in separate processes, with DCMTK as the modality and as the reference renderer:
 * worklist and claim from the page; a CT drawn with the right pixels (dcmj2pnm at the same window, within
 * 1 grey level) and window/level changes; one image of each compressed syntax of the pydicom corpus; two
 * pages on two nodes writing one section live, then FINAL read-only on both; idle logoff. Screenshots of the
 * worklist, the viewer and the report are saved in test-artifacts/screenshots.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { launchBrowser, pageErrors, screenshot, signedInPage } from '../../scripts/lib/browser.ts'
import { createScratchConsortium, type ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { runTool } from '../../scripts/lib/dcmtk.ts'
import { PYDICOM_CORPUS } from '../../scripts/lib/pydicom-corpus.ts'
import { replaceSameLength } from '../helpers/dicom.ts'
import { p2pAddr, type StartedNode } from '../../scripts/lib/node-process.ts'
import { radmeshOk } from '../../scripts/lib/cli.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import {
  canvasShowsImage,
  dcmtkRendering,
  maxDifference,
  renderedFrame,
  start,
  startViewerNetwork
} from './viewer-helpers.ts'

let consortium: ScratchConsortium
let browser: Browser
const started: StartedNode[] = []
let site: StartedNode
let alice: StartedNode
let bob: StartedNode
let caseId = ''
let ctFirstFile = ''
let alicePage: Page

test.before(async () => {
  consortium = await createScratchConsortium('Viewer')
  browser = await launchBrowser()
  ;({ site, alice, bob, caseId, ctFirstFile } = await startViewerNetwork(consortium, started))
})

test.after(async () => {
  await browser?.close()
  await Promise.all(
    started.map(async node => {
      await node.kill()
    })
  )
})

test("the worklist page lists the site's case, live; Claim on the page moves it to IN PROGRESS", async () => {
  alicePage = await signedInPage(browser, alice)
  const row = alicePage.locator(`tr[data-case="${caseId}"]`)
  await row.waitFor({ timeout: 10_000 })
  assert.match((await row.textContent()) ?? '', 'STAT')
  assert.match((await row.textContent()) ?? '', 'SCHEDULED')
  assert.match((await alicePage.locator('#duty').textContent()) ?? '', 'On duty')
  await screenshot(alicePage, 'worklist')
  await row.locator('button.claim').click()
  await alicePage.locator(`tr[data-case="${caseId}"][data-status="IN PROGRESS"]`).waitFor({ timeout: 10_000 })
  const onNode = (
    await alice.api<Array<{ caseId: string; status: string; claimedBy: string }>>('GET', '/api/worklist')
  ).body.find(c => c.caseId === caseId)
  assert.equal([onNode?.status, onNode?.claimedBy], ['IN PROGRESS', alice.peerId])
  await waitFor(
    "Bob's worklist page to show the claim without a reload",
    async () => {
      const bobPage = await signedInPage(browser, bob)
      try {
        await bobPage.locator(`tr[data-case="${caseId}"][data-status="IN PROGRESS"]`).waitFor({ timeout: 5_000 })
        return true
      } finally {
        await bobPage.context().close()
      }
    },
    15_000
  )
  assert.equal(pageErrors(alicePage), [])
})

test(
  'opening the CT draws it: the pixels match dcmj2pnm at the same window ' +
    'within 1 grey level, and window/level changes them as expected',
  async () => {
    await alicePage.locator(`tr[data-case="${caseId}"] a.open`).click()
    await alicePage.waitForSelector('#viewport[data-drawn]', { timeout: 15_000 })
    await waitFor('the STAT study to be local and drawn', async () => await canvasShowsImage(alicePage), 15_000)
    assert.match((await alicePage.locator('#patient-name').textContent()) ?? '', 'VIEWER, CANARY')

    const state = await alicePage.evaluate(() => window.radmesh?.viewport.state())
    assert.is(state?.index, 0)
    const defaultWindow = state?.window
    const atDefault = await renderedFrame(alicePage)
    assert.equal([atDefault.width, atDefault.height], [128, 128])
    const referenceDefault = await dcmtkRendering(ctFirstFile, [
      '+Ww',
      String(defaultWindow?.center),
      String(defaultWindow?.width)
    ])
    assert.ok(
      maxDifference(atDefault.grey, referenceDefault) <= 1,
      `default window ${JSON.stringify(defaultWindow)}: off by ${maxDifference(atDefault.grey, referenceDefault)}`
    )

    await alicePage.locator('#viewport').focus()
    await alicePage.keyboard.press('1') // brain: W 80 L 40
    const brain = await renderedFrame(alicePage)
    assert.ok(
      maxDifference(brain.grey, await dcmtkRendering(ctFirstFile, ['+Ww', '40', '80'])) <= 1,
      'brain preset as dcmj2pnm +Ww 40 80'
    )
    await alicePage.keyboard.press('4') // lung: W 1500 L -600
    const lung = await renderedFrame(alicePage)
    assert.ok(
      maxDifference(lung.grey, await dcmtkRendering(ctFirstFile, ['+Ww', '-600', '1500'])) <= 1,
      'lung preset as dcmj2pnm +Ww -600 1500'
    )
    const saturated = (grey: number[]): number => grey.filter(v => v === 0 || v === 255).length
    assert.ok(
      saturated(brain.grey) > saturated(lung.grey),
      'the narrow brain window saturates more pixels than the wide lung window'
    )
    assert.match((await alicePage.locator('#overlay-tr').textContent()) ?? '', 'W 1500')

    // Dragging changes the window: right widens it.
    const box = await alicePage.locator('#viewport').boundingBox()
    if (box === null) throw new Error('no viewport')
    await alicePage.mouse.move(box.x + box.width / 2, box.y + box.height / 2)
    await alicePage.mouse.down()
    await alicePage.mouse.move(box.x + box.width / 2 + 60, box.y + box.height / 2, { steps: 4 })
    await alicePage.mouse.up()
    const dragged = await alicePage.evaluate(() => window.radmesh?.viewport.state().window)
    assert.ok((dragged?.width ?? 0) > 1500, `dragging right widened the window: ${JSON.stringify(dragged)}`)

    // Scrolling moves through the stack; a measurement reads in mm. The claimed study is fetched from the claim
    // on, so its stack may still be growing: all 12 slices first, or PageDown stops at the last one there.
    await alicePage.waitForFunction(() => window.radmesh?.viewport.state().count === 12, undefined, {
      timeout: 30_000
    })
    await alicePage.keyboard.press('ArrowDown')
    await alicePage.keyboard.press('PageDown')
    await waitFor(
      'the stack to scroll',
      async () => (await alicePage.evaluate(() => window.radmesh?.viewport.state().index)) === 11,
      5_000
    )
    await alicePage.keyboard.press('m')
    await alicePage.mouse.move(box.x + box.width / 2 - 50, box.y + box.height / 2)
    await alicePage.mouse.down()
    await alicePage.mouse.move(box.x + box.width / 2 + 50, box.y + box.height / 2, { steps: 3 })
    await alicePage.mouse.up()
    const [measurement] = await alicePage.evaluate(() => window.radmesh?.viewport.measurements() ?? [])
    assert.match(measurement?.text ?? '', / mm$/)
    await alicePage.keyboard.press('t')
    assert.match((await alicePage.locator('#tags').textContent()) ?? '', '(0010,0010)')
    await alicePage.keyboard.press('t')
    await screenshot(alicePage, 'viewer')

    const audit = (
      await alice.api<{ records: Array<{ eventCode: string; actor?: { type: string }; detail?: string }> }>(
        'GET',
        '/api/audit'
      )
    ).body.records
    assert.ok(
      audit.some(r => r.eventCode === '110103' && r.actor?.type === 'viewer' && /frames/.test(r.detail ?? '')),
      "the viewer's image reads are in the audit log"
    )
    assert.equal(pageErrors(alicePage), [])
  }
)

test(
  'one image of each compressed transfer syntax in the ' + 'pydicom corpus renders in the browser without error',
  async () => {
    const files = {
      'JPEG baseline': 'SC_rgb_jpeg_dcmtk.dcm',
      'JPEG extended 12-bit': 'JPEG-lossy.dcm',
      'JPEG lossless SV1': 'SC_rgb_jpeg_gdcm.dcm',
      'JPEG-LS lossless': 'MR_small_jpeg_ls_lossless.dcm',
      'JPEG 2000 lossless': 'MR_small_jp2klossless.dcm',
      'JPEG 2000': 'JPEG2000.dcm',
      RLE: 'MR_small_RLE.dcm'
    }
    const dir = await tempDir()
    const studies: Record<string, string> = {}
    let n = 0
    for (const [syntax, name] of Object.entries(files)) {
      // The corpus gives one image in several syntaxes the same UIDs: each copy gets UIDs of its own here.
      let bytes: Buffer = await fs.readFile(join(PYDICOM_CORPUS, name))
      const { stdout } = await runTool('dcmdump', ['+P', '0020,000d', '+P', '0008,0018', join(PYDICOM_CORPUS, name)])
      const uids = [...stdout.matchAll(/\[([0-9.]+)\]/g)].map(m => m[1] as string)
      for (const uid of new Set(uids)) {
        const replacement = `${uid.slice(0, -2)}9${n}`
        while (bytes.indexOf(Buffer.from(uid, 'latin1')) >= 0) bytes = replaceSameLength(bytes, uid, replacement)
      }
      studies[syntax] = `${(uids[0] as string).slice(0, -2)}9${n}`
      await fs.writeFile(join(dir, `${n}.dcm`), bytes)
      n++
    }
    await radmeshOk(['import', '--home', site.home, dir])
    const page = await signedInPage(browser, site)
    for (const [syntax, studyUid] of Object.entries(studies)) {
      await page.goto(`${site.http}/#/study/${studyUid}`)
      await page.waitForSelector('#viewport[data-drawn], #viewport[data-error]', { timeout: 15_000 })
      const error = await page.locator('#viewport').getAttribute('data-error')
      assert.is(error, null, `${syntax}: ${error}`)
      assert.ok(await canvasShowsImage(page), `${syntax} drew an image`)
      if (syntax === 'JPEG baseline') await screenshot(page, 'viewer-colour-jpeg')
    }
    assert.equal(pageErrors(page), [])
    await page.context().close()
  }
)

test(
  'two pages on two nodes write one section at once: both show the same text within 1 s ' +
    "and each other's cursor; FINAL makes it read-only on both, an addendum makes it AMENDED",
  async () => {
    // Alice, on the case page, invites Bob from the report panel.
    await alicePage.locator('#consult-peer').selectOption(bob.peerId)
    await alicePage.locator('#consult').click()
    const bobPage = await signedInPage(browser, bob)
    await waitFor(
      'Bob to see the consult',
      async () =>
        (await bob.api<Array<{ caseId: string; consultants: string[] }>>('GET', '/api/worklist')).body
          .find(c => c.caseId === caseId)
          ?.consultants.includes(bob.peerId),
      10_000
    )
    await alicePage.goto(`${alice.http}/#/case/${caseId}`)
    await alicePage.reload()
    await bobPage.goto(`${bob.http}/#/case/${caseId}`)
    for (const page of [alicePage, bobPage])
      await page.waitForSelector('#section-findings:not([readonly])', { timeout: 15_000 })

    // Alice starts the section; once Bob's page shows her line, both write in it at once, Alice at its end and Bob
    // at its start. (Two carets at one place in an empty box would interleave their keystrokes, as any shared
    // editor does: each sees the other's first letter before their own second.)
    await alicePage.locator('#section-findings').click()
    await alicePage.keyboard.type('Hyperdense right MCA.')
    await bobPage.waitForFunction(
      () =>
        (document.querySelector('#section-findings') as HTMLTextAreaElement | null)?.value === 'Hyperdense right MCA.',
      undefined,
      { timeout: 5_000 }
    )
    await Promise.all([
      (async () => {
        await alicePage.keyboard.press('Control+End')
        await alicePage.keyboard.type(' Dense MCA sign.', { delay: 15 })
      })(),
      (async () => {
        await bobPage.locator('#section-findings').click()
        await bobPage.keyboard.press('Control+Home')
        await bobPage.keyboard.type('No haemorrhage. ', { delay: 15 })
      })()
    ])
    const typed = Date.now()
    const both = async (): Promise<string[]> =>
      await Promise.all([alicePage, bobPage].map(async page => await page.locator('#section-findings').inputValue()))
    await waitFor(
      'both pages to show both edits',
      async () => {
        const [a, b] = await both()
        return a === b && a === 'No haemorrhage. Hyperdense right MCA. Dense MCA sign.'
      },
      5_000,
      25
    ).catch(async (error: unknown) => {
      // Slow, or two texts that will never agree: the texts and the node's say which.
      const [a, b] = await both()
      const { body } = await alice.api<{ sections: { findings: string } }>('GET', `/api/cases/${caseId}/report`)
      const texts = JSON.stringify({ alicePage: a, bobPage: b, aliceNode: body.sections.findings })
      throw new Error(`${(error as Error).message}: ${texts}`)
    })
    const converged = Date.now() - typed
    assert.ok(converged <= 1_000, `the two pages agreed ${converged} ms after the last keystroke`)
    // Each sees where the other is writing.
    await alicePage.waitForFunction(
      () => /Dr Bob Neuro in Findings, line 1/.test(document.querySelector('#report-presence')?.textContent ?? ''),
      undefined,
      { timeout: 5_000 }
    )
    await bobPage.waitForFunction(
      () => /Dr Alice Neuro in Findings/.test(document.querySelector('#report-presence')?.textContent ?? ''),
      undefined,
      { timeout: 5_000 }
    )
    assert.ok(
      await alicePage.locator('#section-findings.others-here').isVisible(),
      'the section the other reader is in is marked'
    )
    // Bob's caret is drawn where he is: inside the findings box, on its first line, after some text.
    const caret = await alicePage.locator(`.remote-caret[data-peer="${bob.peerId}"]`).boundingBox()
    const box = await alicePage.locator('#section-findings').boundingBox()
    if (caret === null || box === null) throw new Error("no caret of Bob's on Alice's page")
    assert.ok(
      caret.x > box.x + 20 && caret.x < box.x + box.width && caret.y >= box.y && caret.y < box.y + 40,
      `Bob's caret at ${JSON.stringify(caret)} in ${JSON.stringify(box)}`
    )
    await screenshot(alicePage, 'report-co-editing')
    await waitFor(
      'the node to hold the text',
      async () =>
        (
          await alice.api<{ sections: { findings: string } }>('GET', `/api/cases/${caseId}/report`)
        ).body.sections.findings.includes('No haemorrhage.'),
      5_000
    )
    // The authors line follows the report's document, which may reach the page a moment after the node has it.
    await alicePage.waitForFunction(
      () => /Dr Bob Neuro/.test(document.querySelector('#report-authors')?.textContent ?? ''),
      undefined,
      { timeout: 5_000 }
    )

    await alicePage.locator('#section-impression').click()
    await alicePage.keyboard.type('Right MCA infarct.')
    await alicePage.locator('#sign-final').click()
    for (const page of [alicePage, bobPage]) {
      await page.waitForSelector('#report[data-status="FINAL"]', { timeout: 10_000 })
      await page.waitForSelector('#section-findings[readonly]', { timeout: 5_000 })
      assert.match((await page.locator('#report-signatures').textContent()) ?? '', 'verified')
    }
    await screenshot(alicePage, 'report-final')
    // After FINAL only an addendum: the report becomes AMENDED on both pages, the signed text unchanged.
    await alicePage.locator('#addendum-text').fill('CT angiography recommended.')
    await alicePage.locator('#addendum').click()
    for (const page of [alicePage, bobPage]) {
      await page.waitForSelector('#report[data-status="AMENDED"]', { timeout: 10_000 })
      assert.match(
        (await page.locator('#report-signatures').textContent()) ?? '',
        'Addendum: CT angiography recommended.'
      )
    }
    const report = (
      await bob.api<{ status: string; sections: { impression: string } }>('GET', `/api/cases/${caseId}/report`)
    ).body
    assert.equal([report.status, report.sections.impression], ['AMENDED', 'Right MCA infarct.'])
    assert.equal([...pageErrors(alicePage), ...pageErrors(bobPage)], [])
    await bobPage.context().close()
  }
)

test(
  'bad live-report input from a viewer session is refused ' + 'with a reason, and the node stays up and in sync',
  async () => {
    const page = await signedInPage(browser, alice)
    const cookies = (await page.context().cookies()).map(c => `${c.name}=${c.value}`).join('; ')
    const post = async (
      path: string,
      body: BodyInit,
      type: string
    ): Promise<{ status: number; code: string | undefined }> => {
      const response = await fetch(`${alice.http}${path}`, {
        method: 'POST',
        headers: { cookie: cookies, 'content-type': type },
        body
      })
      return {
        status: response.status,
        code:
          response.status === 204 ? undefined : ((await response.json()) as { error?: { code: string } }).error?.code
      }
    }
    const live = `/api/cases/${caseId}/report/live`
    for (const [path, body, type, status, code] of [
      [live, new Uint8Array([0xde, 0xad, 0xbe, 0xef]), 'application/octet-stream', 403, 'RADMESH_NOT_ALLOWED'],
      [live, new Uint8Array(0), 'application/octet-stream', 400, 'RADMESH_BAD_REQUEST'],
      [live, new Uint8Array(300 * 1024), 'application/octet-stream', 413, 'RADMESH_TOO_LARGE'],
      [`${live}/binding`, JSON.stringify({ clientId: 'me' }), 'application/json', 400, 'RADMESH_BAD_REQUEST'],
      [
        `/api/cases/${caseId}/report/presence`,
        new Uint8Array([1, 2, 3]),
        'application/octet-stream',
        400,
        'RADMESH_BAD_REQUEST'
      ],
      [
        '/api/cases/not-a-case/report/presence',
        new Uint8Array([1]),
        'application/octet-stream',
        400,
        'RADMESH_BAD_REQUEST'
      ]
    ] as const) {
      assert.equal(await post(path, body, type), { status, code }, `${path} ${type}`)
    }
    assert.is((await alice.api('GET', '/api/health')).status, 200)
    const [a, b] = await Promise.all(
      [alice, bob].map(
        async node => (await node.api<{ status: string; sections: unknown }>('GET', `/api/cases/${caseId}/report`)).body
      )
    )
    assert.equal(a, b, 'the two nodes show the same report')
    assert.is(a?.status, 'AMENDED')
    await page.context().close()
  }
)

test('an idle viewer session is logged off, although the page keeps polling', async () => {
  const idle = await start(started, await consortium.member('Dr Idle', 'radiologist'), {
    peers: [p2pAddr(site)],
    extraArgs: ['--session-idle', '3s']
  })
  const page = await signedInPage(browser, idle)
  await page.waitForSelector('#worklist')
  await page.waitForSelector('#signed-out', { timeout: 12_000 })
  await screenshot(page, 'signed-out')
  const cookies = await page.context().cookies()
  const response = await fetch(`${idle.http}/api/worklist`, {
    headers: { cookie: cookies.map(c => `${c.name}=${c.value}`).join('; ') }
  })
  assert.is(response.status, 401, 'the old session cookie no longer works')
  await page.context().close()
})

test.run()
