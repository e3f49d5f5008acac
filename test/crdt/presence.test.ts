/**
 * Presence (who has a report open, where their cursor is): only states of Yjs clients bound to the member
 * they come from are taken; garbage and oversized updates are refused; accepted states reach listeners
 * and the snapshot a newly opened viewer gets.
 */
import { join } from 'node:path'
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Awareness, encodeAwarenessUpdate } from 'y-protocols/awareness'
import * as Y from 'yjs'
import { EDITORS_MAP } from '../../protocol/collab/records.ts'
import { reportDocId } from '../../protocol/collab/sync.ts'
import { StorageKey } from '../../node/archive/sealing.ts'
import { Documents } from '../../node/crdt/documents.ts'
import { UpdateRefusedError } from '../../node/crdt/inspect.ts'
import { awarenessEntries, Presence } from '../../node/crdt/presence.ts'
import { DocStore } from '../../node/crdt/store.ts'
import { openDatabase } from '../../node/store/database.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const DOC = reportDocId('0123456789abcdef01234567')

/** An awareness update from a browser-like client with this id and state. */
function presenceOf(clientId: number, state: object | null): Uint8Array {
  const doc = new Y.Doc()
  doc.clientID = clientId
  const awareness = new Awareness(doc)
  awareness.setLocalState(state)
  const update = encodeAwarenessUpdate(awareness, [clientId])
  awareness.destroy()
  return update
}

async function refused(promise: Promise<unknown>, reason: RegExp): Promise<void> {
  try {
    await promise
  } catch (error) {
    assert.instance(error, UpdateRefusedError)
    assert.match((error as Error).message, reason)
    return
  }
  assert.unreachable(`not refused (${reason})`)
}

test('presence is taken only from clients bound to its sender, and reaches listeners and late viewers', async () => {
  const dir = await tempDir()
  const db = await openDatabase(join(dir, 'db'))
  const documents = new Documents(
    new DocStore(db, await StorageKey.load(join(dir, 'storage.key'))),
    pino({ level: 'silent' })
  )
  await documents.change(DOC, doc => {
    doc.getMap(EDITORS_MAP).set('11', { by: 'me' })
    doc.getMap(EDITORS_MAP).set('22', { by: 'peer-b' })
  })
  const presence = new Presence({ documents, me: 'me', log: pino({ level: 'silent' }) })
  const heard: Array<{ origin: unknown }> = []
  presence.onUpdate((docId, _update, origin) => {
    if (docId === DOC) heard.push({ origin })
  })

  await presence.apply(DOC, presenceOf(11, { user: { name: 'Dr Me' }, cursor: null }), { kind: 'viewer' })
  await presence.apply(DOC, presenceOf(22, { user: { name: 'Dr B' }, cursor: { section: 'findings' } }), {
    kind: 'peer',
    peerId: 'peer-b'
  })
  assert.equal(
    heard.map(h => h.origin),
    [{ kind: 'viewer' }, { kind: 'peer', peerId: 'peer-b' }]
  )

  await refused(presence.apply(DOC, presenceOf(22, { user: { name: 'Dr B' } }), { kind: 'viewer' }), /not bound to me/)
  await refused(
    presence.apply(DOC, presenceOf(11, { user: { name: 'Dr Me' } }), { kind: 'peer', peerId: 'peer-b' }),
    /not bound to peer-b/
  )
  await refused(
    presence.apply(DOC, presenceOf(33, { user: { name: 'Nobody' } }), { kind: 'peer', peerId: 'peer-b' }),
    /not bound/
  )
  await refused(
    presence.apply(DOC, presenceOf(11, { user: { name: 'x'.repeat(5000) } }), { kind: 'viewer' }),
    /characters/
  )
  await refused(presence.apply(DOC, Uint8Array.from([1, 11, 1, 200]), { kind: 'viewer' }), /does not decode/)
  await refused(presence.apply(DOC, new Uint8Array(9000), { kind: 'viewer' }), /limit/)
  assert.is(heard.length, 2, 'nothing refused reached a listener')

  const late = new Awareness(new Y.Doc())
  const snapshot = presence.snapshot(DOC)
  assert.ok(snapshot !== undefined)
  const { applyAwarenessUpdate } = await import('y-protocols/awareness')
  applyAwarenessUpdate(late, snapshot, 'test')
  assert.equal([...late.getStates().keys()].filter(id => id !== late.clientID).sort(), [11, 22])
  late.destroy()

  await presence.apply(DOC, presenceOf(11, null), { kind: 'viewer' })
  assert.equal(
    awarenessEntries(presence.snapshot(DOC) ?? new Uint8Array()).map(e => e.clientId),
    [22],
    'a viewer that left is gone; the other reader remains'
  )
  presence.stop()
  await documents.close()
  await db.close()
})

test.run()
