/**
 * The report as DICOM and FHIR: the Basic Text SR passes DCMTK's dcmdump and dicom3tools' dciodvfy (no
 * errors), carries the study, the signer and every section, has no executable preamble, and is the same
 * bytes for the same report; the FHIR DiagnosticReport has what R4 and the site's systems need.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parsePart10 } from '../../node/dicom/part10.ts'
import { diagnosticReport, reportText } from '../../node/reporting/report-fhir.ts'
import { BASIC_TEXT_SR, basicTextSr, type FinalReport, reportUid, type StudyForReport } from '../../node/reporting/report-sr.ts'
import { runTool } from '../helpers/dcmtk.ts'
import { tempDir } from '../helpers/processes.ts'

const STUDY_UID = '1.2.826.0.1.3680043.8.498.55'
const study: StudyForReport = {
  studyInstanceUid: STUDY_UID,
  attributes: { '00100010': 'MÜLLER^JOSÉ', '00100020': 'MRN-77', '00100030': '19600101', '00100040': 'M', '00080020': '20261128', '00080030': '031500', '00080050': 'ACC-1', '00081030': 'CT HEAD STROKE PROTOCOL', '00200010': '12' },
  instances: [
    { seriesInstanceUid: `${STUDY_UID}.1`, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: `${STUDY_UID}.1.1` },
    { seriesInstanceUid: `${STUDY_UID}.1`, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: `${STUDY_UID}.1.2` },
    { seriesInstanceUid: `${STUDY_UID}.2`, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: `${STUDY_UID}.2.1` }
  ]
}
const report: FinalReport = {
  caseId: '0123456789abcdef01234567',
  status: 'AMENDED',
  sections: { indication: 'Sudden left weakness.', technique: 'Non-contrast CT head.', comparison: '', findings: 'Hyperdense right MCA. Früh ischämisch.', impression: 'Acute right MCA infarct.' },
  signers: [{ peerId: '12D3KooWExample', name: 'Dr Ada Neuro', status: 'FINAL', signedAt: '2026-11-28T03:40:00.000Z' }],
  addenda: [{ text: 'CTA: right M1 occlusion.', signerName: 'Dr Ada Neuro', signedAt: '2026-11-28T04:00:00.000Z' }],
  finalAt: '2026-11-28T03:40:00.000Z',
  institutionName: 'Riverside Community Hospital'
}
const ids = { seriesInstanceUid: reportUid(report.caseId, 'series'), sopInstanceUid: reportUid(report.caseId, 'instance-1'), instanceNumber: 2 }

test('the SR passes dciodvfy with no error and dcmdump reads it', async () => {
  const path = join(await tempDir(), 'report.dcm')
  await fs.writeFile(path, basicTextSr(report, study, ids))
  const verified = await runTool('dciodvfy', [path])
  const output = `${verified.stdout}\n${verified.stderr}`
  assert.ok(/BasicTextSR|Basic Text SR/i.test(output), `dciodvfy recognised the IOD: ${output}`)
  assert.equal(output.split('\n').filter(line => /^Error/.test(line)), [], output)
  // No warning either: the study carries everything a DICOMDIR needs, and names are proper PN values.
  assert.equal(output.split('\n').filter(line => /^Warning/.test(line)), [], output)
  const dumped = await runTool('dcmdump', ['+U8', path])
  assert.is(dumped.code, 0, dumped.stderr)
  assert.match(dumped.stdout, /Acute right MCA infarct\./)
  assert.match(dumped.stdout, /Früh ischämisch/)
  assert.match(dumped.stdout, /CTA: right M1 occlusion/)
})

test('it names the study, the SR class, the verifier, the sections and the images; no preamble; same input, same bytes', () => {
  const bytes = basicTextSr(report, study, ids)
  assert.ok(bytes.subarray(0, 128).every(b => b === 0))
  assert.equal(Buffer.from(basicTextSr(report, study, ids)), Buffer.from(bytes))
  const parsed = parsePart10(bytes)
  assert.is(parsed.sopClassUid, BASIC_TEXT_SR)
  assert.is(parsed.sopInstanceUid, ids.sopInstanceUid)
  assert.is(parsed.studyInstanceUid, STUDY_UID)
  const text = Buffer.from(bytes).toString('utf8')
  for (const needle of ['VERIFIED', 'COMPLETE', 'Dr Ada Neuro', 'Acute right MCA infarct.', `${STUDY_UID}.2.1`, 'MRN-77', '18748-4']) assert.ok(text.includes(needle), needle)
  assert.not.ok(text.includes('Comparison'), 'an empty section is left out')
})

test('report UIDs are valid, at most 64 characters, and stable per case and version', () => {
  const uid = reportUid(report.caseId, 'instance-0')
  assert.match(uid, /^2\.25\.[1-9][0-9]*$/)
  assert.ok(uid.length <= 64)
  assert.is(reportUid(report.caseId, 'instance-0'), uid)
  assert.is.not(reportUid(report.caseId, 'instance-1'), uid)
  assert.is.not(reportUid('fedcba9876543210fedcba98', 'instance-0'), uid)
})

test('FHIR DiagnosticReport: status, codes, patient, study, interpreter, conclusion, the whole text', () => {
  interface Coded { coding: Array<{ code: string }> }
  interface Resource {
    resourceType: string, status: string, code: Coded, category: Coded[], subject: unknown, effectiveDateTime: string, issued: string,
    imagingStudy: Array<{ identifier: unknown }>, resultsInterpreter: unknown, conclusion: string, identifier: Array<{ value: string }>, presentedForm: Array<{ data: string }>
  }
  const resource = diagnosticReport(report, study, { srSopInstanceUid: ids.sopInstanceUid }) as unknown as Resource
  assert.is(resource['resourceType'], 'DiagnosticReport')
  assert.is(resource['status'], 'amended')
  assert.is(resource.code.coding[0]?.code, '18748-4')
  assert.is(resource.category[0]?.coding[0]?.code, 'LP29684-5')
  assert.equal(resource['subject'], { identifier: { value: 'MRN-77' }, display: 'MÜLLER JOSÉ' })
  assert.is(resource['effectiveDateTime'], '2026-11-28T03:15:00Z')
  assert.is(resource['issued'], report.finalAt)
  assert.equal(resource.imagingStudy[0]?.identifier, { system: 'urn:dicom:uid', value: `urn:oid:${STUDY_UID}` })
  assert.equal(resource['resultsInterpreter'], [{ display: 'Dr Ada Neuro', identifier: { system: 'urn:radmesh:peer', value: '12D3KooWExample' } }])
  assert.is(resource['conclusion'], 'Acute right MCA infarct.')
  assert.ok(resource.identifier.some(i => i.value === `urn:oid:${ids.sopInstanceUid}`))
  const text = Buffer.from(resource.presentedForm[0]?.data ?? '', 'base64').toString('utf8')
  assert.is(text, reportText(report))
  assert.match(text, /FINDINGS\nHyperdense right MCA/)
  assert.match(text, /ADDENDUM \(Dr Ada Neuro/)
  assert.is(diagnosticReport({ ...report, status: 'FINAL', addenda: [] }, study)['status'], 'final')
})

test.run()
