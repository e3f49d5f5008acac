/**
 * The study exchange over HTTP:
 * `POST /api/studies/:studyUid/share` `{ peerIds, deidentify?, retainDates?, retainPatientCharacteristics?,
 *   burnedInAnnotationClean? }`: wraps the study key for these members and announces it; with `deidentify`, a
 *   copy de-identified per PS3.15 Annex E is stored as a new study and shared instead, and the answer names it.
 * `POST /api/studies/:studyUid/fetch`: 202; the node fetches the study from whoever holds it.
 * `GET /api/studies/:studyUid/availability`: how much of the study is on this node, and how its fetch stands.
 */
import { type Static, Type } from 'typebox'
import { PeerId } from './common.ts'

/** The most members one share names. */
export const MAX_RECIPIENTS = 64

/** PS3.15 E.3.6, Retain Longitudinal Temporal Information: dates kept as they are, or all moved by one offset. */
export const RETAIN_DATES = ['full', 'modified'] as const

export const ShareBody = Type.Object({
  peerIds: Type.Array(PeerId, { minItems: 1, maxItems: MAX_RECIPIENTS }),
  /** share a copy de-identified per the Basic Application Level Confidentiality Profile, not the study */
  deidentify: Type.Optional(Type.Boolean()),
  /** the Retain Longitudinal Temporal Information option (only with `deidentify`) */
  retainDates: Type.Optional(Type.Enum([...RETAIN_DATES])),
  /** the Retain Patient Characteristics option: sex, age, size, weight (only with `deidentify`) */
  retainPatientCharacteristics: Type.Optional(Type.Boolean()),
  /** the site has checked that no image's burned-in annotation identifies the patient (only with `deidentify`) */
  burnedInAnnotationClean: Type.Optional(Type.Boolean())
})
export type ShareBody = Static<typeof ShareBody>

export const Shared = Type.Object({
  studyUid: Type.String(),
  /** the study the recipients get: `studyUid`, the copy's new Study Instance UID when de-identified */
  studyInstanceUid: Type.String(),
  /** the study the de-identified copy was made of; it stays at the site */
  originalStudyUid: Type.Optional(Type.String()),
  /** the study version shared (a study that grew has a new one) */
  versionId: Type.String(),
  recipients: Type.Array(Type.Object({ peerId: Type.String(), announced: Type.Boolean() }))
})
export type Shared = Static<typeof Shared>

export const FETCH_STATES = ['idle', 'finding', 'fetching', 'complete', 'failed', 'stopped'] as const

export const Availability = Type.Object({
  instancesTotal: Type.Integer(),
  instancesLocal: Type.Integer(),
  bytesTotal: Type.Integer(),
  bytesLocal: Type.Integer(),
  complete: Type.Boolean(),
  state: Type.Enum([...FETCH_STATES]),
  /** why the last fetch failed */
  error: Type.Optional(Type.String()),
  /** the members chunks came from in this fetch, with their bytes */
  sources: Type.Optional(Type.Record(Type.String(), Type.Integer()))
})
export type Availability = Static<typeof Availability>
