/**
 * A FINAL report as a FHIR R4 DiagnosticReport (https://hl7.org/fhir/R4/diagnosticreport.html), the form a
 * site's EHR or RIS takes: status, radiology category, LOINC code, the patient by identifier (radmesh holds
 * no Patient resource), the imaging study by its DICOM UID, the signers as results interpreters, the
 * impression as `conclusion`, and the whole report as plain text in `presentedForm`.
 */
import type { FinalReport, StudyForReport } from './report-sr.ts'

const SECTION_TITLES: Array<[keyof FinalReport['sections'], string]> = [
  ['indication', 'INDICATION'], ['technique', 'TECHNIQUE'], ['comparison', 'COMPARISON'], ['findings', 'FINDINGS'], ['impression', 'IMPRESSION']
]

/** The report as readable text: sections with headings, the signature, the addenda. */
export function reportText (report: FinalReport): string {
  const parts = SECTION_TITLES.filter(([name]) => report.sections[name].trim() !== '').map(([name, title]) => `${title}\n${report.sections[name].trim()}`)
  parts.push(report.signers.filter(s => s.status === 'FINAL').map(s => `Electronically signed (FINAL) by ${s.name} at ${s.signedAt}`).join('\n'))
  for (const addendum of report.addenda) parts.push(`ADDENDUM (${addendum.signerName}, ${addendum.signedAt})\n${addendum.text.trim()}`)
  return `${parts.join('\n\n')}\n`
}

const text = (value: unknown): string => typeof value === 'string' ? value : Array.isArray(value) ? value.map(String).join('\\') : ''

/** FHIR dateTime from a DICOM date (and time) of the study, when it has one. */
function studyDateTime (study: StudyForReport): string | undefined {
  const date = text(study.attributes['00080020'])
  if (!/^\d{8}$/.test(date)) return undefined
  const day = `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}`
  const time = text(study.attributes['00080030']).replace(/\..*$/, '')
  return /^\d{6}$/.test(time) ? `${day}T${time.slice(0, 2)}:${time.slice(2, 4)}:${time.slice(4, 6)}Z` : day
}

export function diagnosticReport (report: FinalReport, study: StudyForReport, options: { srSopInstanceUid?: string } = {}): Record<string, unknown> {
  const patientId = text(study.attributes['00100020'])
  const patientName = text(study.attributes['00100010']).replace(/\^+/g, ' ').trim()
  const effective = studyDateTime(study)
  const accession = text(study.attributes['00080050'])
  return {
    resourceType: 'DiagnosticReport',
    id: report.caseId,
    identifier: [
      { system: 'urn:radmesh:case', value: report.caseId },
      ...(options.srSopInstanceUid === undefined ? [] : [{ system: 'urn:dicom:uid', value: `urn:oid:${options.srSopInstanceUid}` }])
    ],
    status: report.status === 'AMENDED' ? 'amended' : 'final',
    category: [{
      coding: [
        { system: 'http://loinc.org', code: 'LP29684-5', display: 'Radiology' },
        { system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD', display: 'Radiology' }
      ]
    }],
    code: { coding: [{ system: 'http://loinc.org', code: '18748-4', display: 'Diagnostic imaging study' }], text: text(study.attributes['00081030']) || 'Diagnostic imaging report' },
    subject: { ...(patientId === '' ? {} : { identifier: { value: patientId } }), ...(patientName === '' ? {} : { display: patientName }) },
    ...(effective === undefined ? {} : { effectiveDateTime: effective }),
    issued: report.finalAt,
    performer: [{ display: report.institutionName }],
    resultsInterpreter: report.signers.filter(s => s.status === 'FINAL').map(s => ({ display: s.name, identifier: { system: 'urn:radmesh:peer', value: s.peerId } })),
    imagingStudy: [{
      identifier: { system: 'urn:dicom:uid', value: `urn:oid:${study.studyInstanceUid}` },
      display: [text(study.attributes['00081030']), accession === '' ? '' : `accession ${accession}`].filter(Boolean).join(', ') || study.studyInstanceUid
    }],
    conclusion: report.sections.impression.trim(),
    presentedForm: [{
      contentType: 'text/plain; charset=utf-8',
      language: 'en',
      data: Buffer.from(reportText(report), 'utf8').toString('base64'),
      title: 'Radiology report',
      creation: report.finalAt
    }]
  }
}
