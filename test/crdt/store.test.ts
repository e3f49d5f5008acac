/**
 * Documents on disk: every accepted update survives a reopen, sealed at rest (no plaintext in LevelDB), and a
 * log past the threshold is compacted into one update that still holds the whole document.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as Y from 'yjs'
import { StorageKey } from '../../node/archive/sealing.ts'
import { Documents } from '../../node/crdt/documents.ts'
import { COMPACT_AFTER, DocStore } from '../../node/crdt/store.ts'
import { openDatabase } from '../../node/store/database.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

async function open(dir: string): Promise<{ documents: Documents; store: DocStore; close: () => Promise<void> }> {
  const db = await openDatabase(join(dir, 'db'))
  const store = new DocStore(db, await StorageKey.load(join(dir, 'storage.key')))
  const documents = new Documents(store, pino({ level: 'silent' }))
  return {
    documents,
    store,
    close: async () => {
      await documents.close()
      await db.close()
    }
  }
}

async function filesContain(dir: string, needle: string): Promise<boolean> {
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && (await fs.readFile(join(entry.parentPath, entry.name))).includes(needle)) return true
  }
  return false
}

test('local changes and peer updates survive a reopen; nothing is stored in the clear', async () => {
  const dir = await tempDir()
  const first = await open(dir)
  await first.documents.change('report:0123456789abcdef01234567', doc => {
    doc.getText('findings').insert(0, 'CANARY-PATIENT-TEXT')
  })
  const other = new Y.Doc()
  other.getMap('records').set('claim:x', { kind: 'claim' })
  await first.documents.applyRemote('worklist', Y.encodeStateAsUpdate(other), 'peer')
  await first.documents.flushed('worklist')
  await first.close()
  assert.not.ok(await filesContain(dir, 'CANARY-PATIENT-TEXT'), 'report text is sealed at rest')

  const second = await open(dir)
  assert.equal((await second.documents.storedIds()).sort(), ['report:0123456789abcdef01234567', 'worklist'])
  assert.equal(second.documents.ids(), [], 'nothing is opened before it is asked for')
  assert.is(
    (await second.documents.open('report:0123456789abcdef01234567')).getText('findings').toString(),
    'CANARY-PATIENT-TEXT'
  )
  assert.equal((await second.documents.open('worklist')).getMap('records').get('claim:x'), { kind: 'claim' })
  await second.close()
})

test(`past ${COMPACT_AFTER} updates a document is compacted into one, and reopens the same`, async () => {
  const dir = await tempDir()
  const first = await open(dir)
  for (let i = 0; i < COMPACT_AFTER + 5; i++)
    await first.documents.change('worklist', doc => {
      doc.getMap('records').set(`k${i}`, i)
    })
  await first.documents.flushed('worklist')
  const stored = await first.store.load('worklist')
  assert.ok(stored.length < 10, `${stored.length} updates stored after compaction`)
  const expected = first.documents.get('worklist')?.getMap('records').toJSON()
  await first.close()
  const second = await open(dir)
  assert.equal((await second.documents.open('worklist')).getMap('records').toJSON(), expected)
  assert.is(Object.keys(expected ?? {}).length, COMPACT_AFTER + 5)
  await second.close()
})

test('a document found empty, then written, loads what was written; removed, it loads empty', async () => {
  const dir = await tempDir()
  const { store, close } = await open(dir)
  try {
    assert.is(await store.exists('case:a'), false)
    assert.equal(await store.load('case:a'), [])
    await store.append('case:a', new Uint8Array([1, 2, 3]), true)
    assert.equal(
      (await store.load('case:a')).map(update => [...update]),
      [[1, 2, 3]]
    )
    await store.remove('case:a')
    assert.equal(await store.load('case:a'), [])
    assert.is(await store.exists('case:a'), false)
  } finally {
    await close()
  }
})

test('an update of only known deletions is recognised as changing nothing; unknown ones are not', async () => {
  const dir = await tempDir()
  const { documents, close } = await open(dir)
  await documents.change('worklist', doc => {
    doc.getText('t').insert(0, 'abcdef')
  })
  await documents.change('worklist', doc => {
    doc.getText('t').delete(1, 3)
  })
  const doc = documents.get('worklist') as Y.Doc
  const client = doc.clientID
  assert.ok(documents.knowsOnly('worklist', [{ client, clock: 1, length: 3 }]))
  assert.ok(documents.knowsOnly('worklist', [{ client, clock: 2, length: 1 }]))
  assert.ok(documents.knowsOnly('worklist', []))
  assert.not.ok(documents.knowsOnly('worklist', [{ client, clock: 0, length: 2 }]), 'clock 0 was never deleted')
  assert.not.ok(documents.knowsOnly('worklist', [{ client: client + 1, clock: 0, length: 1 }]))
  await close()
})

test(
  'the state hash is the same for the same content whatever order its updates came in, ' + 'and follows deletions',
  async () => {
    const dir = await tempDir()
    const { documents, close } = await open(dir)
    const a = new Y.Doc()
    const b = new Y.Doc()
    a.getText('t').insert(0, 'hello')
    b.getText('t').insert(0, 'world')
    const ua = Y.encodeStateAsUpdate(a)
    const ub = Y.encodeStateAsUpdate(b)
    await documents.applyRemote('report:0123456789abcdef0123456a', ua, 'p')
    await documents.applyRemote('report:0123456789abcdef0123456a', ub, 'p')
    await documents.applyRemote('report:0123456789abcdef0123456b', ub, 'p')
    await documents.applyRemote('report:0123456789abcdef0123456b', ua, 'p')
    const hash = async (id: string): Promise<string> =>
      Buffer.from(documents.stateHash(id, await documents.open(id))).toString('hex')
    assert.is(await hash('report:0123456789abcdef0123456a'), await hash('report:0123456789abcdef0123456b'))
    const before = await hash('report:0123456789abcdef0123456a')
    await documents.change('report:0123456789abcdef0123456a', doc => {
      doc.getText('t').delete(0, 1)
    })
    assert.is.not(
      await hash('report:0123456789abcdef0123456a'),
      before,
      'a deletion changes the hash (it does not move the state vector)'
    )
    await close()
  }
)

test.run()
