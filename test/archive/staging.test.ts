/**
 * Staged chunks (`ChunkStore.stage`): an image's synced write begins before its hash is taken, and its commit
 * entry is written while that write may still run. On a real LevelDB and real pack files:
 * - a commit that names a staged chunk makes it readable at once, and again after a replay from the packs;
 * - a staged chunk that no commit names stays invisible;
 * - a staged chunk may lie in the pack before its commit's (the pack filled up in between), and replays;
 * - a staged write that fails fails the commit that names it, and appends go on in a new pack.
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ChunkStore } from '../../node/archive/chunks.ts'
import { IncomingObject } from '../../node/archive/incoming.ts'
import type { ReplayedCommit, SealedChunk } from '../../node/archive/pack/index.ts'
import { StorageKey } from '../../node/archive/sealing.ts'
import { type Database, openDatabase } from '../../node/store/database.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const key = new StorageKey(randomBytes(32))

interface Opened {
  store: ChunkStore
  db: Database
  replayed: ReplayedCommit[]
  close(): Promise<void>
}

async function open(home: string, options: { packLimit?: number } = {}): Promise<Opened> {
  const db = await openDatabase(join(home, 'db'))
  const store = new ChunkStore({ db, key }, { root: join(home, 'chunks'), ...options })
  const replayed = await store.open()
  return {
    store,
    db,
    replayed,
    close: async () => {
      await store.close()
      await db.close()
    }
  }
}

/** Sealed as the archive seals an arriving image: the pieces to stage, then the id (hashed after). */
function sealed(bytes: Buffer): { pieces: SealedChunk; id: string } {
  const incoming = new IncomingObject(key, 4 * 1024 * 1024)
  incoming.write(bytes)
  const [pieces] = incoming.seal().chunks
  const [chunk] = incoming.identify().chunks
  return { pieces: pieces as SealedChunk, id: (chunk as SealedChunk).id }
}

/** Stages a chunk, then commits it the way the archive does; resolves with its id once the commit is durable. */
async function stageAndCommit(store: ChunkStore, bytes: Buffer, note: string): Promise<string> {
  const { pieces, id } = sealed(bytes)
  const staged = store.stage(pieces)
  await store.commit({ chunks: [{ id, staged }], puts: [], note })
  return id
}

/** As a power loss that dropped LevelDB's unsynced writes would leave it: no checkpoint, no chunk locations. */
async function loseIndex(db: Database): Promise<void> {
  await db.sublevel('pack-log', { valueEncoding: 'json' }).clear()
  await db.sublevel('chunk-locations', { valueEncoding: 'json' }).clear()
}

test('a staged chunk named by a commit reads back at once, and after a replay from the packs', async () => {
  const home = await tempDir()
  const bytes = randomBytes(300_000)
  let opened = await open(home)
  const id = await stageAndCommit(opened.store, bytes, 'one')
  assert.ok((await opened.store.get(id)).equals(bytes))
  await loseIndex(opened.db)
  await opened.close()

  opened = await open(home)
  assert.equal(
    opened.replayed.map(({ note }) => note),
    ['one']
  )
  assert.ok((await opened.store.get(id)).equals(bytes), 'replayed from the pack log')
  await opened.close()
  await fs.rm(home, { recursive: true, force: true })
})

test('a staged chunk no commit names stays invisible; the stores around it are kept', async () => {
  const home = await tempDir()
  let opened = await open(home)
  const before = await stageAndCommit(opened.store, randomBytes(1000), 'before')
  const orphan = sealed(randomBytes(2000))
  await (await opened.store.stage(orphan.pieces)).durable
  const after = await stageAndCommit(opened.store, randomBytes(3000), 'after')
  assert.is(await opened.store.has(orphan.id), false)
  await loseIndex(opened.db)
  await opened.close()

  opened = await open(home)
  assert.equal(
    opened.replayed.map(({ note }) => note),
    ['before', 'after']
  )
  assert.ok(await opened.store.has(before))
  assert.ok(await opened.store.has(after))
  assert.is(await opened.store.has(orphan.id), false)
  await opened.close()
  await fs.rm(home, { recursive: true, force: true })
})

test(
  'a staged chunk in the pack before its commit (the ' + 'pack filled up in between) reads back and replays',
  async () => {
    const home = await tempDir()
    const packLimit = 100_000
    const bytes = randomBytes(150_000)
    let opened = await open(home, { packLimit })
    // The staged chunk takes pack 1 past its limit; the commit entry then goes to pack 2.
    const id = await stageAndCommit(opened.store, bytes, 'across')
    assert.equal((await fs.readdir(join(home, 'chunks'))).sort(), ['pack-000001.dat', 'pack-000002.dat'])
    assert.ok((await opened.store.get(id)).equals(bytes))
    await loseIndex(opened.db)
    await opened.close()

    opened = await open(home, { packLimit })
    assert.equal(
      opened.replayed.map(({ note }) => note),
      ['across']
    )
    assert.ok((await opened.store.get(id)).equals(bytes), 'the commit in pack 2 finds its chunk in pack 1')
    await opened.close()
    await fs.rm(home, { recursive: true, force: true })
  }
)

test('a staged write that fails fails the commit that names it; the next store goes to a new pack', async () => {
  const home = await tempDir()
  let opened = await open(home)
  await stageAndCommit(opened.store, randomBytes(1000), 'first')
  // The boundary stubbed: the pack's next write fails (an I/O error), after a part of it reached the file.
  const appender = (opened.store as unknown as { writer: { appender: FileHandle } }).writer.appender
  const writev = appender.writev.bind(appender)
  const failOnce = async (_buffers: readonly NodeJS.ArrayBufferView[], position?: number): Promise<never> => {
    appender.writev = writev
    await appender.write(Buffer.from('RMPK torn'), 0, 9, position ?? null)
    throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })
  }
  appender.writev = failOnce as FileHandle['writev']
  const failed = sealed(randomBytes(2000))
  await opened.store
    .commit({ chunks: [{ id: failed.id, staged: opened.store.stage(failed.pieces) }], puts: [], note: 'failed' })
    .then(
      () => assert.unreachable('a commit answered though its chunk was not written'),
      (error: Error) => {
        assert.match(error.message, /EIO/)
      }
    )
  const next = randomBytes(3000)
  const id = await stageAndCommit(opened.store, next, 'next')
  assert.equal((await fs.readdir(join(home, 'chunks'))).sort(), ['pack-000001.dat', 'pack-000002.dat'])
  assert.is(await opened.store.has(failed.id), false)
  await loseIndex(opened.db)
  await opened.close()

  opened = await open(home)
  assert.equal(
    opened.replayed.map(({ note }) => note),
    ['first', 'next']
  )
  assert.ok((await opened.store.get(id)).equals(next))
  assert.is(await opened.store.has(failed.id), false)
  await opened.close()
  await fs.rm(home, { recursive: true, force: true })
})

test.run()
