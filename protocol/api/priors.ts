/**
 * A case's prior studies over HTTP:
 * `GET /api/cases/:caseId/priors` the patient's earlier studies the case's site found in its PACS and chose as
 *   relevant (routing.json's prior rule), newest first, each with where it stands: found in the PACS, being
 *   retrieved, shared with the case's readers (and held locally, so the viewer can open it), or failed with
 *   the reason. A site whose PACS is down answers the case at once with `search.state` "retrying" and the
 *   time of the next attempt; the priors follow when the PACS answers.
 */
import { type Static, Type } from 'typebox'
import { Nullable } from './common.ts'

/** Where the search of the PACS for a case's priors stands. */
export const PRIOR_SEARCH_STATES = ['none', 'pending', 'querying', 'retrying', 'done', 'failed'] as const
/** Where one prior study stands. */
export const PRIOR_STATES = ['found', 'retrieving', 'shared', 'failed'] as const

export const PriorSearchState = Type.Enum([...PRIOR_SEARCH_STATES])
export const PriorState = Type.Enum([...PRIOR_STATES])

/** One prior study of a case. */
export const PriorStudy = Type.Object({
  studyInstanceUid: Type.String(),
  /** DICOM DA (YYYYMMDD), '' when the PACS gave none */
  studyDate: Type.String(),
  studyDescription: Type.String(),
  modalities: Type.Array(Type.String()),
  bodyPart: Type.String(),
  accessionNumber: Type.String(),
  instances: Type.Integer({ minimum: 0 }),
  state: PriorState,
  /** this node holds the study's instances and the viewer can open it (`/study/:studyInstanceUid`) */
  local: Type.Boolean(),
  error: Nullable(Type.String())
})
export type PriorStudy = Static<typeof PriorStudy>

/** A case's priors, and how the search for them went. */
export const CasePriors = Type.Object({
  caseId: Type.String(),
  studyInstanceUid: Type.String(),
  search: Type.Object({
    state: PriorSearchState,
    /** the PACS asked, as AE@HOST:PORT; null when the site names none */
    pacs: Nullable(Type.String()),
    attempts: Type.Integer({ minimum: 0 }),
    lastError: Nullable(Type.String()),
    nextAttemptAt: Nullable(Type.String())
  }),
  priors: Type.Array(PriorStudy)
})
export type CasePriors = Static<typeof CasePriors>
