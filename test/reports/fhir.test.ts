/**
 * The report as a FHIR R4 DiagnosticReport: what R4 requires (status, code) and what a site's EHR or RIS
 * matches on (patient, order, study, interpreters, times), the impression as the conclusion, the whole report
 * as text in presentedForm, no empty values anywhere (FHIR ele-1), and "amended" once an addendum exists.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { RadmeshError } from '../../node/errors.ts'
import { diagnosticReport, reportText } from '../../node/reports/fhir.ts'
import { type FinalReport, reportUid, type StudyForReport } from '../../node/reports/sr.ts'

const STUDY_UID = '1.2.826.0.1.3680043.8.498.55'
const study: StudyForReport = {
  studyInstanceUid: STUDY_UID,
  attributes: {
    '00100010': 'MÜLLER^JOSÉ^^DR',
    '00100020': 'MRN-77',
    '00080020': '20261128',
    '00080030': '031500.25',
    '00080050': 'ACC-1',
    '00081030': 'CT HEAD STROKE PROTOCOL'
  },
  instances: [
    {
      seriesInstanceUid: `${STUDY_UID}.1`,
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      sopInstanceUid: `${STUDY_UID}.1.1`
    }
  ]
}
const report: FinalReport = {
  caseId: '0123456789abcdef01234567',
  status: 'FINAL',
  sections: {
    indication: 'Sudden left weakness.',
    technique: 'Non-contrast CT head.',
    comparison: '',
    findings: 'Hyperdense right MCA. Früh ischämisch.',
    impression: 'Acute right MCA infarct.'
  },
  signers: [
    { peerId: '12D3KooWReader', name: 'Dr Ada Neuro', status: 'FINAL', signedAt: '2026-11-28T03:40:00.000Z' },
    { peerId: '12D3KooWResident', name: 'Dr Ben Junior', status: 'PRELIMINARY', signedAt: '2026-11-28T03:30:00.000Z' }
  ],
  addenda: [],
  finalAt: '2026-11-28T03:40:00.000Z',
  institutionName: 'Riverside Community Hospital'
}
const amended: FinalReport = {
  ...report,
  status: 'AMENDED',
  addenda: [{ text: 'CTA: right M1 occlusion.', signerName: 'Dr Cy Vascular', signedAt: '2026-11-28T04:05:00.000Z' }]
}

interface Coding {
  system: string
  code: string
  display?: string
}
interface Resource {
  resourceType: string
  id: string
  status: string
  text: { status: string; div: string }
  identifier: Array<{ system: string; value: string }>
  basedOn: Array<{ identifier: { type: { coding: Coding[] }; value: string } }>
  category: Array<{ coding: Coding[] }>
  code: { coding: Coding[]; text?: string }
  subject?: { identifier?: { value: string }; display?: string }
  effectiveDateTime?: string
  issued: string
  conclusion?: string
  resultsInterpreter: Array<{ display: string; identifier: { system: string; value: string } }>
  imagingStudy: Array<{ identifier: { system: string; value: string }; display: string }>
  presentedForm: Array<{ contentType: string; language?: string; data: string; title: string; creation: string }>
}
const resourceOf = (r: FinalReport, s: StudyForReport = study, options: { srSopInstanceUid?: string } = {}): Resource =>
  JSON.parse(JSON.stringify(diagnosticReport(r, s, options))) as Resource
const presented = (resource: Resource): string =>
  Buffer.from(resource.presentedForm[0]?.data ?? '', 'base64').toString('utf8')

/** FHIR ele-1: every element has a value or children; no empty strings, arrays or objects, no nulls. */
function emptyValues(value: unknown, path = '$'): string[] {
  if (value === null || value === '' || (Array.isArray(value) && value.length === 0)) return [path]
  if (Array.isArray(value)) return value.flatMap((v, i) => emptyValues(v, `${path}[${i}]`))
  if (typeof value === 'object') {
    const entries = Object.entries(value)
    return entries.length === 0 ? [path] : entries.flatMap(([k, v]) => emptyValues(v, `${path}.${k}`))
  }
  return []
}

test('a FINAL report: R4 status and code, radiology category, patient, order, study, interpreters, times', () => {
  const resource = resourceOf(report)
  assert.is(resource.resourceType, 'DiagnosticReport')
  assert.is(resource.id, report.caseId)
  assert.is(resource.status, 'final')
  assert.equal(resource.code.coding, [
    { system: 'http://loinc.org', code: '18748-4', display: 'Diagnostic imaging study' }
  ])
  assert.equal(
    resource.category[0]?.coding.map(c => `${c.system}|${c.code}`),
    ['http://loinc.org|LP29684-5', 'http://terminology.hl7.org/CodeSystem/v2-0074|RAD']
  )
  assert.equal(resource.subject, { type: 'Patient', identifier: { value: 'MRN-77' }, display: 'DR JOSÉ MÜLLER' })
  assert.is(resource.basedOn[0]?.identifier.value, 'ACC-1')
  assert.is(resource.basedOn[0]?.identifier.type.coding[0]?.code, 'ACSN')
  assert.equal(
    resource.imagingStudy.map(i => i.identifier),
    [{ system: 'urn:dicom:uid', value: `urn:oid:${STUDY_UID}` }]
  )
  assert.is(resource.imagingStudy[0]?.display, 'CT HEAD STROKE PROTOCOL, accession ACC-1')
  assert.equal(
    resource.resultsInterpreter,
    [{ display: 'Dr Ada Neuro', identifier: { system: 'urn:radmesh:peer', value: '12D3KooWReader' } }],
    'FINAL signers only'
  )
  assert.is(resource.issued, report.finalAt)
  assert.is(resource.conclusion, 'Acute right MCA infarct.')
  assert.is(resource.presentedForm[0]?.contentType, 'text/plain; charset=utf-8')
  assert.is(resource.presentedForm[0]?.creation, report.finalAt)
  assert.is(resource.presentedForm[0]?.language, undefined, 'not claimed when the report does not say')
  assert.is(resourceOf({ ...report, language: 'de' }).presentedForm[0]?.language, 'de')
  assert.ok(resource.text.div.startsWith('<div xmlns="http://www.w3.org/1999/xhtml">'))
  assert.equal(emptyValues(resource), [])
})

test('presentedForm is the whole report as UTF-8 text: sections under headings, the signature, the impression', () => {
  const text = presented(resourceOf(report))
  assert.is(text, reportText(report))
  const PRESENTED_START = new RegExp(
    '^INDICATION\\nSudden left weakness\\.\\n\\nTECHNIQUE\\nNon-contrast CT head\\.\\n\\n' +
      'FINDINGS\\nHyperdense right MCA\\. Früh ischämisch\\.\\n\\nIMPRESSION\\nAcute right MCA infarct\\.\\n'
  )
  assert.match(text, PRESENTED_START)
  assert.not.match(text, /COMPARISON/, 'an empty section is left out')
  assert.match(text, /Signed \(FINAL\): Dr Ada Neuro, 2026-11-28T03:40:00\.000Z/)
  assert.not.match(text, /Dr Ben Junior/, "a preliminary signature is not the report's")
})

test('an AMENDED report is "amended" and its text ends with the addendum and its signer', () => {
  const resource = resourceOf(amended)
  assert.is(resource.status, 'amended')
  assert.match(
    presented(resource),
    /\n\nADDENDUM \(Dr Cy Vascular, 2026-11-28T04:05:00\.000Z\)\nCTA: right M1 occlusion\.\n$/
  )
  assert.ok(resource.text.div.includes('CTA: right M1 occlusion.'))
})

test('the DICOM SR of the same report is named among the identifiers when given', () => {
  const sr = reportUid(report.caseId, 'instance-0')
  assert.ok(
    resourceOf(report, study, { srSopInstanceUid: sr }).identifier.some(
      i => i.system === 'urn:dicom:uid' && i.value === `urn:oid:${sr}`
    )
  )
  assert.not.ok(resourceOf(report).identifier.some(i => i.system === 'urn:dicom:uid'))
})

test('effectiveDateTime: the study day, with its time only when the study states its UTC offset', () => {
  assert.is(resourceOf(report).effectiveDateTime, '2026-11-28')
  const withOffset = { ...study, attributes: { ...study.attributes, '00080201': '+0100' } }
  assert.is(resourceOf(report, withOffset).effectiveDateTime, '2026-11-28T03:15:00.25+01:00')
  const shortTime = { ...study, attributes: { ...study.attributes, '00080030': '0315', '00080201': '-0500' } }
  assert.is(resourceOf(report, shortTime).effectiveDateTime, '2026-11-28T03:15:00-05:00')
  assert.is(resourceOf(report, { ...study, attributes: {} }).effectiveDateTime, undefined)
})

test('what the study or report lacks is left out, never sent empty', () => {
  const bare: StudyForReport = { studyInstanceUid: STUDY_UID, attributes: {}, instances: [] }
  const resource = resourceOf({ ...report, sections: { ...report.sections, impression: ' ' } }, bare)
  assert.equal(emptyValues(resource), [])
  assert.is(resource.subject, undefined)
  assert.is(resource.conclusion, undefined)
  assert.is(resource.imagingStudy[0]?.display, STUDY_UID)
  assert.not.match(presented(resource), /IMPRESSION/)
})

test('the narrative escapes the report text as XHTML', () => {
  const resource = resourceOf({ ...report, sections: { ...report.sections, findings: 'Lesion <5 mm & stable >1 y.' } })
  assert.ok(resource.text.div.includes('Lesion &lt;5 mm &amp; stable &gt;1 y.'), resource.text.div)
})

test('a case id that cannot be a FHIR id is refused as a bug', () => {
  assert.throws(
    () => diagnosticReport({ ...report, caseId: 'case/1' }, study, {}),
    (e: unknown) => e instanceof RadmeshError && e.code === 'RADMESH_INTERNAL'
  )
})

test.run()
