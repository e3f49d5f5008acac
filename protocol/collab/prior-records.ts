/**
 * The `priors` record of a case document: the case's site lists the patient's earlier studies it found in its
 * PACS and shared with the case's readers (each study's key wrapped for them, so they fetch it from the site
 * like the case's own study), or could not retrieve (with why). The site's latest `priors` record of a case
 * replaces its earlier ones; a record by anyone else is ignored. Only the case's site, readers and
 * consultants hold a case document, so the studies' dates and descriptions go no further than the images do.
 */
import { MalformedMessageError } from '../errors.ts'
import { asObject, integerField, stringField } from '../json.ts'
import { uidField } from '../exchange/manifest.ts'
import { caseIdField, listField, oneOf, type Signed } from './record-fields.ts'

/** Priors one case lists at most (the site's rule picks 3 by default). */
export const MAX_CASE_PRIORS = 20
export const PRIOR_RECORD_STATES = ['shared', 'failed'] as const
export type PriorRecordState = (typeof PRIOR_RECORD_STATES)[number]

export interface PriorEntry {
  studyUid: string
  /** DICOM DA, '' when the PACS gave none */
  studyDate: string
  studyDescription: string
  modalities: string[]
  bodyPart: string
  accessionNumber: string
  instances: number
  state: PriorRecordState
  /** why it could not be retrieved; '' when shared */
  error: string
}

export interface PriorsRecord extends Signed {
  kind: 'priors'
  caseId: string
  priors: PriorEntry[]
}

const ENTRY_KEYS = [
  'studyUid',
  'studyDate',
  'studyDescription',
  'modalities',
  'bodyPart',
  'accessionNumber',
  'instances',
  'state',
  'error'
]

function priorEntry(value: unknown, what: string): PriorEntry {
  const entry = asObject(value, what)
  const extra = Object.keys(entry).filter(key => !ENTRY_KEYS.includes(key))
  if (extra.length > 0) throw new MalformedMessageError(`${what} has fields it must not have: ${extra.join(', ')}`)
  const studyDate = stringField(entry, 'studyDate', what, 8)
  if (!/^(\d{8})?$/.test(studyDate)) throw new MalformedMessageError(`${what}.studyDate must be YYYYMMDD or empty`)
  const instances = integerField(entry, 'instances', what)
  if (instances < 0) throw new MalformedMessageError(`${what}.instances must be 0 or more`)
  return {
    studyUid: uidField(entry, 'studyUid', what),
    studyDate,
    studyDescription: stringField(entry, 'studyDescription', what, 64),
    modalities: listField(entry, 'modalities', what, 16, (item, at) => {
      if (typeof item !== 'string' || !/^[A-Z0-9]{1,16}$/.test(item))
        throw new MalformedMessageError(`${at} must be a DICOM modality code`)
      return item
    }),
    bodyPart: stringField(entry, 'bodyPart', what, 64),
    accessionNumber: stringField(entry, 'accessionNumber', what, 16),
    instances,
    state: oneOf(entry, 'state', PRIOR_RECORD_STATES, what),
    error: stringField(entry, 'error', what, 256)
  }
}

/** The fields of a `priors` record after its signed part (the caller checks there are no others). */
export function decodePriorsFields(object: Record<string, unknown>): Omit<PriorsRecord, keyof Signed> {
  const what = 'priors record'
  return {
    kind: 'priors',
    caseId: caseIdField(object, what),
    priors: listField(object, 'priors', what, MAX_CASE_PRIORS, (entry, at) => priorEntry(entry, at))
  }
}
