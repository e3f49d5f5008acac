/**
 * A signed radiology report as a DICOM Basic Text SR (PS3.3 A.35.1), following TID 2000 "Basic Diagnostic
 * Imaging Report": a root CONTAINER (18748-4, LN, "Diagnostic Imaging Report") with the language and the
 * observer, then one heading CONTAINER per non-empty section (codes of CID 7001), each holding the section as
 * a TEXT item (codes of CID 7002). Addenda come last under (121078, DCM, "Addendum"). The study's images are
 * listed in the Current Requested Procedure Evidence Sequence. Part 10, explicit VR little endian, UTF-8,
 * no executable preamble (128 zero bytes). The same input always gives the same bytes.
 */
import { createHash } from 'node:crypto'
import { part10Header } from '../dicom/part10.ts'
import type { AttributeValue } from '../dicom/part10.ts'
import { type Dataset, type Element, tag, writeDataset } from './dataset-writer.ts'

export const BASIC_TEXT_SR = '1.2.840.10008.5.1.4.1.1.88.11'
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1'

export interface ReportSections { indication: string, technique: string, comparison: string, findings: string, impression: string }
export interface ReportSigner { peerId: string, name: string, status: 'PRELIMINARY' | 'FINAL' | 'ADDENDUM', signedAt: string }
export interface ReportAddendum { text: string, signerName: string, signedAt: string }
export interface StudyForReport {
  studyInstanceUid: string
  /** the archived study's attributes by tag (node/archive/archive.ts StudyRecord.attributes) */
  attributes: Record<string, AttributeValue>
  /** the study's instances, for the evidence sequence */
  instances: Array<{ seriesInstanceUid: string, sopClassUid: string, sopInstanceUid: string }>
}
export interface FinalReport {
  caseId: string
  status: 'FINAL' | 'AMENDED'
  sections: ReportSections
  /** the FINAL signer(s): the Verifying Observer Sequence */
  signers: ReportSigner[]
  addenda: ReportAddendum[]
  /** time of the FINAL signature: Content Date/Time and Verification DateTime */
  finalAt: string
  institutionName: string
}
export interface SrIdentity { seriesInstanceUid: string, sopInstanceUid: string, instanceNumber: number }

interface Code { value: string, scheme: string, meaning: string }
const code = (value: string, scheme: string, meaning: string): Code => ({ value, scheme, meaning })
const REPORT_TITLE = code('18748-4', 'LN', 'Diagnostic Imaging Report')
const LANGUAGE = code('121049', 'DCM', 'Language of Content Item and Descendants')
const ENGLISH = code('en', 'RFC5646', 'English')
const OBSERVER_NAME = code('121008', 'DCM', 'Person Observer Name')
/** heading (CID 7001) and narrative item (CID 7002) for each section */
const SECTION_CODES: Record<keyof ReportSections, { heading: Code, item: Code }> = {
  indication: { heading: code('121109', 'DCM', 'Indications for Procedure'), item: code('121106', 'DCM', 'Comment') },
  technique: { heading: code('121064', 'DCM', 'Current Procedure Descriptions'), item: code('121065', 'DCM', 'Procedure Description') },
  comparison: { heading: code('121066', 'DCM', 'Prior Procedure Descriptions'), item: code('121106', 'DCM', 'Comment') },
  findings: { heading: code('121070', 'DCM', 'Findings'), item: code('121071', 'DCM', 'Finding') },
  impression: { heading: code('121072', 'DCM', 'Impressions'), item: code('121073', 'DCM', 'Impression') }
}
const ADDENDUM = code('121078', 'DCM', 'Addendum')
const ADDENDUM_ITEM = code('121106', 'DCM', 'Comment')
const SECTION_ORDER: Array<keyof ReportSections> = ['indication', 'technique', 'comparison', 'findings', 'impression']

/** "2.25." + 128 bits of SHA-256(caseId:what): the same report always gets the same UIDs. */
export function reportUid (caseId: string, what: string): string {
  const digest = createHash('sha256').update(`${caseId}:${what}`).digest()
  return `2.25.${BigInt(`0x${digest.subarray(0, 16).toString('hex')}`).toString()}`
}

const el = (group: number, element: number, vr: string, value: Element['value']): Element => ({ tag: tag(group, element), vr, value })

/** A member's display name as a DICOM person name: all of it as the family name component, unless it has components. */
const personName = (name: string): string => (name.includes('^') ? name : `${name}^`).slice(0, 64)

function codeItem (c: Code): Dataset {
  return [el(0x0008, 0x0100, 'SH', c.value), el(0x0008, 0x0102, 'SH', c.scheme), el(0x0008, 0x0104, 'LO', c.meaning)]
}

function contentItem (relationship: string, valueType: string, concept: Code, rest: Element[]): Dataset {
  return [el(0x0040, 0xa010, 'CS', relationship), el(0x0040, 0xa040, 'CS', valueType), el(0x0040, 0xa043, 'SQ', [codeItem(concept)]), ...rest]
}

const text = (relationship: string, concept: Code, value: string): Dataset => contentItem(relationship, 'TEXT', concept, [el(0x0040, 0xa160, 'UT', value)])
const container = (concept: Code, children: Dataset[]): Dataset =>
  contentItem('CONTAINS', 'CONTAINER', concept, [el(0x0040, 0xa050, 'CS', 'SEPARATE'), el(0x0040, 0xa730, 'SQ', children)])

/** DICOM DA, TM, DT of an ISO time, in UTC. */
function dicomTimes (iso: string): { date: string, time: string, dateTime: string } {
  const d = new Date(iso)
  const p = (n: number, w = 2): string => String(n).padStart(w, '0')
  const date = `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}`
  const time = `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`
  return { date, time, dateTime: `${date}${time}.${p(d.getUTCMilliseconds(), 3)}000+0000` }
}

/** A study attribute as the text DICOM stores for it (person names by their alphabetic form). */
function attribute (study: StudyForReport, key: string): string {
  const value = study.attributes[key] as unknown
  if (value === undefined || value === null) return ''
  if (typeof value === 'string') return value
  if (typeof value === 'number') return String(value)
  if (Array.isArray(value)) return value.map(v => typeof v === 'object' && v !== null && 'Alphabetic' in v ? String((v as { Alphabetic: unknown }).Alphabetic) : String(v)).join('\\')
  if (typeof value === 'object' && 'Alphabetic' in (value as object)) return String((value as { Alphabetic: unknown }).Alphabetic)
  return ''
}

/** The report as a Part 10 Basic Text SR file. */
export function basicTextSr (report: FinalReport, study: StudyForReport, ids: SrIdentity): Uint8Array {
  const final = dicomTimes(report.finalAt)
  const headings: Dataset[] = SECTION_ORDER
    .filter(name => report.sections[name].trim() !== '')
    .map(name => container(SECTION_CODES[name].heading, [text('CONTAINS', SECTION_CODES[name].item, report.sections[name])]))
  if (report.addenda.length > 0) {
    headings.push(container(ADDENDUM, report.addenda.map(a => text('CONTAINS', ADDENDUM_ITEM, `${a.text}\n(${a.signerName}, ${a.signedAt})`))))
  }
  const observers = report.signers.filter(s => s.status === 'FINAL')
  const children: Dataset[] = [
    contentItem('HAS CONCEPT MOD', 'CODE', LANGUAGE, [el(0x0040, 0xa168, 'SQ', [codeItem(ENGLISH)])]),
    ...observers.map(s => contentItem('HAS OBS CONTEXT', 'PNAME', OBSERVER_NAME, [el(0x0040, 0xa123, 'PN', personName(s.name))])),
    ...headings
  ]
  const bySeries = new Map<string, Array<{ sopClassUid: string, sopInstanceUid: string }>>()
  for (const instance of study.instances) {
    const list = bySeries.get(instance.seriesInstanceUid) ?? []
    list.push(instance)
    bySeries.set(instance.seriesInstanceUid, list)
  }
  const evidence: Dataset[] = bySeries.size === 0
    ? []
    : [[
        el(0x0020, 0x000d, 'UI', study.studyInstanceUid),
        el(0x0008, 0x1115, 'SQ', [...bySeries].map(([series, instances]) => [
          el(0x0020, 0x000e, 'UI', series),
          el(0x0008, 0x1199, 'SQ', instances.map(i => [el(0x0008, 0x1150, 'UI', i.sopClassUid), el(0x0008, 0x1155, 'UI', i.sopInstanceUid)]))
        ]))
      ]]
  const dataset: Dataset = [
    el(0x0008, 0x0005, 'CS', 'ISO_IR 192'),
    el(0x0008, 0x0012, 'DA', final.date),
    el(0x0008, 0x0013, 'TM', final.time),
    el(0x0008, 0x0016, 'UI', BASIC_TEXT_SR),
    el(0x0008, 0x0018, 'UI', ids.sopInstanceUid),
    el(0x0008, 0x0020, 'DA', attribute(study, '00080020')),
    el(0x0008, 0x0023, 'DA', final.date),
    el(0x0008, 0x0030, 'TM', attribute(study, '00080030')),
    el(0x0008, 0x0033, 'TM', final.time),
    el(0x0008, 0x0050, 'SH', attribute(study, '00080050')),
    el(0x0008, 0x0060, 'CS', 'SR'),
    el(0x0008, 0x0070, 'LO', 'radmesh'),
    el(0x0008, 0x0080, 'LO', report.institutionName.slice(0, 64)),
    el(0x0008, 0x0090, 'PN', attribute(study, '00080090')),
    ...(attribute(study, '00081030') === '' ? [] : [el(0x0008, 0x1030, 'LO', attribute(study, '00081030'))]),
    el(0x0008, 0x103e, 'LO', report.status === 'AMENDED' ? 'Radiology report (amended)' : 'Radiology report'),
    el(0x0008, 0x1111, 'SQ', []),
    el(0x0010, 0x0010, 'PN', attribute(study, '00100010')),
    el(0x0010, 0x0020, 'LO', attribute(study, '00100020')),
    el(0x0010, 0x0030, 'DA', attribute(study, '00100030')),
    el(0x0010, 0x0040, 'CS', attribute(study, '00100040')),
    el(0x0020, 0x000d, 'UI', study.studyInstanceUid),
    el(0x0020, 0x000e, 'UI', ids.seriesInstanceUid),
    el(0x0020, 0x0010, 'SH', attribute(study, '00200010')),
    el(0x0020, 0x0011, 'IS', '9901'),
    el(0x0020, 0x0013, 'IS', String(ids.instanceNumber)),
    el(0x0040, 0xa040, 'CS', 'CONTAINER'),
    el(0x0040, 0xa043, 'SQ', [codeItem(REPORT_TITLE)]),
    el(0x0040, 0xa050, 'CS', 'SEPARATE'),
    el(0x0040, 0xa073, 'SQ', observers.map(s => [
      el(0x0040, 0xa027, 'LO', report.institutionName.slice(0, 64)),
      el(0x0040, 0xa030, 'DT', dicomTimes(s.signedAt).dateTime),
      el(0x0040, 0xa075, 'PN', personName(s.name)),
      el(0x0040, 0xa088, 'SQ', [])
    ])),
    el(0x0040, 0xa372, 'SQ', []),
    el(0x0040, 0xa375, 'SQ', evidence),
    el(0x0040, 0xa491, 'CS', 'COMPLETE'),
    el(0x0040, 0xa493, 'CS', 'VERIFIED'),
    el(0x0040, 0xa504, 'SQ', [[el(0x0008, 0x0105, 'CS', 'DCMR'), el(0x0040, 0xdb00, 'CS', '2000')]]),
    el(0x0040, 0xa730, 'SQ', children)
  ]
  const body = writeDataset(dataset, true)
  return Buffer.concat([part10Header({ sopClassUid: BASIC_TEXT_SR, sopInstanceUid: ids.sopInstanceUid, transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN }), body])
}
