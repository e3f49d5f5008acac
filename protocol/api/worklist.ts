/**
 * The worklist and turnaround times over HTTP:
 * `GET /api/worklist` the open cases this node sees (a site: its own; a radiologist: those routed to it or
 *   that it consults on), by priority then due time, then the last `?closed=` (50; 0 to 500) cases closed;
 *   filters `?status=`, `?priority=`, `?mine=true`.
 * `GET /api/cases` every case this node has seen, from the index on disk, newest first, a page at a time:
 *   `?status=`, `?from=` and `?to=` (creation time, ISO 8601), `?limit=` (100; at most 1000), `?after=` (the
 *   `next` of the page before).
 * `POST /api/worklist/:caseId/claim` the case, or 409 RADMESH_CASE_TAKEN when another reader holds it.
 * `POST /api/worklist/:caseId/release` the case.
 * `POST /api/worklist/:caseId/cancel` `{ reason }` (the case's site).
 * `GET /api/tat` turnaround times by priority over the cases created in the last `?days=` (30).
 * `GET /api/duty` the radiologists and their shifts; `PUT /api/duty` `{ shifts: [{ start, end }] }` this
 *   radiologist's on-duty shifts.
 */
import { type Static, Type } from 'typebox'
import { CASE_STATUSES, MAX_SHIFTS, PRIORITIES } from '../collab/records.ts'
import { Nullable } from './common.ts'
import { CriticalAckSummary } from './critical.ts'

export const DEFAULT_CLOSED_SHOWN = 50
export const MAX_CLOSED_SHOWN = 500
export const DEFAULT_CASES_PAGE = 100
export const MAX_CASES_PAGE = 1000
export const DEFAULT_TAT_DAYS = 30
export const MAX_TAT_DAYS = 366
/** The longest reason a cancel gives. */
export const MAX_CANCEL_REASON = 512

export const CaseStatus = Type.Enum([...CASE_STATUSES])
export const Priority = Type.Enum([...PRIORITIES])

/** A case as the worklist shows it. */
export const WorklistEntry = Type.Object({
  caseId: Type.String(),
  studyInstanceUid: Type.String(),
  /** the site's peer id, and its name */
  site: Type.String(),
  siteName: Type.String(),
  priority: Priority,
  subspecialty: Type.String(),
  modalities: Type.Array(Type.String()),
  bodyPart: Type.String(),
  status: CaseStatus,
  /** the reader holding the case (peer id), and their name when this node knows it */
  claimedBy: Nullable(Type.String()),
  claimedByName: Nullable(Type.String()),
  consultants: Type.Array(Type.String()),
  /** the readers the case was routed to */
  readers: Type.Array(Type.String()),
  createdAt: Type.String(),
  dueAt: Type.String(),
  claimedAt: Nullable(Type.String()),
  preliminaryAt: Nullable(Type.String()),
  finalAt: Nullable(Type.String()),
  /** open and past its due time */
  overdue: Type.Boolean(),
  /** 'second-opinion': a de-identified copy's case, for the members it was shared with only */
  purpose: Type.Enum(['reading', 'second-opinion']),
  /**
   * Whether the study is complete: false while it is still arriving (a STAT case published at the study's first
   * instance and streamed to its readers as it grows), true once the site has seen it stable
   */
  complete: Type.Boolean()
})
export type WorklistEntry = Static<typeof WorklistEntry>

export const WorklistEntries = Type.Array(WorklistEntry)

export const WorklistQuery = Type.Object({
  status: Type.Optional(CaseStatus),
  priority: Type.Optional(Priority),
  mine: Type.Optional(Type.Enum(['true', 'false'])),
  closed: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_CLOSED_SHOWN }))
})
export type WorklistQuery = Static<typeof WorklistQuery>

/** An ISO 8601 date or time as a query parameter. */
const QueryTime = Type.String({ maxLength: 40, pattern: '^\\d{4}-\\d{2}-\\d{2}(T[0-9:.]+(Z|[+-]\\d{2}:\\d{2})?)?$' })

export const CasesQuery = Type.Object({
  status: Type.Optional(CaseStatus),
  from: Type.Optional(QueryTime),
  to: Type.Optional(QueryTime),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_CASES_PAGE })),
  /** the `next` of the page before */
  after: Type.Optional(Type.String({ maxLength: 128, pattern: '^t!' }))
})
export type CasesQuery = Static<typeof CasesQuery>

export const CasesPage = Type.Object({
  cases: Type.Array(WorklistEntry),
  /** where the next page starts (`?after=`), or null after the last */
  next: Nullable(Type.String())
})
export type CasesPage = Static<typeof CasesPage>

export const CancelBody = Type.Object({
  reason: Type.String({ minLength: 1, maxLength: MAX_CANCEL_REASON, pattern: '\\S' })
})
export type CancelBody = Static<typeof CancelBody>

export const TatQuery = Type.Object({
  days: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TAT_DAYS }))
})
export type TatQuery = Static<typeof TatQuery>

export const TatSummary = Type.Object({
  priority: Priority,
  cases: Type.Integer(),
  completed: Type.Integer(),
  open: Type.Integer(),
  overdue: Type.Integer(),
  /** completed within their due time, of those completed */
  withinDue: Type.Integer(),
  medianMinutes: Nullable(Type.Number()),
  p90Minutes: Nullable(Type.Number()),
  medianClaimMinutes: Nullable(Type.Number())
})
export type TatSummary = Static<typeof TatSummary>

export const TatReport = Type.Object({
  generatedAt: Type.String(),
  days: Type.Integer(),
  byPriority: Type.Array(TatSummary),
  /** time from a critical result's raise to its acknowledgement, by level */
  byCriticalLevel: Type.Array(CriticalAckSummary)
})
export type TatReport = Static<typeof TatReport>

export const Shift = Type.Object({ start: Type.String(), end: Type.String() })
export type Shift = Static<typeof Shift>

/** A radiologist, its shifts (null: none published, so always on duty) and whether it is on duty now. */
export const DutyEntry = Type.Object({
  peerId: Type.String(),
  name: Type.String(),
  subspecialties: Type.Array(Type.String()),
  shifts: Nullable(Type.Array(Shift)),
  onDuty: Type.Boolean()
})
export type DutyEntry = Static<typeof DutyEntry>

export const DutyRoster = Type.Array(DutyEntry)

/** `PUT /api/duty`: ISO 8601 times, each shift ending after it starts (the node checks both). */
export const ShiftsBody = Type.Object({
  shifts: Type.Array(Shift, { maxItems: MAX_SHIFTS })
})
export type ShiftsBody = Static<typeof ShiftsBody>

export const MyDuty = Type.Object({
  peerId: Type.String(),
  shifts: Type.Array(Shift),
  onDuty: Type.Boolean()
})
export type MyDuty = Static<typeof MyDuty>
