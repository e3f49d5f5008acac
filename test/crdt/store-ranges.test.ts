/**
 * Documents load by point reads within the range their `e!` key holds: the same updates as an iterator finds,
 * after a reopen, after compaction, across a gap a failed write left, and for a store written before ranges;
 * a document let go of is moved at rest and loads the same, moved in use again.
 */
import { join } from 'node:path'
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { StorageKey } from '../../node/archive/sealing.ts'
import { Documents } from '../../node/crdt/documents.ts'
import { DocStore } from '../../node/crdt/store.ts'
import { type BinarySublevel, type Database, openDatabase } from '../../node/store/database.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

async function open(dir: string): Promise<{ store: DocStore; db: Database; collab: BinarySublevel }> {
  const db = await openDatabase(join(dir, 'db'))
  const store = new DocStore(db, await StorageKey.load(join(dir, 'storage.key')))
  return { store, db, collab: db.sublevel<string, Uint8Array>('collab', { valueEncoding: 'view' }) }
}

const bytes = (updates: Uint8Array[]): number[][] => updates.map(update => [...update])
const text = (value: Uint8Array | undefined): string | undefined =>
  value === undefined ? undefined : Buffer.from(value).toString('latin1')
async function updateKeys(collab: BinarySublevel, docId: string, part = 'v'): Promise<string[]> {
  return await collab.keys({ gt: `${part}!${docId}!`, lt: `${part}!${docId}!~` }).all()
}

test('a reopened store loads each document by its range, and the range follows the appends', async () => {
  const dir = await tempDir()
  const first = await open(dir)
  for (let i = 0; i < 3; i++) await first.store.append('case:a', new Uint8Array([i]), false)
  await first.store.append('case:b', new Uint8Array([9]), true)
  assert.is(text(await first.collab.get('e!case:a')), '0 0 3')
  await first.db.close()
  const second = await open(dir)
  assert.equal(bytes(await second.store.load('case:a')), [[0], [1], [2]])
  assert.equal(bytes(await second.store.load('case:b')), [[9]])
  await second.store.append('case:a', new Uint8Array([3]), true)
  assert.is(text(await second.collab.get('e!case:a')), '0 0 4')
  await second.db.close()
})

test('compaction moves the range to the compacted update and deletes the log before it', async () => {
  const dir = await tempDir()
  const first = await open(dir)
  for (let i = 0; i < 5; i++) await first.store.append('case:a', new Uint8Array([i]), false)
  await first.store.compact('case:a', new Uint8Array([42]))
  await first.store.append('case:a', new Uint8Array([43]), true)
  assert.is(text(await first.collab.get('e!case:a')), '5 5 7')
  assert.is((await updateKeys(first.collab, 'case:a')).length, 2)
  await first.db.close()
  const second = await open(dir)
  assert.equal(bytes(await second.store.load('case:a')), [[42], [43]])
  await second.db.close()
})

test('an update missing inside the range (a failed write) is skipped; those after it still load', async () => {
  const dir = await tempDir()
  const first = await open(dir)
  for (let i = 0; i < 3; i++) await first.store.append('case:a', new Uint8Array([i]), true)
  const [, middle] = await updateKeys(first.collab, 'case:a')
  await first.collab.del(middle as string)
  await first.db.close()
  const second = await open(dir)
  assert.equal(bytes(await second.store.load('case:a')), [[0], [2]])
  await second.store.append('case:a', new Uint8Array([3]), true)
  await second.db.close()
  const third = await open(dir)
  assert.equal(bytes(await third.store.load('case:a')), [[0], [2], [3]])
  await third.db.close()
})

test('a document of a store written before ranges loads by its keys once, then has its range', async () => {
  const dir = await tempDir()
  const first = await open(dir)
  for (let i = 0; i < 3; i++) await first.store.append('case:a', new Uint8Array([i]), true)
  await first.store.compact('case:a', new Uint8Array([7]))
  await first.store.append('case:a', new Uint8Array([8]), true)
  // As an earlier radmesh left it: every update under u!, an empty `e!` value.
  for (const key of await updateKeys(first.collab, 'case:a')) {
    await first.collab.put(`u${key.slice(1)}`, (await first.collab.get(key)) as Uint8Array)
    await first.collab.del(key)
  }
  await first.collab.put('e!case:a', new Uint8Array())
  await first.db.close()
  const second = await open(dir)
  assert.equal(bytes(await second.store.load('case:a')), [[7], [8]])
  await new Promise(resolve => setTimeout(resolve, 50))
  assert.is(text(await second.collab.get('e!case:a')), '3 3 5')
  assert.is((await updateKeys(second.collab, 'case:a', 'u')).length, 0, 'moved in use')
  await second.db.close()
  const third = await open(dir)
  assert.equal(bytes(await third.store.load('case:a')), [[7], [8]])
  assert.is(await third.store.exists('case:a'), true)
  await third.db.close()
})

test('a document let go of is moved at rest, loads the same after a reopen, and is moved in use again', async () => {
  const dir = await tempDir()
  const first = await open(dir)
  for (let i = 0; i < 3; i++) await first.store.append('case:a', new Uint8Array([i]), true)
  await first.store.append('case:b', new Uint8Array([9]), true)
  await first.store.putAtRest('case:a')
  assert.is((await updateKeys(first.collab, 'case:a', 'u')).length, 3)
  assert.is((await updateKeys(first.collab, 'case:a')).length, 0)
  assert.is(text(await first.collab.get('e!case:a')), '0 3 3')
  await first.db.close()
  const second = await open(dir)
  assert.equal((await second.store.docIds()).sort(), ['case:a', 'case:b'])
  assert.is(await second.store.exists('case:a'), true)
  assert.equal(bytes(await second.store.load('case:a')), [[0], [1], [2]])
  await second.store.append('case:a', new Uint8Array([3]), true)
  assert.is((await updateKeys(second.collab, 'case:a', 'u')).length, 0)
  assert.is(text(await second.collab.get('e!case:a')), '0 0 4')
  await second.store.putAtRest('case:a')
  await second.db.close()
  const third = await open(dir)
  assert.equal(bytes(await third.store.load('case:a')), [[0], [1], [2], [3]])
  await third.db.close()
})

test('a document unloaded is at rest; reopened, it holds the same and hashes the same, and is in use', async () => {
  const dir = await tempDir()
  const first = await open(dir)
  const documents = new Documents(first.store, pino({ level: 'silent' }))
  for (let i = 0; i < 5; i++)
    await documents.change('case:a', doc => {
      doc.getMap('records').set(`r${i}`, i)
    })
  const hash = Buffer.from(documents.stateHash('case:a', documents.get('case:a') as never)).toString('hex')
  documents.unload('case:a')
  await waitFor(
    'the document at rest',
    async () => ((await updateKeys(first.collab, 'case:a')).length === 0 ? true : undefined),
    5_000,
    10
  )
  assert.is((await updateKeys(first.collab, 'case:a', 'u')).length, 5)
  await documents.close()
  await first.db.close()
  const second = await open(dir)
  const again = new Documents(second.store, pino({ level: 'silent' }))
  const doc = await again.open('case:a')
  assert.equal(doc.getMap('records').toJSON(), { r0: 0, r1: 1, r2: 2, r3: 3, r4: 4 })
  assert.is(Buffer.from(again.stateHash('case:a', doc)).toString('hex'), hash)
  await waitFor(
    'the document in use',
    async () => ((await updateKeys(second.collab, 'case:a', 'u')).length === 0 ? true : undefined),
    5_000,
    10
  )
  await again.close()
  assert.is((await updateKeys(second.collab, 'case:a')).length, 5)
  await second.db.close()
})

test.run()
