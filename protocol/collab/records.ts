/**
 * The signed records that the replicated worklist and the report documents are made of.
 *
 * Yjs says nothing about who wrote what, and any member can relay any other member's updates, so
 * authority cannot come from the peer that sent an update. It comes from the records themselves: every
 * record is signed (Ed25519, the author's peer key) over its canonical JSON, and names its author in `by`.
 * A record is stored under a key derived from its signature (`recordKey`), written once and never
 * overwritten or deleted, so the worklist is a grow-only set of records that every node reads the same way.
 *
 * Worklist records (all members hold them; no patient data, only UIDs, codes, names of members and times):
 *   case      a site publishes a case for a stable study: priority, subspecialty, modality, eligible readers;
 *             `purpose: 'second-opinion'` marks a de-identified copy's case, whose readers are the members it was
 *             shared with (the link to the original stays sealed at the site: never in a record)
 *             `acquiring: true` marks a case published at its study's first instance (a STAT study streamed
 *             to its readers while the modality still sends it)
 *   acquired  the site says an acquiring case's study is complete (stable): how many instances it holds
 *   claim     a reader takes a case (IN PROGRESS); `seq` orders it after every claim/release its author saw
 *   release   the holder gives a case back (SCHEDULED again)
 *   consult   a reader invites a second reader onto the case's report
 *   cancel    the site withdraws a case
 *   signed    a report was signed: status and the SHA-256 of its signed content (the content stays in the report)
 *   critical       a reader flags a finding of the case as critical, urgent or unexpected, with a short text
 *   critical-ack   the case's site acknowledges a critical result: the name (and role) of the person who took it
 *   critical-call  a reader records a phone call about a critical result (an escalation's way back to the reader)
 *   critical-escalation  the case's site told the next person on its call list of an unacknowledged critical
 *             result (step 1 and on; step 0: it told the first of the raise): one per step, the earliest counts
 *   priors    the case's site lists the patient's earlier studies it shared with the readers (prior-records.ts)
 *   duty      a radiologist's on-duty shifts (the latest record of an author replaces its earlier ones)
 *   member    a member's certificate (signed by the consortium root, not by `by`): every node publishes its
 *             own, so every member can check the role of an author it has never been connected to
 * Report records (only the case's site and readers hold them, inside the report document):
 *   binding          "Yjs client N of this report is me": section edits by client N are the author's
 *   report-signature a signature over the sections (PRELIMINARY, FINAL) or over an addendum's text
 */
import { MalformedMessageError } from '../errors.ts'
import type { PeerIdString } from '../ids.ts'
import { asObject, integerField, signingBytes, stringField, timeField } from '../json.ts'
import { peerIdField, uidField } from '../exchange/manifest.ts'
import { decodeCertificate, type MemberCertificate } from '../membership/certificate.ts'
import { decodePriorsFields, type PriorsRecord } from './prior-records.ts'
import {
  CASE_ID,
  caseIdField,
  codeField,
  criticalIdField,
  exactly,
  listField,
  oneOf,
  type Signed,
  seqField,
  signedFields
} from './record-fields.ts'

export { RECORD_VERSION } from './record-fields.ts'
export type { PriorEntry, PriorsRecord } from './prior-records.ts'

export const SIGNING_CONTEXT_WORKLIST_RECORD = 'radmesh/worklist-record/v1\n'
export const SIGNING_CONTEXT_REPORT_RECORD = 'radmesh/report-record/v1\n'

export const PRIORITIES = ['STAT', 'URGENT', 'ROUTINE'] as const
export type Priority = (typeof PRIORITIES)[number]
export const SECTION_NAMES = ['indication', 'technique', 'comparison', 'findings', 'impression'] as const
export type SectionName = (typeof SECTION_NAMES)[number]
export type Sections = Record<SectionName, string>
/**
 * The report document's two maps beside its sections: Yjs client id -> `binding`, record key ->
 * `report-signature`. Presence reads the bindings too (a state is taken only for a client bound to its sender).
 */
export const EDITORS_MAP = 'editors'
export const SIGNATURES_MAP = 'signatures'
/** What the records make of a case (node/worklist/cases.ts derives it, the same on every node). */
export const CASE_STATUSES = ['SCHEDULED', 'IN PROGRESS', 'COMPLETED', 'CANCELED'] as const
export type CaseStatus = (typeof CASE_STATUSES)[number]
export const SIGNATURE_STATUSES = ['PRELIMINARY', 'FINAL', 'ADDENDUM'] as const
export type SignatureStatus = (typeof SIGNATURE_STATUSES)[number]
/** How pressing a critical result is, the most pressing first (ACR practice parameter on communication). */
export const CRITICAL_LEVELS = ['critical', 'urgent', 'unexpected'] as const
export type CriticalLevel = (typeof CRITICAL_LEVELS)[number]
/** A critical result's text: a finding in a sentence or two, read out on the phone; the report holds the rest. */
export const MAX_CRITICAL_TEXT = 500
/** A person's name (who acknowledged) and role at the site ("ED attending"). */
export const MAX_PERSON_NAME = 128
export const MAX_PERSON_ROLE = 64
/** Why a case exists beyond reading the study it names: a second opinion on a de-identified copy. */
export const CASE_PURPOSES = ['second-opinion'] as const
export type CasePurpose = (typeof CASE_PURPOSES)[number]

/** Readers a case can name: a whole department, not more. */
export const MAX_CASE_READERS = 256
export const MAX_SHIFTS = 64
/** One section of a report (a long CT chest/abdomen/pelvis findings section is ~10 kB). */
export const MAX_SECTION_CHARS = 64 * 1024
export const MAX_RECORD_BYTES = 8 * 1024 + 5 * MAX_SECTION_CHARS * 4
const RECORD_KEY = /^[a-z-]{3,20}:[A-Za-z0-9_-]{43}$/

export interface CaseRecord extends Signed {
  kind: 'case'
  caseId: string
  studyUid: string
  site: PeerIdString
  siteName: string
  priority: Priority
  subspecialty: string
  modalities: string[]
  bodyPart: string
  readers: PeerIdString[]
  createdAt: string
  dueAt: string
  /** absent for a case routed by the site's rules */
  purpose?: CasePurpose
  /** published at the study's first instance, while it was still arriving (an `acquired` record completes it) */
  acquiring?: true
}
/** The study of an acquiring case is complete: no new instance for the site's `--stable-after`. */
export interface AcquiredRecord extends Signed {
  kind: 'acquired'
  caseId: string
  /** the study's instances when it became stable */
  instances: number
}
export interface ClaimRecord extends Signed {
  kind: 'claim'
  caseId: string
  seq: number
}
export interface ReleaseRecord extends Signed {
  kind: 'release'
  caseId: string
  claim: string
  seq: number
}
export interface ConsultRecord extends Signed {
  kind: 'consult'
  caseId: string
  consultant: PeerIdString
}
export interface CancelRecord extends Signed {
  kind: 'cancel'
  caseId: string
  reason: string
}
export interface SignedRecord extends Signed {
  kind: 'signed'
  caseId: string
  status: SignatureStatus
  reportHash: string
}
/** `id` is 24 hex digits chosen by the reader; the acknowledgement and calls name it. */
export interface CriticalRecord extends Signed {
  kind: 'critical'
  caseId: string
  id: string
  level: CriticalLevel
  text: string
}
export interface CriticalAckRecord extends Signed {
  kind: 'critical-ack'
  caseId: string
  criticalId: string
  name: string
  role: string
}
export interface CriticalCallRecord extends Signed {
  kind: 'critical-call'
  caseId: string
  criticalId: string
  note: string
}
/** `step` 0 is the raise told to the call list; each later step one escalation. `notify` may be empty. */
export interface CriticalEscalationRecord extends Signed {
  kind: 'critical-escalation'
  caseId: string
  criticalId: string
  step: number
  notify: string
}
/** A call list is short: a step past this is not one any site reaches. */
export const MAX_ESCALATION_STEP = 64
export type CriticalRecords = CriticalRecord | CriticalAckRecord | CriticalCallRecord | CriticalEscalationRecord
export interface Shift {
  start: string
  end: string
}
export interface DutyRecord extends Signed {
  kind: 'duty'
  shifts: Shift[]
}
export interface MemberRecord {
  kind: 'member'
  certificate: MemberCertificate
}
export type AuthoredWorklistRecord =
  | CaseRecord
  | AcquiredRecord
  | ClaimRecord
  | ReleaseRecord
  | ConsultRecord
  | CancelRecord
  | SignedRecord
  | DutyRecord
  | CriticalRecords
  | PriorsRecord
export type WorklistRecord = AuthoredWorklistRecord | MemberRecord

export interface BindingRecord extends Signed {
  kind: 'binding'
  caseId: string
  clientId: number
}
export interface ReportSignatureRecord extends Signed {
  kind: 'report-signature'
  caseId: string
  studyUid: string
  status: SignatureStatus
  /** the signed sections (PRELIMINARY, FINAL); empty strings for an addendum */
  sections: Sections
  /** the addendum's text; empty for PRELIMINARY and FINAL */
  text: string
}
export type ReportRecord = BindingRecord | ReportSignatureRecord

type Unsigned<T> = T extends Signed ? Omit<T, 'signature'> : never
export type UnsignedWorklistRecord = Unsigned<AuthoredWorklistRecord>
export type UnsignedReportRecord = Unsigned<ReportRecord>

/** The key a record is stored under: its kind and the first 32 bytes of its (deterministic) Ed25519 signature. */
export const recordKey = (record: { kind: string; signature: string } | MemberRecord): string =>
  `${record.kind}:${('certificate' in record ? record.certificate.signature : record.signature).slice(0, 43)}`
export const isRecordKey = (key: string): boolean => RECORD_KEY.test(key)

export const worklistSigningBytes = (record: UnsignedWorklistRecord | AuthoredWorklistRecord): Uint8Array =>
  signingBytes(SIGNING_CONTEXT_WORKLIST_RECORD, record)
export const reportSigningBytes = (record: UnsignedReportRecord | ReportRecord): Uint8Array =>
  signingBytes(SIGNING_CONTEXT_REPORT_RECORD, record)

export const isCaseId = (value: string): boolean => CASE_ID.test(value)

function sectionsField(object: Record<string, unknown>, what: string): Sections {
  const value = asObject(object['sections'], `${what}.sections`)
  const sections = {} as Sections
  for (const name of SECTION_NAMES) sections[name] = stringField(value, name, `${what}.sections`, MAX_SECTION_CHARS)
  if (Object.keys(value).length !== SECTION_NAMES.length)
    throw new MalformedMessageError(`${what}.sections must have exactly ${SECTION_NAMES.join(', ')}`)
  return sections
}

/** Checks the shape of a worklist record (not its signature: see node/collab/records.ts). */
export function decodeWorklistRecord(value: unknown): WorklistRecord {
  return exactly(asObject(value, 'worklist record'), decodeWorklistFields(value), 'worklist record')
}

function decodeWorklistFields(value: unknown): WorklistRecord {
  const what = 'worklist record'
  const object = asObject(value, what)
  const kind = stringField(object, 'kind', what, 20)
  if (kind === 'member') {
    if (Object.keys(object).length !== 2)
      throw new MalformedMessageError('member record must hold only kind and certificate')
    return { kind, certificate: decodeCertificate(object['certificate']) }
  }
  const signed = signedFields(object, `${what} (${kind})`)
  switch (kind) {
    case 'case': {
      const w = 'case record'
      return {
        ...signed,
        kind,
        caseId: caseIdField(object, w),
        studyUid: uidField(object, 'studyUid', w),
        site: peerIdField(object, 'site', w),
        siteName: stringField(object, 'siteName', w, 128),
        priority: oneOf(object, 'priority', PRIORITIES, w),
        subspecialty: codeField(object, 'subspecialty', w),
        modalities: listField(object, 'modalities', w, 16, (entry, at) => {
          if (typeof entry !== 'string' || !/^[A-Z0-9]{1,16}$/.test(entry))
            throw new MalformedMessageError(`${at} must be a DICOM modality code`)
          return entry
        }),
        bodyPart: stringField(object, 'bodyPart', w, 64),
        readers: listField(object, 'readers', w, MAX_CASE_READERS, (entry, at) =>
          peerIdField({ peer: entry }, 'peer', at)
        ),
        createdAt: timeField(object, 'createdAt', w),
        dueAt: timeField(object, 'dueAt', w),
        ...(object['purpose'] === undefined ? {} : { purpose: oneOf(object, 'purpose', CASE_PURPOSES, w) }),
        ...(object['acquiring'] === undefined ? {} : { acquiring: acquiringField(object['acquiring'], w) })
      }
    }
    case 'acquired': {
      const instances = integerField(object, 'instances', 'acquired record')
      if (instances < 1) throw new MalformedMessageError('acquired record.instances must be 1 or more')
      return { ...signed, kind, caseId: caseIdField(object, 'acquired record'), instances }
    }
    case 'claim':
      return { ...signed, kind, caseId: caseIdField(object, 'claim record'), seq: seqField(object, 'claim record') }
    case 'release': {
      const claim = stringField(object, 'claim', 'release record', 64)
      if (!RECORD_KEY.test(claim) || !claim.startsWith('claim:'))
        throw new MalformedMessageError('release record.claim must be the key of a claim record')
      return {
        ...signed,
        kind,
        caseId: caseIdField(object, 'release record'),
        claim,
        seq: seqField(object, 'release record')
      }
    }
    case 'consult':
      return {
        ...signed,
        kind,
        caseId: caseIdField(object, 'consult record'),
        consultant: peerIdField(object, 'consultant', 'consult record')
      }
    case 'cancel':
      return {
        ...signed,
        kind,
        caseId: caseIdField(object, 'cancel record'),
        reason: stringField(object, 'reason', 'cancel record', 512)
      }
    case 'signed': {
      const reportHash = stringField(object, 'reportHash', 'signed record', 64)
      if (!/^[0-9a-f]{64}$/.test(reportHash))
        throw new MalformedMessageError('signed record.reportHash must be a hex SHA-256')
      return {
        ...signed,
        kind,
        caseId: caseIdField(object, 'signed record'),
        status: oneOf(object, 'status', SIGNATURE_STATUSES, 'signed record'),
        reportHash
      }
    }
    case 'critical':
    case 'critical-ack':
    case 'critical-call':
    case 'critical-escalation':
      return { ...signed, ...decodeCriticalFields(kind, object) } as CriticalRecords
    case 'priors':
      return { ...signed, ...decodePriorsFields(object) }
    case 'duty':
      return {
        ...signed,
        kind,
        shifts: listField(object, 'shifts', 'duty record', MAX_SHIFTS, (entry, at) => {
          const shift = asObject(entry, at)
          const start = timeField(shift, 'start', at)
          const end = timeField(shift, 'end', at)
          if (Date.parse(end) <= Date.parse(start)) throw new MalformedMessageError(`${at} must end after it starts`)
          return { start, end }
        })
      }
    default:
      throw new MalformedMessageError(`worklist record kind "${kind}" is not one this radmesh knows`)
  }
}

function acquiringField(value: unknown, what: string): true {
  if (value !== true) throw new MalformedMessageError(`${what}.acquiring must be true when present`)
  return true
}

type Fields<T> = T extends Signed ? Omit<T, keyof Signed> : never

function decodeCriticalFields(kind: CriticalRecords['kind'], object: Record<string, unknown>): Fields<CriticalRecords> {
  const w = `${kind} record`
  const caseId = caseIdField(object, w)
  if (kind === 'critical') {
    const text = stringField(object, 'text', w, MAX_CRITICAL_TEXT)
    if (text.trim() === '') throw new MalformedMessageError(`${w}.text must say what was found`)
    const level = oneOf(object, 'level', CRITICAL_LEVELS, w)
    return { kind, caseId, id: criticalIdField(object, 'id', w), level, text }
  }
  const criticalId = criticalIdField(object, 'criticalId', w)
  if (kind === 'critical-call') {
    return { kind, caseId, criticalId, note: stringField(object, 'note', w, MAX_CRITICAL_TEXT) }
  }
  if (kind === 'critical-escalation') {
    const step = integerField(object, 'step', w)
    if (step < 0 || step > MAX_ESCALATION_STEP)
      throw new MalformedMessageError(`${w}.step must be 0 to ${MAX_ESCALATION_STEP}`)
    return { kind, caseId, criticalId, step, notify: stringField(object, 'notify', w, MAX_PERSON_NAME) }
  }
  const name = stringField(object, 'name', w, MAX_PERSON_NAME)
  if (name.trim() === '') throw new MalformedMessageError(`${w}.name must name who acknowledged`)
  return { kind, caseId, criticalId, name, role: stringField(object, 'role', w, MAX_PERSON_ROLE) }
}

/** Checks the shape of a record of a report document (not its signature). */
export function decodeReportRecord(value: unknown): ReportRecord {
  return exactly(asObject(value, 'report record'), decodeReportFields(value), 'report record')
}

function decodeReportFields(value: unknown): ReportRecord {
  const what = 'report record'
  const object = asObject(value, what)
  const kind = stringField(object, 'kind', what, 20)
  const signed = signedFields(object, `${what} (${kind})`)
  if (kind === 'binding') {
    const clientId = integerField(object, 'clientId', 'binding record')
    if (clientId < 0 || clientId > 0xffffffff)
      throw new MalformedMessageError('binding record.clientId must be a 32-bit Yjs client id')
    return { ...signed, kind, caseId: caseIdField(object, 'binding record'), clientId }
  }
  if (kind === 'report-signature') {
    const w = 'report signature'
    const status = oneOf(object, 'status', SIGNATURE_STATUSES, w)
    const record: ReportSignatureRecord = {
      ...signed,
      kind,
      caseId: caseIdField(object, w),
      studyUid: uidField(object, 'studyUid', w),
      status,
      sections: sectionsField(object, w),
      text: stringField(object, 'text', w, MAX_SECTION_CHARS)
    }
    if (status === 'ADDENDUM' && record.text.trim() === '')
      throw new MalformedMessageError(`${w}: an addendum needs text`)
    return record
  }
  throw new MalformedMessageError(`report record kind "${kind}" is not one this radmesh knows`)
}
