/**
 * A FINAL report (or the report with its addenda) as an HL7 v2.5.1 ORU^R01 message, the form most RIS file
 * reports from, and the ACK that answers it. Layout, field by field, in docs/HL7.md:
 *
 *   MSH  sender RADMESH at the site, ORU^R01^ORU_R01, a control id fixed per report version, 2.5.1, UTF-8
 *   PID  the study's patient: ID, name, birth date, sex
 *   ORC  RE, placer and filler order numbers, CM
 *   OBR  the order again, the procedure, the study time, accession, the case, result status F (first FINAL)
 *        or C (a correction: the report with an addendum), the signer as principal result interpreter
 *   OBX  one FT per non-empty section, then one per addendum, LOINC-coded
 *
 * Text goes through `escapeText`: HL7's delimiters and escape character become escape sequences, line breaks
 * `\.br\` (FT), other control characters `\Xhh\`, so no report text can end a field, a segment or a message.
 */
import type { FinalReport, ReportSections, StudyForReport } from '../sr.ts'

export const HL7_VERSION = '2.5.1'
export const SENDING_APPLICATION = 'RADMESH'
/** MSH-10 is ST, but many receivers keep only 20 characters of it. */
export const CONTROL_ID_LENGTH = 20

/**
 * HL7 result status (table 0123) of one message: F the first FINAL report, C a correction of it, P a critical
 * result told before (or beside) the report (critical.ts).
 */
export type ResultStatus = 'F' | 'C' | 'P'

/** LOINC codes of the sections (as the SR headings, CID 7001), and of an addendum. */
export const SECTION_CODES: Array<[keyof ReportSections, string, string]> = [
  ['indication', '18785-6', 'Indications for procedure'],
  ['technique', '55111-9', 'Current procedure descriptions'],
  ['comparison', '55114-3', 'Prior procedure descriptions'],
  ['findings', '59776-5', 'Procedure findings'],
  ['impression', '19005-8', 'Impression']
]
export const ADDENDUM_CODE = ['55107-7', 'Addendum'] as const

/** Text as an HL7 value: delimiters and the escape character escaped, line breaks as FT's `\.br\`. */
export function escapeText(text: string): string {
  return (
    text
      .replace(/\\/g, '\\E\\')
      .replace(/\|/g, '\\F\\')
      .replace(/\^/g, '\\S\\')
      .replace(/&/g, '\\T\\')
      .replace(/~/g, '\\R\\')
      .replace(/\r\n|\r|\n/g, '\\.br\\')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this escapes
      .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, c => `\\X${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}\\`)
  )
}

/** The text an escaped value stands for (the inverse of `escapeText`). */
export function unescapeText(value: string): string {
  const named: Record<string, string> = { E: '\\', F: '|', S: '^', T: '&', R: '~', '.br': '\n' }
  return value.replace(
    /\\(E|F|S|T|R|\.br|X[0-9A-Fa-f]{2})\\/g,
    (_, code: string) => named[code] ?? String.fromCharCode(Number.parseInt(code.slice(1), 16))
  )
}

/** An ISO 8601 time as HL7 DTM in UTC: 2026-12-07T05:30:32.397Z -> 20261207053032+0000. */
export function hl7Time(iso: string): string {
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return ''
  return `${date.toISOString().slice(0, 19).replace(/[-T:]/g, '')}+0000`
}

/** A study attribute's first value, or ''. */
export function first(study: StudyForReport, tag: string): string {
  const value = study.attributes[tag]
  const one = Array.isArray(value) ? value[0] : value
  return typeof one === 'string' ? one.trim() : ''
}

/** A DICOM PN (family^given^middle^prefix^suffix) as XPN (family^given^middle^suffix^prefix), escaped. */
export function personName(pn: string): string {
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = (pn.split('=')[0] ?? '').split('^')
  return trimComponents(
    [family, given, middle, suffix, prefix].map(c => escapeText(c.trim())),
    '^'
  )
}

/** Components joined, the empty ones at the end left out (HL7 allows and most receivers prefer it). */
export function trimComponents(parts: string[], separator: string): string {
  let end = parts.length
  while (end > 0 && parts[end - 1] === '') end--
  return parts.slice(0, end).join(separator)
}

/** One segment: its name and its fields from field 1 on, empty ones at the end left out. */
export function segment(name: string, fields: string[]): string {
  return trimComponents([name, ...fields], '|')
}

/** Fields 1..n from a sparse map of field number to value. */
export function fields(values: Record<number, string>): string[] {
  const last = Math.max(...Object.keys(values).map(Number))
  return Array.from({ length: last }, (_, i) => values[i + 1] ?? '')
}

/** DICOM date and time (local, no zone) as HL7 DTM: the day, and the time to the second when there is one. */
export function studyTime(study: StudyForReport): string {
  const date = first(study, '00080020')
  if (!/^\d{8}$/.test(date)) return ''
  const time = /^(\d{2,6})/.exec(first(study, '00080030'))?.[1] ?? ''
  return `${date}${time.length % 2 === 0 ? time : ''}`
}

/** MSH and PID of a result message on `study` (PID from the study's patient). */
export function header(
  study: StudyForReport,
  o: { controlId: string; sentAt: string; sendingFacility: string; messageType: string }
): string[] {
  const sex = first(study, '00100040').toUpperCase()
  const birth = first(study, '00100030')
  return [
    segment('MSH', [
      '^~\\&',
      SENDING_APPLICATION,
      escapeText(o.sendingFacility),
      '',
      '',
      hl7Time(o.sentAt),
      '',
      o.messageType,
      o.controlId,
      'P',
      HL7_VERSION,
      '',
      '',
      '',
      '',
      '',
      'UNICODE UTF-8'
    ]),
    segment(
      'PID',
      fields({
        1: '1',
        3: trimComponents([escapeText(first(study, '00100020')), '', '', '', 'MR'], '^'),
        5: personName(first(study, '00100010')),
        7: /^\d{8}$/.test(birth) ? birth : '',
        8: ['M', 'F', 'O'].includes(sex) ? sex : ''
      })
    )
  ]
}

/**
 * The order a result answers: the accession number, and the RIS's own placer and filler order numbers when the
 * modality put them in the study (indexed at ingest); else the accession number stands for both, as radiology
 * departments file orders under it (IHE SWF keeps it in OBR-18 too).
 */
export function orderNumbers(study: StudyForReport): { accession: string; placer: string; filler: string } {
  const accession = escapeText(first(study, '00080050'))
  return {
    accession,
    placer: escapeText(first(study, '00402016')) || accession,
    filler: escapeText(first(study, '00402017')) || accession
  }
}

export interface OruOptions {
  /** MSH-10, the same on every attempt of this message */
  controlId: string
  /** MSH-7 */
  sentAt: string
  /** MSH-4: the site that sends it */
  sendingFacility: string
  /** which message of the report this is: F the first FINAL, C one with an addendum */
  resultStatus: ResultStatus
}

/** The ORU^R01 of `report` on `study`, segments separated by CR (no MLLP framing). */
export function oruR01(report: FinalReport, study: StudyForReport, o: OruOptions): string {
  const signer = report.signers.find(s => s.status === 'FINAL')
  const { accession, placer, filler } = orderNumbers(study)
  const changedAt = report.addenda.at(-1)?.signedAt ?? report.finalAt
  const observed = studyTime(study)
  const referring = personName(first(study, '00080090'))
  const ordering = referring === '' ? '' : `^${referring}`
  const interpreter =
    signer === undefined ? '' : trimComponents([escapeText(signer.peerId), escapeText(signer.name)], '&')
  const segments = [
    ...header(study, { ...o, messageType: 'ORU^R01^ORU_R01' }),
    segment('ORC', fields({ 1: 'RE', 2: placer, 3: filler, 5: 'CM', 9: hl7Time(changedAt), 12: ordering })),
    segment(
      'OBR',
      fields({
        1: '1',
        2: placer,
        3: filler,
        4: `^${escapeText(first(study, '00081030') || 'Imaging study')}`,
        7: observed,
        16: ordering,
        18: accession,
        20: escapeText(report.caseId),
        22: hl7Time(changedAt),
        24: 'RAD',
        25: o.resultStatus,
        32: interpreter
      })
    ),
    ...observations(report, o.resultStatus, observed, signer)
  ]
  return segments.join('\r')
}

/** OBX per non-empty section, then per addendum: formatted text, the signer as responsible observer. */
function observations(
  report: FinalReport,
  status: ResultStatus,
  observed: string,
  signer: { peerId: string; name: string } | undefined
): string[] {
  const by = signer === undefined ? '' : `${escapeText(signer.peerId)}^${escapeText(signer.name)}`
  const items = SECTION_CODES.filter(([name]) => report.sections[name].trim() !== '').map(([name, code, title]) => ({
    code,
    title,
    text: report.sections[name].trim(),
    by
  }))
  for (const addendum of report.addenda) {
    items.push({
      code: ADDENDUM_CODE[0],
      title: ADDENDUM_CODE[1],
      text: addendum.text.trim(),
      by: `^${escapeText(addendum.signerName)}`
    })
  }
  return items.map(({ code, title, text, by }, i) =>
    segment(
      'OBX',
      fields({
        1: String(i + 1),
        2: 'FT',
        3: `${code}^${title}^LN`,
        5: escapeText(text),
        11: status,
        14: observed,
        16: by
      })
    )
  )
}

/** What an ACK said: MSA-1 (AA, AE, AR, or CA, CE, CR), MSA-2 and the reason given (MSA-3 or ERR-8). */
export interface Ack {
  code: string
  controlId: string
  text: string
}

/** The ACK in `text` (segments separated by CR), or undefined when it has no MSA segment. */
export function parseAck(text: string): Ack | undefined {
  const segments = text.split(/\r\n|\r|\n/).map(line => line.split('|'))
  const msa = segments.find(s => s[0] === 'MSA')
  if (msa === undefined) return undefined
  const err = segments.find(s => s[0] === 'ERR')
  const reason = msa[3] || err?.[8] || err?.[3]?.split('^')[1] || ''
  return { code: msa[1] ?? '', controlId: msa[2] ?? '', text: unescapeText(reason) }
}

/** An ACK code that files the message: AA (application accept) or CA (commit accept, enhanced mode). */
export const isAccept = (code: string): boolean => code === 'AA' || code === 'CA'
