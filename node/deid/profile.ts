/**
 * The Basic Application Level Confidentiality Profile (PS3.15 E.1.1) and the two options radmesh offers, as
 * one decision per attribute: what Table E.1-1 (table.ts) says, resolved for the options chosen, and, for what
 * the table does not list, a rule by kind that errs towards removing.
 *
 * Where the table gives a choice that depends on the IOD, radmesh takes the one valid in every IOD it can: `X/D`,
 * `X/Z/D` and `Z/D` a dummy value, `X/Z` a zero-length value (never removing a Type 2 attribute). The Acquisition
 * Context Sequence, which the table removes, is left empty instead: it is Type 2 wherever it is (PS3.3 C.7.6.14),
 * and an empty sequence carries nothing.
 * `X/Z/U*` (a reference sequence) is kept, with every UID in it replaced. In the items of a sequence given a
 * dummy value (D), what would be removed gets a dummy value instead, so the structure the IOD asks for stays.
 *
 * Beyond the table, at every depth:
 * - private attributes (odd groups), group lengths, curves (50xx) and overlays (60xx) are removed;
 * - every UID is replaced except those naming a kind of thing rather than a thing (SOP classes, transfer
 *   syntaxes, coding schemes) and those under the standard's root 1.2.840.10008;
 * - dates (DA, DT) are given a dummy value (a Type 1 date stays valid), shifted or kept with the options;
 * - person names (PN) are emptied; free text (LT, ST, UT) is replaced by a dummy value.
 * "Clean" (C) of a text value is removal: radmesh cannot tell what in free text identifies a patient.
 */
import { ANNEX_E, type TableAction } from './table.ts'

/** Retain Longitudinal Temporal Information: `full` keeps dates and times, `modified` shifts dates. */
export type RetainDates = 'full' | 'modified'

export interface ProfileOptions {
  /** PS3.15 E.3.6; without it, dates are removed or emptied as the Basic Profile says */
  retainDates?: RetainDates
  /** PS3.15 E.3.7: sex, age, size, weight, and the other patient characteristics the table marks */
  retainPatientCharacteristics?: boolean
}

/** What happens to one attribute. A sequence that is kept, or given a dummy value, is cleaned item by item. */
export type Action = 'remove' | 'empty' | 'dummy' | 'keep' | 'clean' | 'uid'

/** UIDs that name a kind of thing (a class, a syntax, a coding scheme), not a patient's: never replaced. */
const KIND_UIDS: ReadonlySet<number> = new Set([
  0x00020002, // Media Storage SOP Class UID
  0x00020010, // Transfer Syntax UID
  0x00041510, // Referenced SOP Class UID in File
  0x00041512, // Referenced Transfer Syntax UID in File
  0x00080016, // SOP Class UID
  0x0008001a, // Related General SOP Class UID
  0x0008001b, // Original Specialized SOP Class UID
  0x0008010c, // Coding Scheme UID
  0x00080117, // Context UID
  0x00080118, // Mapping Resource UID
  0x00081150 // Referenced SOP Class UID
])

/** The root of every UID the standard itself defines. */
const DICOM_ROOT = '1.2.840.10008.'

/** Whether a UID value is kept as it is wherever it appears. */
export const isStandardUid = (uid: string): boolean => uid.startsWith(DICOM_ROOT)

export const isKindUid = (tag: number): boolean => KIND_UIDS.has(tag)

const RESOLVED: Readonly<Record<TableAction, Action>> = {
  D: 'dummy',
  Z: 'empty',
  X: 'remove',
  K: 'keep',
  C: 'clean',
  U: 'uid',
  'X/Z': 'empty',
  'X/D': 'dummy',
  'Z/D': 'dummy',
  'X/Z/D': 'dummy',
  'X/Z/U*': 'keep'
}

const ACQUISITION_CONTEXT_SEQUENCE = 0x00400555

const isRepeatingGroup = (group: number): boolean => (group & 0xff00) === 0x5000 || (group & 0xff00) === 0x6000

/** What the profile, with these options, does to the attribute `tag` of VR `vr`, at any depth. */
export function actionFor(tag: number, vr: string, options: ProfileOptions): Action {
  const group = tag >>> 16
  if ((group & 1) === 1 || (tag & 0xffff) === 0 || isRepeatingGroup(group)) return 'remove'
  const row = ANNEX_E.get(tag)
  if (row !== undefined) {
    if (options.retainDates !== undefined && row.temporal !== undefined)
      return options.retainDates === 'full' ? 'keep' : 'clean'
    if (options.retainPatientCharacteristics === true && row.patient !== undefined)
      return row.patient === 'K' ? 'keep' : 'clean'
    return tag === ACQUISITION_CONTEXT_SEQUENCE ? 'empty' : RESOLVED[row.basic]
  }
  switch (vr) {
    case 'UI':
      return isKindUid(tag) ? 'keep' : 'uid'
    case 'DA':
    case 'DT':
      if (options.retainDates === 'full') return 'keep'
      return options.retainDates === 'modified' ? 'clean' : 'dummy'
    case 'PN':
      return 'empty'
    case 'LT':
    case 'ST':
    case 'UT':
      return 'dummy'
    default:
      return 'keep'
  }
}

/** A dummy value for a VR (PS3.15 E.1.1: "a non-zero length value … consistent with the VR"). */
export function dummyValue(vr: string): string | undefined {
  switch (vr) {
    case 'PN':
      return 'ANONYMOUS'
    case 'DA':
      return '19000101'
    case 'DT':
      return '19000101000000'
    case 'TM':
      return '000000'
    case 'AS':
      return '000Y'
    case 'DS':
    case 'IS':
      return '0'
    case 'AE':
    case 'CS':
    case 'SH':
    case 'LO':
    case 'UC':
    case 'LT':
    case 'ST':
    case 'UT':
      return 'ANONYMIZED'
    default:
      return undefined
  }
}

const DAY_MS = 86_400_000

function shiftDate(date: string, days: number): string | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})$/.exec(date)
  if (match === null) return undefined
  const time = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]))
  if (Number.isNaN(time)) return undefined
  const shifted = new Date(time + days * DAY_MS)
  const year = shifted.getUTCFullYear()
  if (year < 1 || year > 9999) return undefined
  const pad = (n: number, width: number) => String(n).padStart(width, '0')
  return `${pad(year, 4)}${pad(shifted.getUTCMonth() + 1, 2)}${pad(shifted.getUTCDate(), 2)}`
}

/**
 * A DA or DT value (one or more, backslash-separated) with every date moved by `days`; a value that is not a
 * whole date (a year alone, a range, a malformed one) becomes empty rather than stay as it was.
 */
export function shiftDates(value: string, vr: 'DA' | 'DT', days: number): string {
  return value
    .split('\\')
    .map(one => {
      const text = one.trim()
      if (text === '') return ''
      const shifted = shiftDate(text.slice(0, 8), days)
      if (shifted === undefined || (vr === 'DA' && text.length !== 8)) return ''
      return shifted + text.slice(8)
    })
    .join('\\')
}
