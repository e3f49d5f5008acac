/**
 * A site with a month of history still takes new readers (issue 14): a site holding 10,000 cases made by
 * the real record code (80 % closed a week or more ago, 20 % open) starts at once, a new reader joins it and
 * lists every open case within 5 s, and a reader whose disk was wiped gets its worklist back. Closed cases
 * stay queryable at the site, a page at a time.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { writeWorklistHistory } from '../../scripts/lib/worklist-history.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { p2pAddr, type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const CASES = 10_000
const started: StartedNode[] = []
let site: StartedNode
let readerHome: string
let openIds: string[]

test.before(async () => {
  const consortium = await createScratchConsortium('A Month of Cases')
  const siteHome = await consortium.member('Busy Hospital', 'site')
  const earlier = await consortium.member('Dr Month Reader', 'radiologist')
  readerHome = await consortium.member('Dr New Reader', 'radiologist')
  // Each node once, so that its HOME is whole (database, keys), then stopped.
  for (const home of [siteHome, earlier, readerHome]) await (await startNode(home)).stop()
  const history = await writeWorklistHistory({
    site: siteHome,
    readers: [earlier, readerHome],
    count: CASES,
    openFraction: 0.2
  })
  openIds = history.openIds
  site = await startNode(siteHome)
  started.push(site)
})

test.after(async () => {
  await Promise.all(
    started.map(async node => {
      await node.kill()
    })
  )
})

async function openCasesOf(node: StartedNode): Promise<Set<string>> {
  const { body } = await node.api<Array<{ caseId: string; status: string }>>('GET', '/api/worklist?closed=0')
  return new Set(body.filter(c => c.status === 'SCHEDULED').map(c => c.caseId))
}

async function joinAndList(what: string): Promise<number> {
  const reader = await startNode(readerHome, { peers: [p2pAddr(site)] })
  started.push(reader)
  const begun = performance.now()
  await waitFor(
    `${what}: every open case on the reader's worklist`,
    async () => ((await openCasesOf(reader)).size === openIds.length ? true : undefined),
    30_000,
    100
  )
  const seconds = (performance.now() - begun) / 1000
  assert.equal([...(await openCasesOf(reader))].sort(), [...openIds].sort())
  await reader.stop()
  started.splice(started.indexOf(reader), 1)
  return seconds
}

test(`a new reader joins a site holding ${CASES} cases and lists every open one within 5 s`, async () => {
  assert.is((await openCasesOf(site)).size, openIds.length, 'the site lists its open cases')
  const seconds = await joinAndList('a new reader')
  assert.ok(seconds < 5, `the reader listed the ${openIds.length} open cases after ${seconds.toFixed(1)} s`)
})

test('a reader whose disk was wiped (same identity, empty database) gets its worklist back', async () => {
  await fs.rm(join(readerHome, 'db'), { recursive: true, force: true })
  const seconds = await joinAndList('a wiped reader')
  assert.ok(seconds < 5, `the wiped reader listed them again after ${seconds.toFixed(1)} s`)
})

test(
  'the closed cases stay at the site, queryable a page at a ' +
    'time; the worklist answers the open ones and a page of closed',
  async () => {
    let total = 0
    let completed = 0
    let after: string | null = null
    do {
      const query: string = `/api/cases?limit=1000${after === null ? '' : `&after=${encodeURIComponent(after)}`}`
      const { body } = await site.api<{ cases: Array<{ status: string }>; next: string | null }>('GET', query)
      total += body.cases.length
      completed += body.cases.filter(c => c.status === 'COMPLETED').length
      after = body.next
    } while (after !== null)
    assert.is(total, CASES)
    assert.is(completed, CASES - openIds.length)
    const { body } = await site.api<unknown[]>('GET', '/api/worklist')
    assert.is(body.length, openIds.length, 'no closed case is live (all closed more than a week ago)')
    const completedPage = await site.api<{ cases: unknown[] }>('GET', '/api/cases?status=COMPLETED&limit=50')
    assert.is(completedPage.body.cases.length, 50)
  }
)

test.run()
