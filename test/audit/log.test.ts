import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { AuditLog } from '../../node/audit/log.ts'
import { tempDir } from '../helpers/processes.ts'

const entry = { event: 'query', action: 'E', outcome: 0, actor: { type: 'api', id: 'token' }, detail: 'QIDO studies' } as const

test('records chain across reopenings, concurrent appends keep order, and the chain verifies', async () => {
  const path = join(await tempDir(), 'audit.log')
  let log = new AuditLog(path)
  await log.open()
  await Promise.all(Array.from({ length: 50 }, async (_, i) => await log.append({ ...entry, detail: `n${i}` })))
  log = new AuditLog(path)
  await log.open()
  await log.append({ ...entry, detail: 'after reopen' })
  const records = await AuditLog.read(path)
  assert.equal(records.map(r => r.seq), Array.from({ length: 51 }, (_, i) => i + 1))
  assert.equal(records.slice(0, 50).map(r => r.detail), Array.from({ length: 50 }, (_, i) => `n${i}`))
  assert.is(records[0]?.eventCode, '110112')
  assert.equal(await AuditLog.verify(path), { ok: true, records: 51 })
  assert.is(((await fs.stat(path)).mode & 0o777).toString(8), '600')
})

test('a hand-edited, removed or reordered record is caught and located', async () => {
  const path = join(await tempDir(), 'audit.log')
  const log = new AuditLog(path)
  await log.open()
  for (let i = 0; i < 5; i++) await log.append({ ...entry, detail: `n${i}` })
  const original = await fs.readFile(path, 'utf8')
  const lines = original.trimEnd().split('\n')

  await fs.writeFile(path, original.replace('"detail":"n2"', '"detail":"n9"'))
  assert.equal(await AuditLog.verify(path), { ok: false, records: 5, brokenAt: 3, problem: 'record 3 was changed after it was written' })

  await fs.writeFile(path, `${[...lines.slice(0, 1), ...lines.slice(2)].join('\n')}\n`)
  const removed = await AuditLog.verify(path)
  assert.is(removed.ok ? 0 : removed.brokenAt, 2)

  await fs.writeFile(path, `${[lines[1], lines[0], ...lines.slice(2)].join('\n')}\n`)
  const reordered = await AuditLog.verify(path)
  assert.is(reordered.ok ? 0 : reordered.brokenAt, 1)
})

test.run()
