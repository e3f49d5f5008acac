/**
 * Critical results from a case's records: who may raise and acknowledge them, how they escalate as their level's
 * deadline passes (a fake clock), and the site's notices to its call list (a webhook receiver in the test).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pino } from 'pino'
import { test } from 'uvu'
import { type Member, member, signedCase } from './records-helpers.ts'
import * as assert from 'uvu/assert'
import { UpdateRefusedError } from '../../node/crdt/inspect.ts'
import { type CaseState, deriveCases } from '../../node/worklist/cases.ts'
import {
  criticalSettings,
  DEFAULT_CRITICAL_SETTINGS,
  escalationOf,
  summariseCriticalAck
} from '../../node/worklist/critical.ts'
import { checkCriticalAuthors } from '../../node/worklist/critical-check.ts'
import type { CriticalNotice } from '../../node/worklist/critical-notice.ts'
import { CriticalResults } from '../../node/worklist/critical-results.ts'
import { signWorklistRecord } from '../../node/worklist/records.ts'
import {
  decodeWorklistRecord,
  type UnsignedWorklistRecord,
  type WorklistRecord
} from '../../protocol/collab/records.ts'

const CASE = 'c'.repeat(24)
const ID = '1'.repeat(24)
const STUDY = '1.2.826.0.1.3680043.8.498.9'
const T0 = Date.UTC(2026, 10, 28, 3, 0)
const at = (minute: number): string => new Date(T0 + minute * 60_000).toISOString()

let site: Member, reader: Member, stranger: Member
test.before(async () => {
  ;[site, reader, stranger] = await Promise.all([member(), member(), member()])
})

const sign = async (who: Member, record: Record<string, unknown>): Promise<WorklistRecord> =>
  await signWorklistRecord(who.key, { ...record, v: 1, by: who.id } as unknown as UnsignedWorklistRecord)
const caseRecord = async (): Promise<WorklistRecord> =>
  await signedCase(site, { caseId: CASE, studyUid: STUDY, readers: [reader], createdAt: at(0), dueAt: at(60) })
const flag = async (who: Member, minute = 1, id = ID): Promise<WorklistRecord> =>
  await sign(who, {
    kind: 'critical',
    caseId: CASE,
    id,
    level: 'critical',
    text: 'acute subdural haematoma, 9 mm',
    at: at(minute)
  })
const ack = async (who: Member, minute: number): Promise<WorklistRecord> =>
  await sign(who, {
    kind: 'critical-ack',
    caseId: CASE,
    criticalId: ID,
    name: 'Dr Ward',
    role: 'ED attending',
    at: at(minute)
  })

test('a critical record decodes to itself; too long a text or an unknown level is refused', async () => {
  const record = await flag(reader)
  assert.equal(decodeWorklistRecord(JSON.parse(JSON.stringify(record))), record)
  assert.throws(() => decodeWorklistRecord({ ...record, text: 'x'.repeat(501) }), /longer than 500/)
  assert.throws(() => decodeWorklistRecord({ ...record, level: 'mild' }), /must be one of/)
  const acknowledgement = await ack(site, 2)
  assert.throws(() => decodeWorklistRecord({ ...acknowledgement, name: ' ' }), /must name who/)
})

test('a reader flags, the site acknowledges: the case says who took it and when', async () => {
  const state = deriveCases([await caseRecord(), await flag(reader), await ack(site, 7)]).get(CASE) as CaseState
  const [fact] = state.critical ?? []
  assert.is(fact?.level, 'critical')
  assert.equal(fact?.ack, { by: site.id, name: 'Dr Ward', role: 'ED attending', at: at(7) })
  assert.equal(summariseCriticalAck(state.critical ?? [])[0], {
    level: 'critical',
    raised: 1,
    acknowledged: 1,
    medianAckMinutes: 6,
    maxAckMinutes: 6
  })
})

test('a critical result by a non-reader, or an ack not by the site, counts for nothing', async () => {
  const state = deriveCases([
    await caseRecord(),
    await flag(stranger),
    await flag(reader, 2, '2'.repeat(24)),
    await ack(stranger, 3)
  ]).get(CASE) as CaseState
  assert.equal(
    state.critical?.map(f => [f.id, f.ack]),
    [['2'.repeat(24), null]]
  )
})

const escalation = async (who: Member, minute: number, step: number, notify: string): Promise<WorklistRecord> =>
  await sign(who, { kind: 'critical-escalation', caseId: CASE, criticalId: ID, step, notify, at: at(minute) })

test("escalations are the site's records, one per step: a replay, a second record of a step or a reader's count for nothing", async () => {
  const first = await escalation(site, 61, 1, 'Chief')
  assert.equal(decodeWorklistRecord(first), first)
  assert.throws(() => decodeWorklistRecord({ ...first, step: -1 }), /step must be 0/)
  const state = deriveCases([
    await caseRecord(),
    await flag(reader),
    await escalation(site, 1, 0, 'Ward'),
    first,
    first,
    await escalation(site, 62, 1, 'Someone else'),
    await escalation(reader, 63, 2, 'Forged')
  ]).get(CASE) as CaseState
  assert.equal(
    state.critical?.[0]?.told?.map(s => [s.step, s.notify, s.at]),
    [
      [0, 'Ward', at(1)],
      [1, 'Chief', at(61)]
    ]
  )
  let refused: unknown
  try {
    checkCriticalAuthors(state, [await escalation(reader, 63, 2, 'Forged')])
  } catch (error) {
    refused = error
  }
  assert.instance(refused, UpdateRefusedError, 'only the site escalates')
})

test('the update check refuses a flag by a non-reader and an acknowledgement by anyone but the site', async () => {
  const state = deriveCases([await caseRecord()]).get(CASE) as CaseState
  checkCriticalAuthors(state, [await flag(reader), await ack(site, 2)])
  let refused: unknown
  try {
    checkCriticalAuthors(state, [await flag(stranger)])
  } catch (error) {
    refused = error
  }
  assert.instance(refused, UpdateRefusedError)
  refused = undefined
  try {
    checkCriticalAuthors(state, [await ack(reader, 2)])
  } catch (error) {
    refused = error
  }
  assert.instance(refused, UpdateRefusedError)
})

test('unacknowledged, it escalates once per deadline to the next person on the list, up to the last', async () => {
  const fact = (deriveCases([await caseRecord(), await flag(reader, 0)]).get(CASE) as CaseState).critical?.[0]
  if (fact === undefined) throw new Error('no critical result')
  const settings = { deadlines: { critical: 60, urgent: 240, unexpected: 1440 }, callList: ['Ward', 'Chief', 'Admin'] }
  assert.equal(
    escalationOf(fact, settings, T0 + 59 * 60_000).steps.map(s => s.notify),
    ['Ward']
  )
  assert.is(escalationOf(fact, settings, T0 + 59 * 60_000).overdue, false)
  const later = escalationOf(fact, settings, T0 + 61 * 60_000)
  assert.equal(
    later.steps.map(s => [s.step, s.at, s.notify]),
    [
      [0, at(0), 'Ward'],
      [1, at(60), 'Chief']
    ]
  )
  assert.is(later.nextAt, at(120))
  assert.is(later.overdue, true)
  assert.equal(
    escalationOf(fact, settings, T0 + 600 * 60_000).steps.map(s => s.notify),
    ['Ward', 'Chief', 'Admin']
  )
  assert.is(escalationOf(fact, settings, T0 + 600 * 60_000).nextAt, null)
  const acked = { ...fact, ack: { by: site.id, name: 'Ward', role: '', at: at(30) } }
  assert.equal(escalationOf(acked, settings, T0 + 600 * 60_000).steps.length, 1)
})

test('routing.json critical settings: defaults, fractions of a minute, and refusals', () => {
  assert.equal(criticalSettings(undefined), DEFAULT_CRITICAL_SETTINGS)
  assert.equal(criticalSettings({ deadlines: { critical: 0.05 } }), {
    deadlines: { critical: 0.05, urgent: 240, unexpected: 1440 },
    callList: []
  })
  assert.type(criticalSettings({ deadlines: { urgent: 0 } }), 'string')
  assert.type(criticalSettings({ callList: [3] }), 'string')
})

test('the site tells its webhook at once and when the deadline passes; nothing more once acknowledged', async () => {
  const notices: CriticalNotice[] = []
  const receiver = createServer((request, response) => {
    let body = ''
    request.on('data', chunk => {
      body += chunk
    })
    request.on('end', () => {
      notices.push(JSON.parse(body) as CriticalNotice)
      response.end()
    })
  })
  await new Promise<void>(resolve => receiver.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/notify`
  let records: WorklistRecord[] = [await caseRecord()]
  let listener: ((changed: WorklistRecord[]) => void) | undefined
  let now = T0
  const audited: string[] = []
  const service = new CriticalResults({
    peerId: site.id,
    worklist: {
      onChange: l => {
        listener = l
        return () => {}
      },
      allCases: () => [...deriveCases(records).values()],
      requireCase: () => {
        throw new Error('unused')
      },
      // The site's escalation records come back as the worklist would hand them on.
      add: async <R extends UnsignedWorklistRecord>(record: R) => {
        assert.is(record.kind, 'critical-escalation', 'the site writes escalation records only')
        const signed = await sign(site, record as unknown as Record<string, unknown>)
        arrive(signed)
        return signed as unknown as R & { signature: string }
      },
      nameOf: peer => (peer === reader.id ? 'Dr Reader' : peer)
    },
    audit: {
      append: async entry => {
        audited.push(entry.detail ?? '')
        return undefined as never
      }
    },
    settings: { deadlines: { critical: 60, urgent: 240, unexpected: 1440 }, callList: ['Ward', url, 'Chief'] },
    log: pino({ level: 'silent' }),
    now: () => now
  })
  service.start()
  const arrive = (record: WorklistRecord): void => {
    records = [...records, record]
    listener?.([record])
  }
  const settled = async (): Promise<void> => {
    await service.stop()
    service.start()
  }
  try {
    now = T0 + 60_000
    arrive(await flag(reader, 1))
    await settled()
    assert.equal(
      notices.map(n => [n.event, n.step, n.notify]),
      [['critical-raised', 0, 'Ward']]
    )
    assert.is(notices[0]?.critical.byName, 'Dr Reader')
    now = T0 + 62 * 60_000
    service.check()
    await settled()
    assert.equal(notices.map(n => [n.event, n.step, n.notify]).at(-1), ['critical-escalated', 1, 'Chief'])
    arrive(await ack(site, 63))
    now = T0 + 500 * 60_000
    service.check()
    await settled()
    assert.is(notices.length, 2)
    assert.equal(service.list()[0]?.acknowledged, { by: 'Dr Ward', role: 'ED attending', at: at(63) })
    assert.ok(audited.some(detail => detail.includes('escalated to step 1')))
    // Each step told is a record of the site's; a restart (settled) told nothing twice.
    const escalations = records.filter(r => r.kind === 'critical-escalation')
    assert.equal(
      escalations.map(r => [r.by, (r as { step: number }).step, (r as { notify: string }).notify]),
      [
        [site.id, 0, 'Ward'],
        [site.id, 1, 'Chief']
      ]
    )
    assert.equal(
      service.list()[0]?.escalations.map(s => [s.step, s.notify]),
      [
        [0, 'Ward'],
        [1, 'Chief']
      ]
    )
  } finally {
    await service.stop()
    receiver.close()
  }
})

test.run()
