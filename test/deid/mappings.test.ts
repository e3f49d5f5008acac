/** The way back from a de-identified copy: kept sealed in the node's database, opened only with its key. */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { StorageKey } from '../../node/archive/sealing.ts'
import { DEID_SUBLEVEL, type DeidMapping, DeidMappings } from '../../node/deid/mappings.ts'
import { openDatabase } from '../../node/store/database.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const MAPPING: DeidMapping = {
  copyStudyUid: '2.25.1234',
  originalStudyUid: '1.2.826.0.1.3680043.99.1',
  uidMap: [
    ['1.2.826.0.1.3680043.99.1', '2.25.1234'],
    ['1.2.826.0.1.3680043.99.1.1', '2.25.5678']
  ],
  dateOffsetDays: -1234,
  madeAt: '2026-01-01T00:00:00.000Z'
}

test("a kept mapping reads back by the copy's UID, sealed at rest, and opens under no other key", async () => {
  const db = await openDatabase(join(await tempDir(), 'db'))
  try {
    const key = new StorageKey(randomBytes(32))
    const mappings = new DeidMappings(db, key)
    await mappings.keep(MAPPING)
    assert.equal(await mappings.get(MAPPING.copyStudyUid), MAPPING)
    assert.is(await mappings.get('2.25.999'), undefined)
    const sublevel = db.sublevel<string, Uint8Array>(DEID_SUBLEVEL, { valueEncoding: 'view' })
    const raw = await sublevel.get(MAPPING.copyStudyUid)
    assert.ok(raw !== undefined)
    assert.not.ok(Buffer.from(raw).includes(MAPPING.originalStudyUid), 'the original UID is readable at rest')
    try {
      await new DeidMappings(db, new StorageKey(randomBytes(32))).get(MAPPING.copyStudyUid)
      assert.unreachable('a mapping opened under another key')
    } catch (error) {
      assert.not.instance(error, assert.Assertion)
    }
  } finally {
    await db.close()
  }
})

test.run()
