/**
 * Critical results over HTTP:
 * `POST /api/cases/:caseId/critical` `{ level, text }` a reader of the case flags a finding; answers the result.
 * `GET /api/critical` the critical results of the cases this node is on (`?open=true`: not acknowledged yet),
 *   each with its state: raised, acknowledged by whom and when, escalations, calls.
 * `POST /api/critical/:id/ack` `{ by, role? }` the case's site acknowledges it, naming who took it.
 * `POST /api/critical/:id/call` `{ note }` a reader records a phone call about it.
 */
import { type Static, Type } from 'typebox'
import { CRITICAL_LEVELS, MAX_CRITICAL_TEXT, MAX_PERSON_NAME, MAX_PERSON_ROLE } from '../collab/records.ts'
import { Nullable } from './common.ts'

export const CriticalLevel = Type.Enum([...CRITICAL_LEVELS])

export const CriticalBody = Type.Object(
  {
    level: CriticalLevel,
    text: Type.String({ minLength: 1, maxLength: MAX_CRITICAL_TEXT })
  },
  { additionalProperties: false }
)
export type CriticalBody = Static<typeof CriticalBody>

export const CriticalParams = Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{24}$' }) })
export type CriticalParams = Static<typeof CriticalParams>

export const CriticalQuery = Type.Object({ open: Type.Optional(Type.Enum(['true', 'false'])) })
export type CriticalQuery = Static<typeof CriticalQuery>

export const CriticalAckBody = Type.Object(
  {
    /** the name of the person at the site who took the result */
    by: Type.String({ minLength: 1, maxLength: MAX_PERSON_NAME }),
    role: Type.Optional(Type.String({ maxLength: MAX_PERSON_ROLE }))
  },
  { additionalProperties: false }
)
export type CriticalAckBody = Static<typeof CriticalAckBody>

export const CriticalCallBody = Type.Object(
  {
    note: Type.String({ minLength: 1, maxLength: MAX_CRITICAL_TEXT })
  },
  { additionalProperties: false }
)
export type CriticalCallBody = Static<typeof CriticalCallBody>

/** A critical result and where it stands. */
export const CriticalResult = Type.Object({
  id: Type.String(),
  caseId: Type.String(),
  studyInstanceUid: Type.String(),
  site: Type.String(),
  siteName: Type.String(),
  level: CriticalLevel,
  text: Type.String(),
  /** the reader who raised it (peer id) and their name when this node knows it */
  by: Type.String(),
  byName: Nullable(Type.String()),
  raisedAt: Type.String(),
  acknowledged: Nullable(Type.Object({ by: Type.String(), role: Type.String(), at: Type.String() })),
  /** step 0 is the raise; each later step an escalation, with the person on the call list told */
  escalations: Type.Array(Type.Object({ step: Type.Integer(), at: Type.String(), notify: Nullable(Type.String()) })),
  /** the next escalation if it stays unacknowledged */
  nextEscalationAt: Nullable(Type.String()),
  /** unacknowledged past its level's deadline */
  overdue: Type.Boolean(),
  calls: Type.Array(Type.Object({ by: Type.String(), note: Type.String(), at: Type.String() })),
  /**
   * At the site only, for a result flagged on a second opinion's de-identified copy: the original case, whose
   * patient it is about (found through the sealed mapping; never sent to any other node)
   */
  originalCaseId: Type.Optional(Type.String())
})
export type CriticalResult = Static<typeof CriticalResult>

export const CriticalResults = Type.Array(CriticalResult)

/** Time to acknowledge, by level (part of `GET /api/tat`). */
export const CriticalAckSummary = Type.Object({
  level: CriticalLevel,
  raised: Type.Integer(),
  acknowledged: Type.Integer(),
  medianAckMinutes: Nullable(Type.Number()),
  maxAckMinutes: Nullable(Type.Number())
})
export type CriticalAckSummary = Static<typeof CriticalAckSummary>
