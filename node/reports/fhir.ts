/**
 * A FINAL report as a FHIR R4 DiagnosticReport (https://hl7.org/fhir/R4/diagnosticreport.html), the form a
 * site's EHR or RIS takes: status, radiology category, LOINC code, the patient and the order by identifier
 * (radmesh holds no Patient or ServiceRequest resource, so these are logical references), the study by its
 * DICOM UID, the FINAL signers as results interpreters, the impression as `conclusion`, and the whole report
 * as plain UTF-8 text in `presentedForm` (and as the narrative). The DICOM SR of the same report, when there
 * is one, is named among the identifiers. The prior studies the report compared with (compared.ts) are its
 * supporting information of type "comparison": DiagnosticReport.supportingInfo of FHIR R5, which was added for
 * exactly this, carried in R4 by its cross-version extension, each an ImagingStudy by its DICOM UID.
 */
import { RadmeshError } from '../errors.ts'
import type { FinalReport, ReportSections, StudyForReport } from './sr.ts'

const SECTION_TITLES: Array<[keyof ReportSections, string]> = [
  ['indication', 'INDICATION'],
  ['technique', 'TECHNIQUE'],
  ['comparison', 'COMPARISON'],
  ['findings', 'FINDINGS'],
  ['impression', 'IMPRESSION']
]

/** The report as readable text: each non-empty section under its heading, the FINAL signature(s), then the addenda. */
export function reportText(report: FinalReport): string {
  const parts = SECTION_TITLES.filter(([name]) => report.sections[name].trim() !== '').map(
    ([name, title]) => `${title}\n${report.sections[name].trim()}`
  )
  const signatures = report.signers
    .filter(s => s.status === 'FINAL')
    .map(s => `Signed (FINAL): ${s.name}, ` + `${s.signedAt}`)
  if (signatures.length > 0) parts.push(signatures.join('\n'))
  for (const a of report.addenda) parts.push(`ADDENDUM (${a.signerName}, ${a.signedAt})\n${a.text.trim()}`)
  return `${parts.join('\n\n')}\n`
}

/** A study attribute's first value, or '' when absent. */
function first(study: StudyForReport, key: string): string {
  const value = study.attributes[key]
  return (Array.isArray(value) ? value[0] : value) ?? ''
}

/** A DICOM PN as a person reads it: "MÜLLER^JOSÉ^^DR" -> "DR JOSÉ MÜLLER" (the alphabetic group only). */
function readableName(pn: string): string {
  const components = (pn.split('=')[0] ?? '').split('^').map(c => c.trim())
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = components
  return [prefix, given, middle, family, suffix].filter(c => c !== '').join(' ')
}

/**
 * FHIR dateTime of the study from StudyDate and StudyTime. A time without a zone is not a valid FHIR dateTime,
 * and DICOM times are the site's local time, so the time is given only when the study states its offset
 * (Timezone Offset From UTC); otherwise the day alone.
 */
function studyDateTime(study: StudyForReport): string | undefined {
  const date = /^(\d{4})(\d{2})(\d{2})$/.exec(first(study, '00080020'))
  if (date === null) return undefined
  const day = `${date[1]}-${date[2]}-${date[3]}`
  const time = /^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$/.exec(first(study, '00080030'))
  const offset = /^([+-]\d{2})(\d{2})$/.exec(first(study, '00080201'))
  if (time === null || offset === null) return day
  return `${day}T${time[1]}:${time[2] ?? '00'}:${time[3] ?? '00'}${time[4] ?? ''}${offset[1]}:${offset[2]}`
}

/** R5 DiagnosticReport.supportingInfo in R4 (https://hl7.org/fhir/extensions/5.0.0/). */
export const SUPPORTING_INFO_EXTENSION =
  'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.supportingInfo'

function comparisonExtension(compared: StudyForReport[]): { extension?: Array<Record<string, unknown>> } {
  if (compared.length === 0) return {}
  return {
    extension: compared.map(prior => {
      const description = first(prior, '00081030')
      const date = first(prior, '00080020')
      const display = [
        description,
        /^\d{8}$/.test(date) ? `of ${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6)}` : ''
      ]
        .filter(part => part !== '')
        .join(' ')
      return {
        url: SUPPORTING_INFO_EXTENSION,
        extension: [
          { url: 'type', valueCodeableConcept: { text: 'comparison' } },
          {
            url: 'reference',
            valueReference: {
              type: 'ImagingStudy',
              identifier: { system: 'urn:dicom:uid', value: `urn:oid:${prior.studyInstanceUid}` },
              display: display === '' ? prior.studyInstanceUid : display
            }
          }
        ]
      }
    })
  }
}

const escapeXml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** The report as a FHIR R4 DiagnosticReport; `srSopInstanceUid` names the DICOM SR of the same report. */
export function diagnosticReport(
  report: FinalReport,
  study: StudyForReport,
  options: { srSopInstanceUid?: string } = {}
): Record<string, unknown> {
  // FHIR ids are at most 64 of [A-Za-z0-9.-]: radmesh case ids are hex, anything else is a bug upstream.
  if (!/^[A-Za-z0-9.-]{1,64}$/.test(report.caseId)) {
    throw new RadmeshError(
      'RADMESH_INTERNAL',
      `case id "${report.caseId}" cannot be a FHIR id (1 to 64 of A-Z a-z 0-9 . -)`
    )
  }
  const text = reportText(report)
  const patientId = first(study, '00100020')
  const patientName = readableName(first(study, '00100010'))
  const accession = first(study, '00080050')
  const description = first(study, '00081030')
  const effective = studyDateTime(study)
  const impression = report.sections.impression.trim()
  return {
    resourceType: 'DiagnosticReport',
    id: report.caseId,
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><pre>${escapeXml(text)}</pre></div>` },
    identifier: [
      { system: 'urn:radmesh:case', value: report.caseId },
      ...(options.srSopInstanceUid === undefined
        ? []
        : [{ system: 'urn:dicom:uid', value: `urn:oid:${options.srSopInstanceUid}` }])
    ],
    // The order, by the accession number a RIS files reports under (v2-0203 ACSN, as IHE IDR does).
    ...(accession === ''
      ? {}
      : {
          basedOn: [
            {
              type: 'ServiceRequest',
              identifier: {
                type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'ACSN' }] },
                value: accession
              }
            }
          ]
        }),
    status: report.status === 'AMENDED' ? 'amended' : 'final',
    category: [
      {
        coding: [
          { system: 'http://loinc.org', code: 'LP29684-5', display: 'Radiology' },
          { system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD', display: 'Radiology' }
        ]
      }
    ],
    code: {
      coding: [{ system: 'http://loinc.org', code: '18748-4', display: 'Diagnostic imaging study' }],
      ...(description === '' ? {} : { text: description })
    },
    ...(patientId === '' && patientName === ''
      ? {}
      : {
          subject: {
            type: 'Patient',
            ...(patientId === '' ? {} : { identifier: { value: patientId } }),
            ...(patientName === '' ? {} : { display: patientName })
          }
        }),
    ...(effective === undefined ? {} : { effectiveDateTime: effective }),
    issued: report.finalAt,
    resultsInterpreter: report.signers
      .filter(s => s.status === 'FINAL')
      .map(s => ({ display: s.name, identifier: { system: 'urn:radmesh:peer', value: s.peerId } })),
    imagingStudy: [
      {
        type: 'ImagingStudy',
        identifier: { system: 'urn:dicom:uid', value: `urn:oid:${study.studyInstanceUid}` },
        display:
          [description, accession === '' ? '' : `accession ${accession}`].filter(p => p !== '').join(', ') ||
          study.studyInstanceUid
      }
    ],
    ...(impression === '' ? {} : { conclusion: impression }),
    ...comparisonExtension(report.compared ?? []),
    presentedForm: [
      {
        contentType: 'text/plain; charset=utf-8',
        // Only when known: unlike the SR (TID 2000 must name one), FHIR lets the language go unstated.
        ...(report.language === undefined ? {} : { language: report.language }),
        data: Buffer.from(text, 'utf8').toString('base64'),
        title: 'Radiology report',
        creation: report.finalAt
      }
    ]
  }
}
