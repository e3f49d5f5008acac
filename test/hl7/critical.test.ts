/** A critical result as HL7: ORU^R01 with result status P and table 0078's abnormal flag, the order it answers. */
import { Hl7Message } from '@medplum/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { CriticalResult } from '../../protocol/api/critical.ts'
import { criticalControlId, criticalOru } from '../../node/reports/hl7/critical.ts'
import { unescapeText } from '../../node/reports/hl7/oru.ts'
import type { StudyForReport } from '../../node/reports/sr.ts'

const STUDY: StudyForReport = {
  studyInstanceUid: '1.2.826.0.1.3680043.99.8',
  attributes: {
    '00080020': '20261206',
    '00080050': 'ACC-7',
    '00081030': 'CT HEAD',
    '00100010': 'DOE^JANE',
    '00100020': 'PAT-7',
    '00402016': 'PLACER-1',
    '00402017': 'FILLER-2'
  },
  instances: []
}

const CRITICAL: CriticalResult = {
  id: 'ab'.repeat(12),
  caseId: 'c0ffee00c0ffee00c0ffee00',
  studyInstanceUid: STUDY.studyInstanceUid,
  site: '12D3KooWSite',
  siteName: 'County Hospital',
  level: 'critical',
  text: 'Tension | pneumothorax ^ right.',
  by: '12D3KooWAlice',
  byName: 'Dr Alice',
  raisedAt: '2026-12-06T15:00:00.000Z',
  acknowledged: null,
  escalations: [],
  nextEscalationAt: null,
  overdue: false,
  calls: []
}

const field = (message: Hl7Message, segment: string, n: number): string =>
  message.getSegment(segment)?.getField(n)?.toString() ?? ''

test('a critical result is an ORU^R01 P whose one OBX is flagged AA, naming the order and the reader', () => {
  const sentAt = '2026-12-06T15:00:01.000Z'
  const message = Hl7Message.parse(criticalOru(CRITICAL, STUDY, { sentAt, sendingFacility: 'County Hospital' }))
  assert.is(field(message, 'MSH', 9), 'ORU^R01^ORU_R01')
  assert.is(field(message, 'MSH', 10), criticalControlId(CRITICAL.id))
  assert.equal(
    [2, 3].map(n => field(message, 'ORC', n)),
    ['PLACER-1', 'FILLER-2']
  )
  assert.equal(
    [2, 3, 18, 20, 25].map(n => field(message, 'OBR', n)),
    ['PLACER-1', 'FILLER-2', 'ACC-7', CRITICAL.caseId, 'P']
  )
  assert.is(message.getAllSegments('OBX').length, 1)
  assert.equal(
    [3, 8, 11].map(n => field(message, 'OBX', n)),
    ['RADMESH-CRITICAL^Critical result^L', 'AA', 'P']
  )
  assert.is(unescapeText(field(message, 'OBX', 5)), `CRITICAL: ${CRITICAL.text}`)
  assert.is(field(message, 'OBR', 32), '12D3KooWAlice&Dr Alice')
})

test('an urgent or unexpected result is flagged A; without order numbers the accession stands for both', () => {
  const study = { ...STUDY, attributes: { ...STUDY.attributes, '00402016': '', '00402017': '' } }
  for (const level of ['urgent', 'unexpected'] as const) {
    const message = Hl7Message.parse(
      criticalOru({ ...CRITICAL, level }, study, { sentAt: CRITICAL.raisedAt, sendingFacility: 'Site' })
    )
    assert.is(field(message, 'OBX', 8), 'A')
    assert.equal(
      [2, 3].map(n => field(message, 'OBR', n)),
      ['ACC-7', 'ACC-7']
    )
  }
  assert.is.not(criticalControlId(CRITICAL.id), criticalControlId('cd'.repeat(12)))
})

test.run()
