/**
 * Second opinions over HTTP, at the site that made them:
 * `GET /api/cases/:caseId/second-opinions` the de-identified copies of this case's study that the site shared
 *   for a second opinion, oldest first: each with the members it went to, its case's status, and the report
 *   written on it once that is FINAL. The copy's case and report carry no identity; this answer joins them to
 *   the original case through the site's sealed mapping, so only the site can give it. The primary reader's
 *   report is never changed by a second opinion.
 */
import { type Static, Type } from 'typebox'
import { CaseStatus } from './worklist.ts'
import { Nullable } from './common.ts'
import { Sections } from './reports.ts'

export const SecondOpinion = Type.Object({
  /** the copy's case and Study Instance UID (known at the site only as this case's copy) */
  copyCaseId: Type.String(),
  copyStudyInstanceUid: Type.String(),
  /** when the copy was made, and the members it was shared with (peer id and name) */
  madeAt: Type.String(),
  sharedWith: Type.Array(Type.Object({ peerId: Type.String(), name: Type.String() })),
  /** the copy's case status, or null while it is not published yet (or was shared with no radiologist) */
  status: Nullable(CaseStatus),
  /** the report written on the copy, once it is FINAL */
  report: Nullable(
    Type.Object({
      status: Type.Enum(['FINAL', 'AMENDED']),
      sections: Sections,
      signedBy: Type.String(),
      signedByName: Type.String(),
      signedAt: Type.String(),
      addenda: Type.Array(Type.Object({ text: Type.String(), name: Type.String(), at: Type.String() }))
    })
  )
})
export type SecondOpinion = Static<typeof SecondOpinion>

export const SecondOpinions = Type.Array(SecondOpinion)
