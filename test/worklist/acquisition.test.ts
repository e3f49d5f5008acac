import { test } from 'uvu'
import { type Member, member, signedCase } from './records-helpers.ts'
import * as assert from 'uvu/assert'
import { deriveCases } from '../../node/worklist/cases.ts'
import { signWorklistRecord } from '../../node/worklist/records.ts'
import { decodeWorklistRecord, type WorklistRecord } from '../../protocol/collab/records.ts'

const CASE = 'b'.repeat(24)
const STUDY = '1.2.826.0.1.3680043.8.498.8'
const at = (second: number): string => new Date(Date.UTC(2026, 11, 7, 3, 0, second)).toISOString()

const caseRecord = async (site: Member, reader: Member, acquiring: boolean): Promise<WorklistRecord> =>
  await signedCase(site, {
    caseId: CASE,
    studyUid: STUDY,
    readers: [reader],
    createdAt: at(0),
    dueAt: at(3600),
    acquiring
  })
const acquired = async (by: Member, instances: number): Promise<WorklistRecord> =>
  await signWorklistRecord(by.key, { v: 1, kind: 'acquired', caseId: CASE, instances, by: by.id, at: at(30) })

test('an acquiring case is arriving until its site says the study is complete, in any order of records', async () => {
  const [site, reader] = [await member(), await member()]
  const published = await caseRecord(site, reader, true)
  const done = await acquired(site, 200)
  assert.is(deriveCases([published]).get(CASE)?.arriving, true)
  assert.is(deriveCases([published, done]).get(CASE)?.arriving, undefined)
  assert.is(deriveCases([done, published]).get(CASE)?.arriving, undefined)
  const state = deriveCases([published]).get(CASE)
  assert.is(state?.createdAt, at(0), 'the case counts from its creation at the first instance')
  assert.is(state?.dueAt, at(3600))
})

test('only the case site completes an acquiring case; a case published stable is complete from the start', async () => {
  const [site, reader] = [await member(), await member()]
  const published = await caseRecord(site, reader, true)
  assert.is(deriveCases([published, await acquired(reader, 200)]).get(CASE)?.arriving, true)
  assert.is(deriveCases([await caseRecord(site, reader, false)]).get(CASE)?.arriving, undefined)
})

test('acquiring and acquired records decode; malformed ones are refused with a reason', async () => {
  const [site, reader] = [await member(), await member()]
  const published = await caseRecord(site, reader, true)
  assert.equal(decodeWorklistRecord(JSON.parse(JSON.stringify(published))), published)
  const done = await acquired(site, 12)
  assert.equal(decodeWorklistRecord(JSON.parse(JSON.stringify(done))), done)
  assert.throws(() => decodeWorklistRecord({ ...published, acquiring: false }), /acquiring must be true/)
  assert.throws(() => decodeWorklistRecord({ ...done, instances: 0 }), /instances must be 1 or more/)
  assert.throws(() => decodeWorklistRecord({ ...done, instances: 1.5 }), /instances/)
  assert.throws(() => decodeWorklistRecord({ ...done, extra: 1 }), /fields it must not have/)
})

test.run()
