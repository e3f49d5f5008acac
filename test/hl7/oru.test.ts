/** The ORU^R01 builder: segments and fields, escaping of report text, result statuses, and the ACK reader. */
import { Hl7Message } from '@medplum/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { escapeText, hl7Time, oruR01, parseAck, unescapeText } from '../../node/reports/hl7/oru.ts'
import type { FinalReport, StudyForReport } from '../../node/reports/sr.ts'

const STUDY: StudyForReport = {
  studyInstanceUid: '1.2.826.0.1.3680043.99.7',
  attributes: {
    '00080020': '20261206',
    '00080030': '143005.25',
    '00080050': 'ACC-42',
    '00081030': 'CT HEAD STROKE',
    '00080090': 'HOUSE^GREGORY^^DR',
    '00100010': 'MÜLLER^JOSÉ',
    '00100020': 'PAT|001',
    '00100030': '19700102',
    '00100040': 'M'
  },
  instances: []
}

const REPORT: FinalReport = {
  caseId: 'c0ffee00c0ffee00c0ffee00',
  status: 'FINAL',
  sections: {
    indication: 'Left weakness.',
    technique: '',
    comparison: '',
    findings: 'A|B^C&D~E\\F\nsecond line',
    impression: 'No bleed.'
  },
  signers: [{ peerId: '12D3KooWAlice', name: 'Dr Alice Neuro', status: 'FINAL', signedAt: '2026-12-06T15:00:00.000Z' }],
  addenda: [],
  finalAt: '2026-12-06T15:00:00.000Z',
  institutionName: 'County Hospital'
}

const OPTIONS = {
  controlId: 'ABCDEF0123456789ABCD',
  sentAt: '2026-12-06T15:00:01.000Z',
  sendingFacility: 'County Hospital',
  resultStatus: 'F'
} as const

const fieldsOf = (message: string, name: string): string[][] =>
  message
    .split('\r')
    .filter(s => s.startsWith(`${name}|`))
    .map(s => s.split('|'))

test('escapes every HL7 delimiter, the escape character, line breaks and control characters, and back', () => {
  const text = 'a|b^c&d~e\\f\r\ng\u0007h'
  const escaped = escapeText(text)
  assert.is(escaped, 'a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\g\\X07\\h')
  assert.not.match(escaped, /[|^&~\r\n]/)
  assert.is(unescapeText(escaped), 'a|b^c&d~e\\f\ng\u0007h')
})

test('an ORU^R01 v2.5.1: MSH PID ORC OBR, one FT OBX per written section, status F, the signer as interpreter', () => {
  const message = oruR01(REPORT, STUDY, OPTIONS)
  assert.equal(
    message.split('\r').map(s => s.slice(0, 3)),
    ['MSH', 'PID', 'ORC', 'OBR', 'OBX', 'OBX', 'OBX']
  )
  const [msh] = fieldsOf(message, 'MSH') as [string[]]
  // Split on |, MSH's fields are off by one: msh[1] is MSH-2.
  assert.equal(
    [msh[1], msh[2], msh[3], msh[6], msh[8], msh[9], msh[10], msh[11], msh[17]],
    [
      '^~\\&',
      'RADMESH',
      'County Hospital',
      '20261206150001+0000',
      'ORU^R01^ORU_R01',
      OPTIONS.controlId,
      'P',
      '2.5.1',
      'UNICODE UTF-8'
    ]
  )
  const [pid] = fieldsOf(message, 'PID') as [string[]]
  assert.equal([pid[3], pid[5], pid[7], pid[8]], ['PAT\\F\\001^^^^MR', 'MÜLLER^JOSÉ', '19700102', 'M'])
  const [orc] = fieldsOf(message, 'ORC') as [string[]]
  assert.equal([orc[1], orc[2], orc[3], orc[5], orc[12]], ['RE', 'ACC-42', 'ACC-42', 'CM', '^HOUSE^GREGORY^^^DR'])
  const [obr] = fieldsOf(message, 'OBR') as [string[]]
  assert.equal(
    [obr[2], obr[3], obr[4], obr[7], obr[18], obr[20], obr[22], obr[24], obr[25], obr[32]],
    [
      'ACC-42',
      'ACC-42',
      '^CT HEAD STROKE',
      '20261206143005',
      'ACC-42',
      REPORT.caseId,
      '20261206150000+0000',
      'RAD',
      'F',
      '12D3KooWAlice&Dr Alice Neuro'
    ]
  )
  const obx = fieldsOf(message, 'OBX')
  assert.equal(
    obx.map(f => [f[1], f[2], f[3], f[11]]),
    [
      ['1', 'FT', '18785-6^Indications for procedure^LN', 'F'],
      ['2', 'FT', '59776-5^Procedure findings^LN', 'F'],
      ['3', 'FT', '19005-8^Impression^LN', 'F']
    ]
  )
  assert.is(unescapeText(obx[1]?.[5] ?? ''), 'A|B^C&D~E\\F\nsecond line')
  assert.is(obx[0]?.[16], '12D3KooWAlice^Dr Alice Neuro')
})

test('the placer and filler order numbers of the study win over the accession number', () => {
  const study = { ...STUDY, attributes: { ...STUDY.attributes, '00402016': 'PL-1', '00402017': 'FL-2' } }
  const [orc] = fieldsOf(oruR01(REPORT, study, OPTIONS), 'ORC') as [string[]]
  assert.equal([orc[2], orc[3]], ['PL-1', 'FL-2'])
})

test('with an addendum: status C on OBR and every OBX, the addendum as its own OBX, the change time its own', () => {
  const amended: FinalReport = {
    ...REPORT,
    status: 'AMENDED',
    addenda: [{ text: 'Small |subdural|.', signerName: 'Dr Alice Neuro', signedAt: '2026-12-06T16:00:00.000Z' }]
  }
  const message = oruR01(amended, STUDY, { ...OPTIONS, resultStatus: 'C' })
  const [obr] = fieldsOf(message, 'OBR') as [string[]]
  assert.equal([obr[22], obr[25]], ['20261206160000+0000', 'C'])
  const obx = fieldsOf(message, 'OBX')
  assert.ok(obx.every(f => f[11] === 'C'))
  const last = obx.at(-1) as string[]
  assert.equal(
    [last[3], unescapeText(last[5] ?? ''), last[16]],
    ['55107-7^Addendum^LN', 'Small |subdural|.', '^Dr Alice Neuro']
  )
})

test('medplum parses what radmesh writes into the same segments and fields', () => {
  const message = oruR01(REPORT, STUDY, OPTIONS)
  const parsed = Hl7Message.parse(message)
  assert.is(parsed.toString(), message)
  assert.is(parsed.getSegment('OBR')?.getField(25)?.toString(), 'F')
  assert.is(parsed.getAllSegments('OBX').length, 3)
})

test('reads an ACK: MSA-1, MSA-2, and the reason from MSA-3 or ERR-8', () => {
  const msh = 'MSH|^~\\&|RIS|||||20261206||ACK|1|P|2.5.1'
  assert.equal(parseAck(`${msh}\rMSA|AA|ABC`), { code: 'AA', controlId: 'ABC', text: '' })
  assert.equal(parseAck(`${msh}\rMSA|AE|ABC\rERR|||204^Unknown key identifier|E||||no \\T\\ order`), {
    code: 'AE',
    controlId: 'ABC',
    text: 'no & order'
  })
  assert.equal(parseAck('MSH|^~\\&|||||||ACK|1|P|2.5.1\rMSA|AR|ABC|bad message'), {
    code: 'AR',
    controlId: 'ABC',
    text: 'bad message'
  })
  assert.is(parseAck('MSH|^~\\&|||||||ACK|1|P|2.5.1'), undefined)
})

test('times go out as HL7 DTM in UTC, and an unreadable time as nothing', () => {
  assert.is(hl7Time('2026-12-06T15:00:00.123+01:00'), '20261206140000+0000')
  assert.is(hl7Time('yesterday'), '')
})

test.run()
