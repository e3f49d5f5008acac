/**
 * A site restarted loads the same live cases; a closed case asked for is loaded from disk, and once retired its
 * document is moved at rest (store.ts) and still reads, its signed records verified, after a restart.
 */
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createNode } from '../../node/node.ts'
import { openDatabase } from '../../node/store/database.ts'
import { caseDocId } from '../../protocol/collab/sync.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { startNode } from '../../scripts/lib/node-process.ts'
import { writeWorklistHistory } from '../../scripts/lib/worklist-history.ts'

const options = (home: string): Parameters<typeof createNode>[0] => ({
  home,
  listen: ['/ip4/127.0.0.1/tcp/0'],
  http: '127.0.0.1:0',
  mdns: false,
  preallocateBytes: 0
})

async function keysOf(home: string, docId: string): Promise<{ atRest: number; inUse: number }> {
  const db = await openDatabase(join(home, 'db'))
  try {
    const collab = db.sublevel<string, Uint8Array>('collab', { valueEncoding: 'view' })
    const count = async (part: string): Promise<number> =>
      (await collab.keys({ gt: `${part}!${docId}!`, lt: `${part}!${docId}!~` }).all()).length
    return { atRest: await count('u'), inUse: await count('v') }
  } finally {
    await db.close()
  }
}

test('a restarted site loads the same live cases; a retired case is at rest and still reads', async () => {
  const consortium = await createScratchConsortium('Live Restart')
  const home = await consortium.member('Small Hospital', 'site')
  const reader = await consortium.member('Dr Reader', 'radiologist')
  for (const each of [home, reader]) await (await startNode(each)).stop()
  const history = await writeWorklistHistory({ site: home, readers: [reader], count: 40, openFraction: 0.25 })
  const closedId = history.caseIds.find(caseId => !history.openIds.includes(caseId)) as string

  const first = await createNode(options(home))
  const live = first.worklist
    .liveCases()
    .map(c => c.caseId)
    .sort()
  assert.equal(live, [...history.openIds].sort())
  const closed = await first.worklist.ensureCase(closedId)
  assert.is(closed?.status, 'COMPLETED')
  assert.equal(first.worklist.retire(), [closedId])
  await first.stop()
  assert.equal(await keysOf(home, caseDocId(closedId)), { atRest: 1, inUse: 0 })

  const second = await createNode(options(home))
  assert.equal(
    second.worklist
      .liveCases()
      .map(c => c.caseId)
      .sort(),
    live
  )
  assert.equal(await second.worklist.ensureCase(closedId), closed)
  await second.stop()
})

test.run()
