/**
 * `/radmesh/sync/1.0.0` against real node processes, from a member that misbehaves (real certificate, so it
 * passes the handshake) and from an honest reader whose worklist answer is too large for it:
 * - a flood of step 1s is answered about once a second, not once each;
 * - a sync message cut short, or whose length is over the limit, is refused with its code and counted;
 * - a step 2 larger than the reader's read buffer (issue 14): the reader logs it with a code, the site logs
 *   that it did not arrive and does not send it again at every resync.
 */
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as Y from 'yjs'
import { StorageKey } from '../../node/archive/sealing.ts'
import { signWorklistRecord } from '../../node/collab/records.ts'
import { DocStore } from '../../node/collab/store.ts'
import { RECORDS_MAP } from '../../node/collab/worklist.ts'
import { homePaths } from '../../node/identity/home.ts'
import { loadIdentity } from '../../node/identity/keys.ts'
import { encodeLength } from '../../node/p2p/wire.ts'
import { openDatabase } from '../../node/store/database.ts'
import { MAX_CASE_READERS, recordKey } from '../../protocol/collab/records.ts'
import {
  encodeSyncMessage,
  MAX_SYNC_MESSAGE_BYTES,
  SYNC_MESSAGE,
  SYNC_PROTOCOL,
  WORKLIST_DOC
} from '../../protocol/collab/sync.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import { BadMember, framed } from '../helpers/bad-member.ts'
import { createTestConsortium, type TestConsortium } from '../helpers/consortium.ts'
import { logOf, p2pAddr, type StartedNode, startNode, tempDir, waitFor } from '../helpers/processes.ts'

let consortium: TestConsortium
const started: StartedNode[] = []
const members: BadMember[] = []

test.before(async () => {
  consortium = await createTestConsortium('Sync Abuse')
})

test.after(async () => {
  await Promise.all(members.map(async member => { await member.stop() }))
  await Promise.all(started.map(async node => { await node.kill() }))
})

async function siteAndMember (name: string): Promise<{ site: StartedNode, member: BadMember }> {
  const site = await startNode(await consortium.member(name, 'site'))
  started.push(site)
  const member = await BadMember.admit(consortium.dir, await tempDir(), { name: `${name} Member`, role: 'radiologist' })
  members.push(member)
  await member.connect(p2pAddr(site))
  return { site, member }
}

test('a flood of step 1s for the worklist is answered about once a second, not once each', async () => {
  const { site, member } = await siteAndMember('Flooded Site')
  const payload = Y.encodeStateVector(new Y.Doc())
  const step1 = framed(encodeSyncMessage({ type: SYNC_MESSAGE.step1, docId: WORKLIST_DOC, payload }))
  const stream = await member.open(SYNC_PROTOCOL)
  for (let i = 0; i < 50; i++) stream.send(step1)
  await new Promise(resolve => setTimeout(resolve, 2_500))
  const answers = member.synced.filter(m => m.type === SYNC_MESSAGE.step2 && m.docId === WORKLIST_DOC).length
  assert.ok(answers >= 1, 'the step 1 was answered')
  assert.ok(answers <= 3, `${answers} answers to 50 step 1s sent at once`)
  stream.abort(new Error('done'))
  assert.is((await site.api<{ ok: boolean }>('GET', '/api/health')).body.ok, true)
})

test('a sync message cut short, and one whose length is over the limit: refused with a code, counted', async () => {
  const { site, member } = await siteAndMember('Strict Site')
  const update =
    framed(encodeSyncMessage({ type: SYNC_MESSAGE.update, docId: WORKLIST_DOC, payload: Buffer.alloc(99) }))
  await member.send(SYNC_PROTOCOL, [update.subarray(0, 50)], { waitMs: 3_000 })
  await member.send(SYNC_PROTOCOL, [encodeLength(MAX_SYNC_MESSAGE_BYTES + 1)], { close: false, waitMs: 3_000 })
  const lines = await waitFor('both refusals in the log', async () => {
    const found = (await logOf(site.home))
      .filter(l => l['event'] === 'sync-stream-refused' && l['peer'] === member.peerId)
    return found.length >= 2 ? found : undefined
  }, 5_000)
  assert.equal(lines.map(line => line['code']).sort(), ['oversized-message', 'truncated-message'])
  assert.ok(lines.every(line => (line['penalty'] as number) > 0))
})

/** Writes `count` signed case records, each naming MAX_CASE_READERS readers, into a stopped site's worklist. */
async function seedWorklist (home: string, count: number): Promise<number> {
  const paths = homePaths(home)
  const identity = await loadIdentity(paths)
  const readers: PeerIdString[] = []
  for (let i = 0; i < MAX_CASE_READERS; i++) {
    readers.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString() as PeerIdString)
  }
  const doc = new Y.Doc()
  const records = doc.getMap(RECORDS_MAP)
  const now = new Date().toISOString()
  for (let i = 0; i < count; i++) {
    const record = await signWorklistRecord(identity.privateKey, {
      v: 1,
      kind: 'case',
      caseId: i.toString(16).padStart(24, '0'),
      studyUid: `1.2.826.0.1.3680043.8.498.${i + 1}`,
      site: identity.peerId,
      siteName: 'Busy Site',
      priority: 'ROUTINE',
      subspecialty: 'general',
      modalities: ['CT'],
      bodyPart: 'CHEST',
      readers,
      createdAt: now,
      dueAt: now,
      by: identity.peerId,
      at: now
    })
    records.set(recordKey(record), record)
  }
  const update = Y.encodeStateAsUpdate(doc)
  const db = await openDatabase(paths.database)
  await new DocStore(db, await StorageKey.load(join(home, 'storage.key'))).append(WORKLIST_DOC, update, true)
  await db.close()
  return update.byteLength
}

test('a worklist answer over the reader\'s read buffer: a logged code; the site backs off, not resending', async () => {
  const home = await consortium.member('Busy Site', 'site')
  const first = await startNode(home)
  await first.stop()
  const bytes = await seedWorklist(home, 400)
  assert.ok(bytes > 4.5 * 1024 * 1024, `the worklist is ${bytes} bytes`)
  const site = await startNode(home)
  started.push(site)
  const readerHome = await consortium.member('Dr New Reader', 'radiologist')
  const reader = await startNode(readerHome, { peers: [p2pAddr(site)], extraArgs: ['--resync', '1s'] })
  started.push(reader)
  const overflow = await waitFor('the reader to log the answer it could not take', async () =>
    (await logOf(reader.home)).find(l => l['code'] === 'sync-read-overflow'), 15_000)
  assert.is(overflow['event'], 'sync-stream-failed')
  assert.ok((overflow['bytes'] as number) > 4 * 1024 * 1024, JSON.stringify(overflow))
  const undelivered = await waitFor('the site to log the answer that did not arrive', async () =>
    (await logOf(site.home)).find(l => l['event'] === 'sync-step2-undelivered' && l['peer'] === reader.peerId), 10_000)
  assert.is(undelivered['code'], 'sync-undelivered')
  assert.is(undelivered['doc'], WORKLIST_DOC)
  // The reader asks every second; the site holds the answer back for its backoff (30 s) instead.
  await new Promise(resolve => setTimeout(resolve, 8_000))
  const overflows = (await logOf(reader.home)).filter(line => line['code'] === 'sync-read-overflow').length
  assert.ok(overflows <= 2, `the answer reached the reader ${overflows} times in about 8 s of asking every second`)
  assert.is((await site.api<{ ok: boolean }>('GET', '/api/health')).body.ok, true)
})

test.run()
