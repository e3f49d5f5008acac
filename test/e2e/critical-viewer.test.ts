/**
 * Critical results in the viewer, in a real headless Chromium against a real site and reader in separate
 * processes: the reader flags a finding from the case's report panel and records a call -> the site's worklist
 * page shows a banner -> the reader's worklist marks the case -> someone at the site acknowledges it from the
 * banner, by name -> the banner goes -> the reader's worklist mark turns to acknowledged and the case's panel
 * says who acknowledged it.
 */
import type { Browser, Page } from 'playwright-core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { launchBrowser, pageErrors, screenshot, signedInPage } from '../../scripts/lib/browser.ts'
import { createScratchConsortium, type ScratchConsortium } from '../../scripts/lib/consortium.ts'
import type { StartedNode } from '../../scripts/lib/node-process.ts'
import { type Critical, claimedCriticalCase } from './critical-helpers.ts'

let consortium: ScratchConsortium
let browser: Browser
const started: StartedNode[] = []
const pages: Page[] = []

test.before(async () => {
  consortium = await createScratchConsortium('CriticalViewer')
  browser = await launchBrowser()
})

test.after(async () => {
  await browser?.close()
  await Promise.all(
    started.map(async node => {
      await node.kill()
    })
  )
})

const FINDING = 'Acute right subdural haematoma with 6 mm midline shift.'

test(
  "flagged in the reader's panel -> banner at the site -> " + 'acknowledged there by name -> the reader sees who',
  async () => {
    const { site, reader, caseId } = await claimedCriticalCase(consortium, started, { seed: 23 })

    const readerPage = await signedInPage(browser, reader)
    const sitePage = await signedInPage(browser, site)
    pages.push(readerPage, sitePage)
    await sitePage.locator(`tr[data-case="${caseId}"]`).waitFor({ timeout: 10_000 })
    assert.is(await sitePage.locator('#critical-banner').isVisible(), false, 'no banner while nothing is flagged')

    // The reader flags the finding from the case's report panel.
    await readerPage.goto(`${new URL(readerPage.url()).origin}/#/case/${caseId}`)
    await readerPage.locator('#critical-flag').waitFor({ timeout: 15_000 })
    await readerPage.selectOption('#critical-level', 'critical')
    await readerPage.fill('#critical-text', FINDING)
    await readerPage.click('#critical-flag')
    const item = readerPage.locator('#critical-list li[data-state="open"]')
    await item.waitFor({ timeout: 10_000 })
    assert.match((await item.textContent()) ?? '', FINDING)
    assert.match((await item.textContent()) ?? '', 'raised by Dr Alice Neuro')
    assert.match((await item.textContent()) ?? '', 'not acknowledged yet')
    const [flagged] = (await reader.api<Critical[]>('GET', '/api/critical')).body
    assert.equal([flagged?.caseId, flagged?.text], [caseId, FINDING])
    const id = flagged?.id ?? ''
    await item.locator('.call-note').fill('Phoned ED, left a message.')
    await item.locator('button.call').click()
    await readerPage.waitForFunction(
      () => /call at .*: Phoned ED, left a message\./.test(document.querySelector('#critical-list')?.textContent ?? ''),
      undefined,
      { timeout: 10_000 }
    )

    // The site's worklist page raises it, without a reload.
    const bannerItem = sitePage.locator(`#critical-banner li[data-critical-id="${id}"]`)
    await bannerItem.waitFor({ timeout: 15_000 })
    const shown = (await bannerItem.textContent()) ?? ''
    for (const part of ['Critical', FINDING, 'CT HEAD', 'raised by Dr Alice Neuro', 'step 0']) assert.match(shown, part)
    assert.match((await sitePage.locator('#critical-banner').textContent()) ?? '', '1 critical result to acknowledge')
    assert.is(await sitePage.locator(`tr[data-case="${caseId}"]`).getAttribute('data-critical'), 'open')
    await screenshot(sitePage, 'critical-banner')

    // The reader's worklist marks the case as having an unacknowledged critical result.
    await readerPage.goto(`${new URL(readerPage.url()).origin}/#/`)
    await readerPage.locator(`tr[data-case="${caseId}"][data-critical="open"]`).waitFor({ timeout: 10_000 })

    // Acknowledging needs a name; the banner stays until then, through the worklist's polls.
    await bannerItem.locator('button.ack').click()
    assert.match((await bannerItem.locator('.ack-error').textContent()) ?? '', 'your name')
    await sitePage.waitForTimeout(2_500)
    await bannerItem.locator('.ack-name').fill('Dr Ward')
    await sitePage.waitForTimeout(2_500)
    assert.is(await bannerItem.locator('.ack-name').inputValue(), 'Dr Ward', 'a poll keeps what is being typed')
    await bannerItem.locator('.ack-role').fill('ED attending')
    await bannerItem.locator('button.ack').click()
    await bannerItem.waitFor({ state: 'detached', timeout: 10_000 })
    assert.is(await sitePage.locator('#critical-banner').isVisible(), false)
    const atSite = (await site.api<Critical[]>('GET', '/api/critical')).body.find(c => c.id === id)
    assert.equal(atSite?.acknowledged?.by, 'Dr Ward')
    assert.equal(atSite?.acknowledged?.role, 'ED attending')
    await sitePage.waitForTimeout(2_500)
    assert.is(await sitePage.locator('#critical-banner').isVisible(), false, 'it does not come back on the next poll')

    // The reader sees the acknowledgement: on the worklist, then in the case's panel.
    await readerPage.locator(`tr[data-case="${caseId}"][data-critical="acknowledged"]`).waitFor({ timeout: 15_000 })
    await readerPage.locator(`tr[data-case="${caseId}"] a.open`).click()
    const acked = readerPage.locator(`#critical-list li[data-critical-id="${id}"][data-state="acknowledged"]`)
    await acked.waitFor({ timeout: 10_000 })
    await acked.scrollIntoViewIfNeeded()
    assert.match((await acked.textContent()) ?? '', 'acknowledged by Dr Ward (ED attending) at ')
    await screenshot(readerPage, 'critical-acknowledged')
    assert.equal(pageErrors(readerPage), [])
    assert.equal(pageErrors(sitePage), [])
  }
)

test.run()
