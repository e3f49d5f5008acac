/**
 * The worklist and turnaround times over HTTP:
 * `GET /api/worklist` the open cases this node sees (a site: its own; a radiologist: those routed to it or
 *   that it consults on), sorted by priority then due time, then the last `?closed=` (50; 0 to 500) cases
 *   closed; filters `?status=`, `?priority=`, `?mine=true`. Answered with an ETag, and 304 to an
 *   `If-None-Match` naming it: the viewer polls it, and a busy site's is 600 KB.
 * `GET /api/cases` every case this node has seen, from the index on disk, newest first, a page at a time:
 *   `?status=`, `?from=` and `?to=` (creation time, ISO 8601), `?limit=` (100; at most 1000), `?after=` (the
 *   `next` of the page before). Answers `{ cases, next }`.
 * `POST /api/worklist/:caseId/claim` 200 with the case, 409 when another reader holds it.
 * `POST /api/worklist/:caseId/release` 200 with the case.
 * `POST /api/worklist/:caseId/cancel` `{ reason }` (the case's site).
 * `GET /api/tat` turnaround times by priority, and time to acknowledge critical results by level.
 * `GET /api/duty`, `PUT /api/duty` `{ shifts: [{ start, end }] }` a radiologist's on-duty shifts.
 */
import { createHash } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { CaseParams, ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import {
  CancelBody,
  CasesPage,
  CasesQuery,
  DEFAULT_CASES_PAGE,
  DEFAULT_CLOSED_SHOWN,
  DEFAULT_TAT_DAYS,
  DutyRoster,
  MyDuty,
  ShiftsBody,
  TatQuery,
  TatReport,
  WorklistEntries,
  WorklistEntry,
  WorklistQuery
} from '../../../protocol/api/worklist.ts'
import { PRIORITIES, type Shift } from '../../../protocol/collab/records.ts'
import { type CaseState, summariseTat } from '../../worklist/cases.ts'
import { summariseCriticalAck } from '../../worklist/critical.ts'
import type { ReadingWorkflow } from '../../workflow/workflow.ts'
import type { Worklist } from '../../worklist/worklist.ts'
import { BadRequestError } from '../../errors.ts'

export interface WorklistRoutesOptions {
  /** this node's peer id: whose cases, claims and shifts are "mine" */
  peerId: string
  worklist: Pick<Worklist, 'allCases' | 'caseState' | 'query' | 'shifts' | 'certificateOf' | 'version'>
  workflow: Pick<ReadingWorkflow, 'claim' | 'release' | 'cancel' | 'radiologists' | 'onDuty' | 'setShifts'>
}

const PRIORITY_ORDER = new Map<string, number>([
  ['STAT', 0],
  ['URGENT', 1],
  ['ROUTINE', 2]
])
/** The index is read this many cases at a time for the turnaround times. */
const TAT_PAGE = 1000
const isOpenCase = (state: CaseState): boolean => state.status === 'SCHEDULED' || state.status === 'IN PROGRESS'
const closedAt = (state: CaseState): string => state.finalAt ?? state.canceledAt ?? state.createdAt

/** A case as the worklist shows it; the reader holding it named when this node knows them. */
export function worklistEntry(
  names: Pick<Worklist, 'certificateOf'>,
  state: CaseState,
  now = Date.now()
): WorklistEntry {
  return {
    caseId: state.caseId,
    studyInstanceUid: state.studyUid,
    site: state.site,
    siteName: state.siteName,
    priority: state.priority,
    subspecialty: state.subspecialty,
    modalities: state.modalities,
    bodyPart: state.bodyPart,
    status: state.status,
    claimedBy: state.claimedBy,
    claimedByName: state.claimedBy === null ? null : (names.certificateOf(state.claimedBy)?.name ?? null),
    consultants: state.consultants,
    readers: state.readers,
    createdAt: state.createdAt,
    dueAt: state.dueAt,
    claimedAt: state.claimedAt,
    preliminaryAt: state.preliminaryAt,
    finalAt: state.finalAt,
    overdue: state.finalAt === null && state.status !== 'CANCELED' && Date.parse(state.dueAt) < now,
    purpose: state.purpose ?? 'reading',
    complete: state.arriving !== true
  }
}

/**
 * A `/api/worklist` answer, serialised, kept until it could differ: the worklist changed (its `version`), a
 * case it shows fell due (`overdue` turns), or the name of a reader holding a case is known otherwise now.
 */
interface CachedAnswer {
  version: number
  /** the first due time at which an entry's `overdue` turns true (ms since the epoch) */
  validUntil: number
  /** the name each holder shown was given */
  names: Map<string, string | null>
  body: string
  etag: string
}
/** Answers kept, one per distinct query; all dropped when the worklist changes. */
const CACHED_QUERIES = 16

function cachedAnswer(version: number, entries: WorklistEntry[], body: string): CachedAnswer {
  let validUntil = Infinity
  const names = new Map<string, string | null>()
  for (const entry of entries) {
    const due = Date.parse(entry.dueAt)
    if (!entry.overdue && entry.finalAt === null && entry.status !== 'CANCELED' && due < validUntil) validUntil = due
    if (entry.claimedBy !== null) names.set(entry.claimedBy, entry.claimedByName)
  }
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
  return { version, validUntil, names, body, etag }
}

/** Whether an `If-None-Match` header names this ETag (weak or strong, in a list, or `*`). */
function matches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  return header.split(',').some(tag => {
    const t = tag.trim()
    return t === '*' || t === etag || t === `W/${etag}`
  })
}

/** Shifts as ISO 8601 in UTC, each ending after it starts. */
function parseShifts(shifts: Shift[]): Shift[] {
  return shifts.map(({ start, end }, i) => {
    if (Number.isNaN(Date.parse(start)) || Number.isNaN(Date.parse(end)) || Date.parse(end) <= Date.parse(start)) {
      throw new BadRequestError(`shifts[${i}] must have ISO 8601 "start" and "end", ending after it starts`)
    }
    return { start: new Date(start).toISOString(), end: new Date(end).toISOString() }
  })
}

export const worklistRoutes: FastifyPluginAsyncTypebox<WorklistRoutesOptions> = async (app, options) => {
  const { peerId: me, worklist, workflow } = options
  /** The cases this node's user works with. */
  const visibleCases = (): CaseState[] =>
    worklist
      .allCases()
      .filter(state => state.site === me || state.readers.includes(me) || state.consultants.includes(me))

  const answers = new Map<string, CachedAnswer>()
  const fresh = (answer: CachedAnswer | undefined, now: number): answer is CachedAnswer =>
    answer !== undefined &&
    answer.version === worklist.version() &&
    now <= answer.validUntil &&
    [...answer.names].every(([peer, name]) => (worklist.certificateOf(peer)?.name ?? null) === name)

  app.get(
    '/api/worklist',
    {
      schema: { querystring: WorklistQuery, response: { 200: WorklistEntries, ...ERROR_RESPONSES } }
    },
    async (request, reply) => {
      const { status, priority, mine, closed = DEFAULT_CLOSED_SHOWN } = request.query
      const now = Date.now()
      const key = `${status ?? ''}|${priority ?? ''}|${mine ?? ''}|${closed}`
      let answer = answers.get(key)
      if (!fresh(answer, now)) {
        const version = worklist.version()
        const entries = listed(request.query, now)
        if (answers.size >= CACHED_QUERIES || [...answers.values()].some(a => a.version !== version)) answers.clear()
        // The route's own serialiser, as an answer returned would have had.
        answer = cachedAnswer(version, entries, reply.serializeInput(entries as never, '200') as string)
        answers.set(key, answer)
      }
      // Sent as it is: typed as the serialised text the response schema's serialiser would have made.
      const raw = reply.header('etag', answer.etag) as unknown as FastifyReply
      if (matches(request.headers['if-none-match'], answer.etag)) return await raw.code(304).send()
      return await raw.type('application/json; charset=utf-8').send(answer.body)
    }
  )

  /** The worklist's entries for a query, as `GET /api/worklist` lists them. */
  function listed(query: WorklistQuery, now: number): WorklistEntry[] {
    const { status, priority, mine, closed = DEFAULT_CLOSED_SHOWN } = query
    const wanted = visibleCases().filter(
      state =>
        (status === undefined || state.status === status) &&
        (priority === undefined || state.priority === priority) &&
        (mine !== 'true' || state.claimedBy === me || state.consultants.includes(me))
    )
    const open = wanted
      .filter(isOpenCase)
      .sort(
        (a, b) =>
          (PRIORITY_ORDER.get(a.priority) ?? 9) - (PRIORITY_ORDER.get(b.priority) ?? 9) ||
          Date.parse(a.dueAt) - Date.parse(b.dueAt)
      )
    // The closed cases still in memory (live: closed in the last days), the most recently closed first.
    const done = wanted
      .filter(state => !isOpenCase(state))
      .sort((a, b) => closedAt(b).localeCompare(closedAt(a)))
      .slice(0, closed)
    return [...open, ...done].map(state => worklistEntry(worklist, state, now))
  }

  app.get(
    '/api/cases',
    {
      schema: { querystring: CasesQuery, response: { 200: CasesPage, ...ERROR_RESPONSES } }
    },
    async request => {
      const { status, from, to, limit = DEFAULT_CASES_PAGE, after } = request.query
      const now = Date.now()
      const page = await worklist.query({
        limit,
        member: me,
        ...(status === undefined ? {} : { status }),
        ...(from === undefined ? {} : { from: new Date(from).toISOString() }),
        ...(to === undefined ? {} : { to: new Date(to).toISOString() }),
        ...(after === undefined ? {} : { after })
      })
      const cases = page.cases.map(({ state }) =>
        worklistEntry(worklist, worklist.caseState(state.caseId) ?? state, now)
      )
      return { cases, next: page.next ?? null }
    }
  )

  const caseAction = { schema: { params: CaseParams, response: { 200: WorklistEntry, ...ERROR_RESPONSES } } }
  app.post('/api/worklist/:caseId/claim', caseAction, async request =>
    worklistEntry(worklist, await workflow.claim(request.params.caseId, request.actor))
  )

  app.post('/api/worklist/:caseId/release', caseAction, async request =>
    worklistEntry(worklist, await workflow.release(request.params.caseId, request.actor))
  )

  app.post(
    '/api/worklist/:caseId/cancel',
    {
      schema: { params: CaseParams, body: CancelBody, response: { 200: WorklistEntry, ...ERROR_RESPONSES } }
    },
    async request => {
      const { caseId } = request.params
      return worklistEntry(worklist, await workflow.cancel(caseId, request.body.reason, request.actor))
    }
  )

  // Turnaround over the cases created in the last `?days=` (30), from the index: a year of history is not read.
  app.get(
    '/api/tat',
    {
      schema: { querystring: TatQuery, response: { 200: TatReport, ...ERROR_RESPONSES } }
    },
    async request => {
      const days = request.query.days ?? DEFAULT_TAT_DAYS
      const from = new Date(Date.now() - days * 24 * 3600_000).toISOString()
      const states = new Map<string, CaseState>()
      for (let after: string | undefined, first = true; first || after !== undefined; first = false) {
        const next = after === undefined ? {} : { after }
        const page = await worklist.query({ from, limit: TAT_PAGE, member: me, ...next })
        for (const { state } of page.cases) states.set(state.caseId, state)
        after = page.next
      }
      for (const state of visibleCases()) if (state.createdAt >= from) states.set(state.caseId, state)
      const critical = [...states.values()].flatMap(state => state.critical ?? [])
      return {
        generatedAt: new Date().toISOString(),
        days,
        byPriority: summariseTat(states.values(), PRIORITIES),
        byCriticalLevel: summariseCriticalAck(critical)
      }
    }
  )

  app.get('/api/duty', { schema: { response: { 200: DutyRoster, ...ERROR_RESPONSES } } }, async () => {
    const shifts = worklist.shifts()
    return workflow.radiologists().map(c => ({
      peerId: c.peerId,
      name: c.name,
      subspecialties: c.subspecialties,
      shifts: shifts.get(c.peerId) ?? null,
      onDuty: workflow.onDuty(c.peerId)
    }))
  })

  app.put(
    '/api/duty',
    {
      schema: { body: ShiftsBody, response: { 200: MyDuty, ...ERROR_RESPONSES } }
    },
    async request => {
      await workflow.setShifts(parseShifts(request.body.shifts))
      return { peerId: me, shifts: worklist.shifts().get(me) ?? [], onDuty: workflow.onDuty(me) }
    }
  )
}
