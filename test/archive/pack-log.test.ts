/**
 * The pack log is the archive's only synced write per store. These tests make the crashes it must survive
 * on a real LevelDB and real files:
 * - a power loss that drops what LevelDB and the audit log had not synced (their state from before is put
 *   back, as a disk that lost its page cache would leave them);
 * - a crash in the middle of an append (a torn entry at the end of a pack, a torn audit line).
 * (`kill -9` during a C-STORE, where nothing but the process dies, is tested end to end in e2e/archive.)
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { sha256Hex } from '../../node/hash.ts'
import { AuditLog } from '../../node/audit/log.ts'
import { openArchive } from '../helpers/archive.ts'
import { PYDICOM_CORPUS } from '../../scripts/lib/pydicom-corpus.ts'
import { replaceSameLength } from '../helpers/dicom.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const actor = { type: 'cli', id: 'test' } as const
const original = await fs.readFile(join(PYDICOM_CORPUS, 'CT_small.dcm'))

/**
 * CT_small with another SOP Instance UID (its last digits `last`, in the meta information and the data set):
 * same study and series.
 */
async function sibling(last: string): Promise<Buffer> {
  const home = await tempDir()
  const { archive, close } = await openArchive(home)
  const { instance } = await archive.store(original, actor)
  await close()
  await fs.rm(home, { recursive: true, force: true })
  const uid = instance.sopUid
  const other = `${uid.slice(0, -last.length)}${last}`
  if (other === uid) throw new Error(`${last} gives CT_small's own SOP Instance UID`)
  return replaceSameLength(replaceSameLength(original, uid, other), uid, other)
}

const storeRecordsOf = async (auditPath: string, sopUid: string): Promise<number> =>
  (await AuditLog.read(auditPath)).filter(
    r =>
      r.event === 'instancesTransferred' &&
      r.detail?.startsWith('stored') === true &&
      r.instances?.includes(sopUid) === true
  ).length

test(
  'after a power loss that dropped the unsynced index and audit ' +
    'writes, every stored instance is back from the pack log',
  async () => {
    const home = await tempDir()
    const files = [original, await sibling('7'), await sibling('8')]
    let opened = await openArchive(home)
    const first = await opened.archive.store(files[0] as Buffer, actor)
    await opened.close()
    // What LevelDB and the audit log hold on disk now; the next stores' index and audit writes are not synced.
    await fs.cp(join(home, 'db'), join(home, 'db-before'), { recursive: true })
    const auditBefore = await fs.readFile(join(home, 'audit.log'))

    opened = await openArchive(home)
    const later = [
      await opened.archive.store(files[1] as Buffer, actor),
      await opened.archive.store(files[2] as Buffer, actor)
    ]
    assert.equal(
      later.map(r => r.outcome),
      ['stored', 'stored']
    )
    await opened.close()
    // The power loss: both lose what they had not synced. The pack log was synced before each Success.
    await fs.rm(join(home, 'db'), { recursive: true })
    await fs.rename(join(home, 'db-before'), join(home, 'db'))
    await fs.writeFile(join(home, 'audit.log'), auditBefore)

    opened = await openArchive(home)
    assert.equal(opened.replayed.filter(c => c.recovered).length, 2, 'the two commits the index lost are replayed')
    for (const [i, { instance }] of [first, ...later].entries()) {
      const stored = await opened.archive.instance(instance.sopUid)
      assert.ok(stored, `instance ${i + 1} is in the index`)
      assert.is(
        sha256Hex(await opened.archive.read(stored)),
        sha256Hex(files[i] as Buffer),
        `instance ${i + 1} reads back byte-identical`
      )
    }
    const study = await opened.archive.study(first.instance.studyUid)
    assert.equal(
      [study?.instanceCount, study?.seriesCount, study?.bytes],
      [3, 1, original.byteLength * 3],
      'the aggregates are those after the last store'
    )
    const listed: string[] = []
    for await (const instance of opened.archive.instancesOf(first.instance.studyUid)) listed.push(instance.sopUid)
    assert.is(listed.length, 3)
    assert.is(opened.recoveredAudits, 2)
    for (const { instance } of later)
      assert.is(await storeRecordsOf(opened.audit, instance.sopUid), 1, 'the lost store record is appended again, once')
    assert.equal(await AuditLog.verify(opened.audit), { ok: true, records: (await AuditLog.read(opened.audit)).length })
    await opened.close()

    // Opening again replays nothing new and appends no record twice.
    opened = await openArchive(home)
    assert.is(opened.recoveredAudits, 0)
    assert.is(opened.replayed.filter(c => c.recovered).length, 0)
    for (const { instance } of later) assert.is(await storeRecordsOf(opened.audit, instance.sopUid), 1)
    await opened.close()
    await fs.rm(home, { recursive: true, force: true })
  }
)

test(
  'a pack and an audit log torn by a crash mid-append: the node ' +
    'opens, stored instances are intact, new ones go to a new pack',
  async () => {
    const home = await tempDir()
    const second = await sibling('7')
    let opened = await openArchive(home)
    const first = await opened.archive.store(original, actor)
    await opened.close()
    // A crash in the middle of the next append: an entry header whose body never reached the disk, half an audit line.
    const header = Buffer.alloc(12)
    header.write('RMPK', 0, 'latin1')
    header.writeUInt8(1, 4)
    header.writeUInt32BE(1_000_000, 8)
    await fs.appendFile(join(home, 'chunks', 'pack-000001.dat'), Buffer.concat([header, Buffer.alloc(300, 7)]))
    await fs.appendFile(join(home, 'audit.log'), '{"seq":99,"time":"2026-')

    opened = await openArchive(home)
    assert.is(sha256Hex(await opened.archive.read(first.instance)), sha256Hex(original))
    assert.equal(
      await AuditLog.verify(opened.audit),
      { ok: true, records: (await AuditLog.read(opened.audit)).length },
      'the torn audit line is cut off'
    )
    const next = await opened.archive.store(second, actor)
    assert.is(next.outcome, 'stored')
    await opened.close()
    assert.equal(
      (await fs.readdir(join(home, 'chunks'))).sort(),
      ['pack-000001.dat', 'pack-000002.dat'],
      'the torn pack is left as it is; appends go on in a new one'
    )

    // Past the torn pack, the new one is replayed too: an index that lost the second store (and its checkpoint)
    // gets it back.
    opened = await openArchive(home)
    await opened.db.sublevel('pack-log', { valueEncoding: 'json' }).del('checkpoint')
    await opened.db.sublevel('archive', { valueEncoding: 'view' }).del(`i!${next.instance.sopUid}`)
    assert.is(await opened.archive.instance(next.instance.sopUid), undefined)
    await opened.close()
    opened = await openArchive(home)
    assert.ok(await opened.archive.instance(next.instance.sopUid), 'the second store is back in the index')
    assert.is(sha256Hex(await opened.archive.read(next.instance)), sha256Hex(second))
    assert.is((await opened.archive.study(first.instance.studyUid))?.instanceCount, 2)
    await opened.close()
    await fs.rm(home, { recursive: true, force: true })
  }
)

test('packs of the earlier, unframed format stay readable; new entries go to a pack of their own', async () => {
  const home = await tempDir()
  await fs.mkdir(join(home, 'chunks'), { recursive: true })
  // Bytes with no entry frame, as packs were written before the pack log (nothing in the index points here).
  await fs.writeFile(join(home, 'chunks', 'pack-000001.dat'), Buffer.alloc(4096, 0x5a))
  let opened = await openArchive(home)
  const { instance } = await opened.archive.store(original, actor)
  await opened.close()
  assert.equal((await fs.readdir(join(home, 'chunks'))).sort(), ['pack-000001.dat', 'pack-000002.dat'])
  opened = await openArchive(home)
  assert.is(sha256Hex(await opened.archive.read(instance)), sha256Hex(original))
  await opened.close()
  await fs.rm(home, { recursive: true, force: true })
})

test(
  'a store is answered once durable; if the index then ' + 'cannot be written, reads say so and a restart replays it',
  async () => {
    const home = await tempDir()
    let opened = await openArchive(home)
    const db = opened.db as unknown as { batch: (...args: unknown[]) => Promise<void> }
    const batch = db.batch.bind(db)
    // The boundary stubbed: LevelDB refuses the index batches (a full disk, say). The pack write still works.
    db.batch = async () => {
      throw new Error('IO error: No space left on device')
    }
    const { outcome, instance } = await opened.archive.store(original, actor)
    assert.is(outcome, 'stored')
    await opened.archive.instance(instance.sopUid).then(
      () => assert.unreachable('a read answered from an index that misses a store'),
      (error: Error) => {
        assert.match(error.message, /restart the node to replay/)
      }
    )
    db.batch = batch
    await opened.close()
    opened = await openArchive(home)
    assert.is(
      sha256Hex(await opened.archive.read((await opened.archive.instance(instance.sopUid)) as typeof instance)),
      sha256Hex(original)
    )
    await opened.close()
    await fs.rm(home, { recursive: true, force: true })
  }
)

/** Resolves once the store's pack file has grown to `bytes` (zero-filling runs in the background). */
async function packSize(home: string, pack: string, bytes: number): Promise<void> {
  for (let waited = 0; waited < 20_000; waited += 20) {
    if ((await fs.stat(join(home, 'chunks', pack)).catch(() => undefined))?.size === bytes) return
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  assert.unreachable(`${pack} never reached ${bytes} bytes`)
}

const PREALLOCATE = 256 * 1024

test(
  'zero-filled space ahead: stores write into it, past it ' +
    'they append, and a restart goes on where the entries end',
  async () => {
    const home = await tempDir()
    const files = [
      original,
      ...(await Promise.all(['31', '32', '33', '34', '35', '36', '37', '38', '39'].map(sibling)))
    ]
    let opened = await openArchive(home, 60_000, { preallocate: PREALLOCATE })
    await packSize(home, 'pack-000001.dat', PREALLOCATE)
    const first = await opened.archive.store(files[0] as Buffer, actor)
    assert.is(
      (await fs.stat(join(home, 'chunks', 'pack-000001.dat'))).size,
      PREALLOCATE,
      'the first store wrote inside the filled space'
    )
    // Ten CT_small copies (about 40 kB each) run past 256 kB: the rest is appended.
    for (const file of files.slice(1)) await opened.archive.store(file, actor)
    const grown = (await fs.stat(join(home, 'chunks', 'pack-000001.dat'))).size
    assert.ok(grown > PREALLOCATE, `the pack grew past the filled space (${grown} bytes)`)
    await opened.close()

    opened = await openArchive(home, 60_000, { preallocate: PREALLOCATE })
    const eleventh = await opened.archive.store(await sibling('40'), actor)
    assert.is(eleventh.outcome, 'stored')
    await opened.close()
    opened = await openArchive(home, 60_000, { preallocate: PREALLOCATE })
    assert.equal(
      (await fs.readdir(join(home, 'chunks'))).sort(),
      ['pack-000001.dat'],
      'no pack was abandoned: the zeros after the entries are space, not a torn entry'
    )
    assert.is((await opened.archive.study(first.instance.studyUid))?.instanceCount, 11)
    for await (const instance of opened.archive.instancesOf(first.instance.studyUid))
      await opened.archive.read(instance)
    await opened.close()
    await fs.rm(home, { recursive: true, force: true })
  }
)

test(
  'a commit whose chunk did not reach the disk whole ' + 'is not replayed, and writing goes on in a new pack',
  async () => {
    const home = await tempDir()
    const second = await sibling('7')
    let opened = await openArchive(home, 60_000, { preallocate: PREALLOCATE })
    await packSize(home, 'pack-000001.dat', PREALLOCATE)
    const first = await opened.archive.store(original, actor)
    const next = await opened.archive.store(second, actor)
    // The index follows the answer: a read waits for it, and then the index holds the second store.
    assert.ok(await opened.archive.instance(next.instance.sopUid))
    // A power loss during the second store's write: its commit entry persisted, a page of its chunk did not.
    // The index lost the store's unsynced batch: the instance, its chunk's location and the checkpoint.
    const locations = opened.db.sublevel<string, { pack: number; offset: number; length: number }>('chunk-locations', {
      valueEncoding: 'json'
    })
    const [key, chunk] = (await locations.iterator().all()).sort((a, b) => b[1].offset - a[1].offset)[0] as [
      string,
      { offset: number }
    ]
    await locations.del(key)
    await opened.db.sublevel('pack-log', { valueEncoding: 'json' }).del('checkpoint')
    await opened.db.sublevel('archive', { valueEncoding: 'view' }).del(`i!${next.instance.sopUid}`)
    await opened.close()
    const handle = await fs.open(join(home, 'chunks', 'pack-000001.dat'), 'r+')
    await handle.write(Buffer.alloc(4096), 0, 4096, chunk.offset + 100)
    await handle.close()

    opened = await openArchive(home, 60_000, { preallocate: PREALLOCATE })
    assert.is(await opened.archive.instance(next.instance.sopUid), undefined, 'the damaged store stays invisible')
    assert.is(sha256Hex(await opened.archive.read(first.instance)), sha256Hex(original))
    assert.is(
      (await opened.archive.study(first.instance.studyUid))?.instanceCount,
      1,
      'the aggregates are those of the last whole commit'
    )
    assert.is((await opened.archive.store(second, actor)).outcome, 'stored', "the sender's retry stores it")
    await opened.close()
    assert.equal((await fs.readdir(join(home, 'chunks'))).sort(), ['pack-000001.dat', 'pack-000002.dat'])
    opened = await openArchive(home, 60_000, { preallocate: PREALLOCATE })
    assert.is((await opened.archive.study(first.instance.studyUid))?.instanceCount, 2)
    assert.is(
      sha256Hex(
        await opened.archive.read(
          (await opened.archive.instance(next.instance.sopUid)) as NonNullable<
            Awaited<ReturnType<typeof opened.archive.instance>>
          >
        )
      ),
      sha256Hex(second)
    )
    await opened.close()
    await fs.rm(home, { recursive: true, force: true })
  }
)

test.run()
