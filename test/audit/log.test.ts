import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { AuditLog } from '../../node/audit/log.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const entry = {
  event: 'query',
  action: 'E',
  outcome: 0,
  actor: { type: 'api', id: 'token' },
  detail: 'QIDO studies'
} as const

test('records chain across reopenings, concurrent appends keep order, and the chain verifies', async () => {
  const path = join(await tempDir(), 'audit.log')
  const first = new AuditLog(path)
  await first.open()
  await Promise.all(Array.from({ length: 50 }, async (_, i) => await first.append({ ...entry, detail: `n${i}` })))
  await first.close()
  const reopened = new AuditLog(path)
  await reopened.open()
  await reopened.append({ ...entry, detail: 'after reopen' })
  await reopened.close()
  const records = await AuditLog.read(path)
  assert.equal(
    records.map(r => r.seq),
    Array.from({ length: 51 }, (_, i) => i + 1)
  )
  assert.equal(
    records.slice(0, 50).map(r => r.detail),
    Array.from({ length: 50 }, (_, i) => `n${i}`)
  )
  assert.is(records[0]?.eventCode, '110112')
  assert.equal(await AuditLog.verify(path), { ok: true, records: 51 })
  assert.is(((await fs.stat(path)).mode & 0o777).toString(8), '600')
})

test(
  'after a write fails, that record and every later one ' + 'is refused with a reason, and the file still verifies',
  async () => {
    const path = join(await tempDir(), 'audit.log')
    const log = new AuditLog(path)
    await log.open()
    await log.append({ ...entry, detail: 'before' })
    // The file handle goes away under the log, as a failing disk would make every write fail.
    await (log as unknown as { handle: fs.FileHandle }).handle.close()
    const [failed, queued] = await Promise.allSettled([
      log.append({ ...entry, detail: 'lost' }),
      log.append({ ...entry, detail: 'queued' })
    ])
    for (const result of [failed, queued])
      assert.match(
        result.status === 'rejected' ? String(result.reason) : 'appended',
        /could not be written .* until it is restarted/
      )
    // The disk works again (space was freed): the log still refuses, or 'later' would chain to 'queued'.
    const internals = log as unknown as { handle: fs.FileHandle }
    internals.handle = await fs.open(path, 'a')
    const later = await log.append({ ...entry, detail: 'later' }).then(
      () => 'appended',
      (error: Error) => error.message
    )
    await internals.handle.close()
    assert.match(
      later,
      /could not be written/,
      'refused without writing: it would chain to a record the file does not hold'
    )
    assert.equal(await AuditLog.verify(path), { ok: true, records: 1 })
    const reopened = new AuditLog(path)
    await reopened.open()
    await reopened.append({ ...entry, detail: 'after restart' })
    await reopened.close()
    assert.equal(await AuditLog.verify(path), { ok: true, records: 2 })
  }
)

test('settled() waits for records appended without waiting', async () => {
  const path = join(await tempDir(), 'audit.log')
  const log = new AuditLog(path)
  await log.open()
  for (let i = 0; i < 20; i++) void log.append({ ...entry, detail: `n${i}` }, { durable: false })
  await log.settled()
  await log.close()
  assert.is((await AuditLog.read(path)).length, 20)
})

test('a hand-edited, removed or reordered record is caught and located', async () => {
  const path = join(await tempDir(), 'audit.log')
  const log = new AuditLog(path)
  await log.open()
  for (let i = 0; i < 5; i++) await log.append({ ...entry, detail: `n${i}` })
  await log.close()
  const original = await fs.readFile(path, 'utf8')
  const lines = original.trimEnd().split('\n')

  await fs.writeFile(path, original.replace('"detail":"n2"', '"detail":"n9"'))
  assert.equal(await AuditLog.verify(path), {
    ok: false,
    records: 5,
    brokenAt: 3,
    problem: 'record 3 was changed after it was written'
  })

  await fs.writeFile(path, `${[...lines.slice(0, 1), ...lines.slice(2)].join('\n')}\n`)
  const removed = await AuditLog.verify(path)
  assert.is(removed.ok ? 0 : removed.brokenAt, 2)

  await fs.writeFile(path, `${[lines[1], lines[0], ...lines.slice(2)].join('\n')}\n`)
  const reordered = await AuditLog.verify(path)
  assert.is(reordered.ok ? 0 : reordered.brokenAt, 1)
})

test.run()
