/**
 * A real headless Chromium (Debian's) driven by playwright-core, for the viewer tests and the viewer
 * benchmark. Pages sign in the way a user does: through a one-time sign-in URL from the node. Screenshots
 * go to test-artifacts/ (or RADMESH_ARTIFACTS), which CI keeps.
 */
import { execFileSync } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { type Browser, chromium, type Page } from 'playwright-core'
import { ROOT } from './cli.ts'
import type { StartedNode } from './node-process.ts'

export const ARTIFACTS = process.env['RADMESH_ARTIFACTS'] ?? join(ROOT, 'test-artifacts')

export async function launchBrowser(): Promise<Browser> {
  let executablePath: string
  try {
    executablePath = execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim()
  } catch {
    throw new Error('Chromium is not installed: node scripts/system-deps.ts installs it (Debian package "chromium")')
  }
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-dev-shm-usage'
  ]
  return await chromium.launch({ executablePath, args })
}

/** A new page (its own cookies) signed in to the node's viewer through a fresh one-time link. */
export async function signedInPage(
  browser: Browser,
  node: StartedNode,
  viewport = { width: 1400, height: 860 }
): Promise<Page> {
  const context = await browser.newContext({ viewport })
  const page = await context.newPage()
  const problems: string[] = []
  page.on('pageerror', error => {
    problems.push(error.message)
  })
  // What the Content-Security-Policy refused (an inline style, a foreign script) is an error too.
  page.on('console', message => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) problems.push(message.text())
  })
  ;(page as Page & { problems?: string[] }).problems = problems
  const { status, body } = await node.api<{ url: string }>('POST', '/api/signin-links')
  if (status !== 200) throw new Error(`no sign-in link: ${status} ${JSON.stringify(body)}`)
  await page.goto(body.url)
  await page.waitForSelector('#nav a')
  return page
}

/** Uncaught errors the page's scripts threw so far, and what its Content-Security-Policy refused. */
export function pageErrors(page: Page): string[] {
  return (page as Page & { problems?: string[] }).problems ?? []
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await fs.mkdir(join(ARTIFACTS, 'screenshots'), { recursive: true })
  const path = join(ARTIFACTS, 'screenshots', `${name}.png`)
  await page.screenshot({ path })
  return path
}
