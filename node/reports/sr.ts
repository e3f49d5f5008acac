/**
 * A signed radiology report as a DICOM Basic Text SR (PS3.3 A.35.1), Part 10, explicit VR little endian, so a
 * PACS, RIS or viewer at the site shows the report beside the study it reads. The content tree follows
 * TID 2000 "Basic Diagnostic Imaging Report" (PS3.16; order significant):
 *
 *   CONTAINER (18748-4, LN, "Diagnostic Imaging Report"), SEPARATE                      root, CID 7000
 *   > HAS CONCEPT MOD  CODE (121049, DCM, "Language of Content Item and Descendants")     TID 1204
 *   > HAS OBS CONTEXT  PNAME (121008, DCM, "Person Observer Name"), one per FINAL signer  TID 1001 > 1002 > 1003
 *   > CONTAINS         CONTAINER <heading, CID 7001>, one per non-empty section
 *   >>  CONTAINS       TEXT <report element, CID 7002> = the section as written           TID 2002
 *   > CONTAINS         CONTAINER (55107-7, LN, "Addendum"), one per addendum, with its own
 *                      Observation DateTime (its signature)
 *   >>  HAS OBS CONTEXT PNAME (121008, DCM, "Person Observer Name") = its signer
 *   >>  CONTAINS       TEXT (121106, DCM, "Comment") = its text
 *
 * The same input gives the same bytes (instances are sorted, nothing reads the clock), so delivering a
 * report again is a duplicate the archive recognises by UID and bytes alike. No executable preamble
 * (CVE-2019-11687): 128 zero bytes.
 */
import { createHash } from 'node:crypto'
import { RadmeshError } from '../errors.ts'
import { COLLECTED_ATTRIBUTES, MAX_VALUE_LENGTH, TRANSFER_SYNTAX } from '../dicom/dictionary.ts'
import type { AttributeValue } from '../dicom/instance.ts'
import { type Dataset, type Element, part10Header, writeDataset } from '../dicom/writer.ts'

export const BASIC_TEXT_SR = '1.2.840.10008.5.1.4.1.1.88.11'
/** High enough to sort after the image series in a viewer's series list; the same for every report. */
export const SR_SERIES_NUMBER = 9901

export interface ReportSections {
  indication: string
  technique: string
  comparison: string
  findings: string
  impression: string
}
export interface ReportSigner {
  peerId: string
  name: string
  status: 'PRELIMINARY' | 'FINAL' | 'ADDENDUM'
  signedAt: string /* ISO 8601 */
}
export interface ReportAddendum {
  text: string
  signerName: string
  signedAt: string
}
export interface StudyForReport {
  studyInstanceUid: string
  /** the archived study's attributes by 8-hex tag, as node/archive/archive.ts StudyRecord.attributes */
  attributes: Record<string, AttributeValue>
  /** every instance of the study, for the Current Requested Procedure Evidence Sequence */
  instances: Array<{ seriesInstanceUid: string; sopClassUid: string; sopInstanceUid: string }>
}
export interface FinalReport {
  caseId: string
  status: 'FINAL' | 'AMENDED'
  sections: ReportSections
  /** the FINAL signer(s) become the Verifying Observer Sequence; other signers are not written */
  signers: ReportSigner[]
  addenda: ReportAddendum[]
  /** ISO time of the FINAL signature: Content Date/Time */
  finalAt: string
  /** the site's name: Verifying Organization, Institution Name */
  institutionName: string
  /** BCP 47 tag of the language the report is written in (TID 1204 requires one); 'en' when absent */
  language?: string
  /**
   * The prior studies the report compared with (compared.ts), as held at the site: the SR's Pertinent Other
   * Evidence, the FHIR report's supporting information of type comparison.
   */
  compared?: StudyForReport[]
}
export interface SrIdentity {
  seriesInstanceUid: string
  sopInstanceUid: string
  instanceNumber: number
  /** the SR this one replaces (an earlier delivery without the latest addendum): Predecessor Documents Sequence */
  predecessor?: { seriesInstanceUid: string; sopInstanceUid: string }
}

interface Code {
  value: string
  scheme: string
  meaning: string
}
const code = (value: string, scheme: string, meaning: string): Code => ({ value, scheme, meaning })

const REPORT_TITLE = code('18748-4', 'LN', 'Diagnostic Imaging Report')
const LANGUAGE = code('121049', 'DCM', 'Language of Content Item and Descendants')
const PERSON_OBSERVER_NAME = code('121008', 'DCM', 'Person Observer Name')
/**
 * Headings are CID 7001, which now lists LOINC codes and keeps the DCM ones (in brackets) only as
 * equivalents for old readers; elements are CID 7002. Both groups are baseline (BCID), so a missing concept
 * may be added. An indication states the clinical question, which is what CID 7002 "Request" holds (TID 2006
 * calls the request "the clinical question that is expected to be answered"); a comparison names the prior
 * procedures read alongside, each a "Procedure Description".
 */
const SECTIONS: Array<{ name: keyof ReportSections; heading: Code; element: Code }> = [
  {
    name: 'indication',
    heading: code('18785-6', 'LN', 'Indications for Procedure'),
    element: code('55115-0', 'LN', 'Request')
  }, // [121109]
  {
    name: 'technique',
    heading: code('55111-9', 'LN', 'Current Procedure Descriptions'),
    element: code('121065', 'DCM', 'Procedure Description')
  }, // [121064]
  {
    name: 'comparison',
    heading: code('55114-3', 'LN', 'Prior Procedure Descriptions'),
    element: code('121065', 'DCM', 'Procedure Description')
  }, // [121066]
  {
    name: 'findings',
    heading: code('59776-5', 'LN', 'Findings'),
    element: code('121071', 'DCM', 'Finding')
  }, // [121070]
  {
    name: 'impression',
    heading: code('19005-8', 'LN', 'Impressions'),
    element: code('121073', 'DCM', 'Impression')
  } // [121072]
]
const ADDENDUM = code('55107-7', 'LN', 'Addendum') // [121078]
/** CID 7002 has no element for an addendum's free text (it may be a finding, a call, a correction). */
const ADDENDUM_TEXT = code('121106', 'DCM', 'Comment')

/**
 * "2.25." and the decimal of the first 128 bits of SHA-256(caseId:what) (PS3.5 B.2, UUID-derived form):
 * the same case and `what` always give the same UID, at most 44 characters.
 */
export function reportUid(caseId: string, what: 'series' | 'instance' | string): string {
  const digest = createHash('sha256').update(`${caseId}:${what}`).digest()
  return `2.25.${BigInt(`0x${digest.subarray(0, 16).toString('hex')}`).toString()}`
}

const el = (key: string, vr: string, value: Element['value']): Element => ({ tag: Number.parseInt(key, 16), vr, value })

/** What a bad argument is; a caller bug, since the report was checked when it was signed. */
const bug = (message: string): RadmeshError => new RadmeshError('RADMESH_INTERNAL', message)

interface DicomTimes {
  date: string
  time: string
  dateTime: string
}

/**
 * DA, TM and DT of an ISO 8601 time, as the wall clock of the offset it was written in: the signing node's
 * clock, which is all radmesh knows (the site's time zone is nowhere in the report), and the DT says which.
 */
function dicomTimes(iso: string, what: string): DicomTimes {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6})\d*)?(Z|[+-]\d{2}:?\d{2})$/.exec(iso)
  if (m === null || Number.isNaN(Date.parse(iso)))
    throw bug(`${what} "${iso}" is not an ISO 8601 time with seconds and an offset (like 2026-11-28T03:40:00.000Z)`)
  const [, y, mo, d, h, mi, s, fraction, zone] = m as unknown as string[]
  const date = `${y}${mo}${d}`
  const time = `${h}${mi}${s}${fraction === undefined ? '' : `.${fraction}`}`
  const offset = zone === 'Z' ? '+0000' : (zone as string).replace(':', '')
  return { date, time, dateTime: `${date}${time}${offset}` }
}

/** Values of Specific Character Set copied at most; every other attribute copied is of one value (VM 1). */
const MAX_VALUES = 16
const MULTI_VALUED = new Set(['00080005'])

/**
 * A study attribute as DICOM text: several values joined by backslash, absent ones empty (type 2). What the
 * study declared is not trusted to fit: each value is cut to its VR's length (a PN's per component group, of
 * three), and a long list to MAX_VALUES.
 */
function attribute(study: StudyForReport, key: string): string {
  const value = study.attributes[key]
  if (value === undefined) return ''
  const vr = COLLECTED_ATTRIBUTES[key] ?? 'LO'
  const max = MAX_VALUE_LENGTH[vr] ?? 64
  const fit = (v: string): string =>
    vr === 'PN'
      ? v
          .split('=')
          .slice(0, 3)
          .map(group => limit(group, max))
          .join('=')
      : limit(v, max)
  const values = Array.isArray(value) ? value.slice(0, MULTI_VALUED.has(key) ? MAX_VALUES : 1) : [value]
  return values.map(fit).join('\\')
}

/** At most `n` characters (not UTF-16 units: ISO_IR 192 limits count characters). */
const limit = (text: string, n: number): string => Array.from(text).slice(0, n).join('')

/** One-line text for LO: no control characters, no backslash (it would split the value). */
const oneLine = (text: string, n: number): string => limit(text.replace(/[\\\p{Cc}]+/gu, ' ').trim(), n)

/**
 * A member's display name as a PN: the whole name as the family component when it has no components of its
 * own, which is how PS3.5 6.2.1 keeps a name that cannot be split reliably.
 */
function personName(name: string): string {
  const clean = name.replace(/[\\=\p{Cc}]+/gu, ' ').trim()
  return clean.includes('^') ? limit(clean, 64) : `${limit(clean, 63)}^`
}

function codeItem(c: Code): Dataset {
  return [el('00080100', 'SH', c.value), el('00080102', 'SH', c.scheme), el('00080104', 'LO', c.meaning)]
}

function contentItem(relationship: string, valueType: string, concept: Code, rest: Element[]): Dataset {
  return [
    el('0040A010', 'CS', relationship),
    el('0040A040', 'CS', valueType),
    el('0040A043', 'SQ', [codeItem(concept)]),
    ...rest
  ]
}

const textItem = (concept: Code, text: string): Dataset =>
  contentItem('CONTAINS', 'TEXT', concept, [el('0040A160', 'UT', text)])
const observer = (name: string): Dataset =>
  contentItem('HAS OBS CONTEXT', 'PNAME', PERSON_OBSERVER_NAME, [el('0040A123', 'PN', personName(name))])
const heading = (concept: Code, children: Dataset[], rest: Element[] = []): Dataset =>
  contentItem('CONTAINS', 'CONTAINER', concept, [
    el('0040A050', 'CS', 'SEPARATE'),
    el('0040A730', 'SQ', children),
    ...rest
  ])

function languageItem(tag: string): Dataset {
  // CID 5000 names a language by its RFC 5646 tag with its English name as the meaning.
  let meaning: string
  try {
    meaning = new Intl.DisplayNames(['en'], { type: 'language' }).of(tag) ?? tag
  } catch {
    throw bug(`the report's language "${tag}" is not a BCP 47 language tag (like "en" or "de-CH")`)
  }
  return contentItem('HAS CONCEPT MOD', 'CODE', LANGUAGE, [
    el('0040A168', 'SQ', [codeItem(code(tag, 'RFC5646', meaning))])
  ])
}

function contentTree(report: FinalReport, finalSigners: ReportSigner[], language: string): Dataset[] {
  const sections = SECTIONS.filter(s => report.sections[s.name].trim() !== '').map(s =>
    heading(s.heading, [textItem(s.element, report.sections[s.name])])
  )
  const addenda = report.addenda.map(a =>
    heading(
      ADDENDUM,
      [observer(a.signerName), textItem(ADDENDUM_TEXT, a.text)],
      [el('0040A032', 'DT', dicomTimes(a.signedAt, `the signature time of the addendum by ${a.signerName}`).dateTime)]
    )
  )
  return [languageItem(language), ...finalSigners.map(s => observer(s.name)), ...sections, ...addenda]
}

/** The study's instances by series, both sorted by UID so that the order the archive lists them in does not matter. */
function evidence(study: StudyForReport, self: string): Dataset[] {
  const bySeries = new Map<string, Map<string, string>>()
  for (const i of study.instances) {
    if (i.sopInstanceUid === self) continue
    const series = bySeries.get(i.seriesInstanceUid) ?? new Map<string, string>()
    series.set(i.sopInstanceUid, i.sopClassUid)
    bySeries.set(i.seriesInstanceUid, series)
  }
  if (bySeries.size === 0) return []
  const byUid = <T>(a: [string, T], b: [string, T]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
  return [
    [
      el('0020000D', 'UI', study.studyInstanceUid),
      el(
        '00081115',
        'SQ',
        [...bySeries].sort(byUid).map(([series, instances]) => [
          el('0020000E', 'UI', series),
          el(
            '00081199',
            'SQ',
            [...instances]
              .sort(byUid)
              .map(([sop, sopClass]) => [el('00081150', 'UI', sopClass), el('00081155', 'UI', sop)])
          )
        ])
      )
    ]
  ]
}

/** ASCII exactly when UTF-8 needs one byte per UTF-16 unit (any other character takes more). */
const isAscii = (text: string): boolean => Buffer.byteLength(text, 'utf8') === text.length

/** Whether any text value anywhere in the data set needs more than ASCII (the default repertoire). */
function needsUtf8(dataset: Dataset): boolean {
  return dataset.some(({ value }) => {
    if (typeof value === 'string') return !isAscii(value)
    if (Array.isArray(value)) return value.some(v => (typeof v === 'string' ? !isAscii(v) : needsUtf8(v)))
    return false
  })
}

/** The report as a Part 10 file (no executable preamble: 128 zero bytes). Deterministic for the same input. */
export function basicTextSr(report: FinalReport, study: StudyForReport, ids: SrIdentity): Uint8Array {
  const finalSigners = report.signers.filter(s => s.status === 'FINAL')
  if (finalSigners.length === 0)
    throw bug(
      `the report of case ${report.caseId} has no FINAL signer: only a FINAL report is written as a verified SR`
    )
  const content = dicomTimes(report.finalAt, 'the FINAL signature time (finalAt)')
  const institution = oneLine(report.institutionName, 64)
  const description = attribute(study, '00081030')
  const evidenceItems = evidence(study, ids.sopInstanceUid)
  const comparedItems = (report.compared ?? []).flatMap(prior => evidence(prior, ids.sopInstanceUid))
  const dataset: Dataset = [
    // SOP Common
    el('00080016', 'UI', BASIC_TEXT_SR),
    el('00080018', 'UI', ids.sopInstanceUid),
    // Patient (all type 2: present even when the study lacks them)
    el('00100010', 'PN', attribute(study, '00100010')),
    el('00100020', 'LO', attribute(study, '00100020')),
    el('00100030', 'DA', attribute(study, '00100030')),
    el('00100040', 'CS', attribute(study, '00100040')),
    // General Study: the SR joins the study it reads
    el('0020000D', 'UI', study.studyInstanceUid),
    el('00080020', 'DA', attribute(study, '00080020')),
    el('00080030', 'TM', attribute(study, '00080030')),
    el('00080090', 'PN', attribute(study, '00080090')),
    el('00200010', 'SH', attribute(study, '00200010')),
    el('00080050', 'SH', attribute(study, '00080050')),
    ...(description === '' ? [] : [el('00081030', 'LO', description)]),
    // SR Document Series
    el('00080060', 'CS', 'SR'),
    el('0020000E', 'UI', ids.seriesInstanceUid),
    el('00200011', 'IS', String(SR_SERIES_NUMBER)),
    el('0008103E', 'LO', 'Radiology report'),
    el('00081111', 'SQ', []),
    // General Equipment
    el('00080070', 'LO', 'radmesh'),
    ...(institution === '' ? [] : [el('00080080', 'LO', institution)]),
    // SR Document General
    el('00200013', 'IS', String(ids.instanceNumber)),
    el('0040A496', 'CS', 'FINAL'),
    el('0040A491', 'CS', 'COMPLETE'),
    el('0040A493', 'CS', 'VERIFIED'),
    el('00080023', 'DA', content.date),
    el('00080033', 'TM', content.time),
    el(
      '0040A073',
      'SQ',
      finalSigners.map(s => [
        el('0040A075', 'PN', personName(s.name)),
        // Type 2, left empty: a peer id would need a private coding scheme ("99…"), which validators flag and
        // no PACS understands; the FHIR DiagnosticReport carries it (resultsInterpreter.identifier).
        el('0040A088', 'SQ', []),
        el('0040A027', 'LO', institution),
        el('0040A030', 'DT', dicomTimes(s.signedAt, `the signature time of ${s.name}`).dateTime)
      ])
    ),
    ...(ids.predecessor === undefined
      ? []
      : [
          el('0040A360', 'SQ', [
            [
              el('0020000D', 'UI', study.studyInstanceUid),
              el('00081115', 'SQ', [
                [
                  el('0020000E', 'UI', ids.predecessor.seriesInstanceUid),
                  el('00081199', 'SQ', [
                    [el('00081150', 'UI', BASIC_TEXT_SR), el('00081155', 'UI', ids.predecessor.sopInstanceUid)]
                  ])
                ]
              ])
            ]
          ])
        ]),
    el('0040A372', 'SQ', []),
    // type 1C: only when there is evidence to list (an empty type 1 sequence is an error)
    ...(evidenceItems.length === 0 ? [] : [el('0040A375', 'SQ', evidenceItems)]),
    // Pertinent Other Evidence (type 1C): the priors the report compared with, by the same references.
    ...(comparedItems.length === 0 ? [] : [el('0040A385', 'SQ', comparedItems)]),
    // SR Document Content: the root item
    el('0040A040', 'CS', 'CONTAINER'),
    el('0040A043', 'SQ', [codeItem(REPORT_TITLE)]),
    el('0040A050', 'CS', 'SEPARATE'),
    el('0040A504', 'SQ', [[el('00080105', 'CS', 'DCMR'), el('0040DB00', 'CS', '2000')]]),
    el('0040A730', 'SQ', contentTree(report, finalSigners, report.language ?? 'en'))
  ]
  const utf8 = needsUtf8(dataset)
  if (utf8) dataset.push(el('00080005', 'CS', 'ISO_IR 192'))
  const header = part10Header({
    sopClassUid: BASIC_TEXT_SR,
    sopInstanceUid: ids.sopInstanceUid,
    transferSyntaxUid: TRANSFER_SYNTAX.explicitLittle
  })
  return Buffer.concat([header, writeDataset(dataset, utf8)])
}
