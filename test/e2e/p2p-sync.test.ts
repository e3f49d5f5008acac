/**
 * `/radmesh/sync/2.0.0` against real node processes, from a member that misbehaves (real certificate, so it
 * passes the handshake):
 * - a flood of step 1s is answered about once a second, not once each;
 * - a sync message cut short, or whose length is over the limit, is refused with its code and counted.
 * (A step 2 is never larger than a reader's read buffer: test/collab/sync.test.ts.)
 */
import { test } from 'uvu'
import { nodesOfTests } from '../helpers/nodes.ts'
import * as assert from 'uvu/assert'
import * as Y from 'yjs'
import { encodeLength } from '../../node/p2p/wire.ts'
import {
  encodeSyncMessage,
  MAX_SYNC_MESSAGE_BYTES,
  MEMBERS_DOC,
  SYNC_MESSAGE,
  SYNC_PROTOCOL
} from '../../protocol/collab/sync.ts'
import { BadMember, framed } from '../../scripts/lib/bad-member.ts'
import { logOf, p2pAddr, type StartedNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const members: BadMember[] = []
const nodes = nodesOfTests(test, 'Sync Abuse')

test.after(async () => {
  await Promise.all(
    members.map(async member => {
      await member.stop()
    })
  )
})

async function siteAndMember(name: string): Promise<{ site: StartedNode; member: BadMember }> {
  const site = await nodes.start(await nodes.member(name, 'site'))
  const member = await BadMember.admit(nodes.consortium.dir, await tempDir(), {
    name: `${name} Member`,
    role: 'radiologist'
  })
  members.push(member)
  await member.connect(p2pAddr(site))
  return { site, member }
}

test('a flood of step 1s for the members document is answered about once a second, not once each', async () => {
  const { site, member } = await siteAndMember('Flooded Site')
  const payload = Y.encodeStateVector(new Y.Doc())
  const step1 = framed(encodeSyncMessage({ type: SYNC_MESSAGE.step1, docId: MEMBERS_DOC, payload }))
  const stream = await member.open(SYNC_PROTOCOL)
  for (let i = 0; i < 50; i++) stream.send(step1)
  await new Promise(resolve => setTimeout(resolve, 2_500))
  const answers = member.synced.filter(m => m.type === SYNC_MESSAGE.step2 && m.docId === MEMBERS_DOC).length
  assert.ok(answers >= 1, 'the step 1 was answered')
  assert.ok(answers <= 3, `${answers} answers to 50 step 1s sent at once`)
  stream.abort(new Error('done'))
  assert.is((await site.api<{ ok: boolean }>('GET', '/api/health')).body.ok, true)
})

test('a sync message cut short, and one whose length is over the limit: refused with a code, counted', async () => {
  const { site, member } = await siteAndMember('Strict Site')
  const update = framed(encodeSyncMessage({ type: SYNC_MESSAGE.update, docId: MEMBERS_DOC, payload: Buffer.alloc(99) }))
  await member.send(SYNC_PROTOCOL, [update.subarray(0, 50)], { waitMs: 3_000 })
  await member.send(SYNC_PROTOCOL, [encodeLength(MAX_SYNC_MESSAGE_BYTES + 1)], { close: false, waitMs: 3_000 })
  const lines = await waitFor(
    'both refusals in the log',
    async () => {
      const found = (await logOf(site.home)).filter(
        l => l['event'] === 'sync-stream-refused' && l['peer'] === member.peerId
      )
      return found.length >= 2 ? found : undefined
    },
    5_000
  )
  assert.equal(lines.map(line => line['code']).sort(), ['oversized-message', 'truncated-message'])
  assert.ok(lines.every(line => (line['penalty'] as number) > 0))
})

test.run()
