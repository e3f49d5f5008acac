/**
 * The worklist and turnaround times over HTTP:
 * `GET /api/worklist` the open cases this node sees (a site: its own; a radiologist: those routed to it or
 *   that it consults on), sorted by priority then due time, then the last `?closed=` (50; 0 to 500) cases
 *   closed; filters `?status=`, `?priority=`, `?mine=true`.
 * `GET /api/cases` every case this node has seen, from the index on disk, newest first, a page at a time:
 *   `?status=`, `?from=` and `?to=` (creation time, ISO 8601), `?limit=` (100; at most 1000), `?after=` (the
 *   `next` of the page before). Answers `{ cases, next }`.
 * `POST /api/worklist/:caseId/claim` 200 with the case, 409 when another reader holds it.
 * `POST /api/worklist/:caseId/release` 200 with the case.
 * `POST /api/worklist/:caseId/cancel` `{ reason }` (the case's site).
 * `GET /api/tat` turnaround times by priority.
 * `GET /api/duty`, `PUT /api/duty` `{ shifts: [{ start, end }] }` a radiologist's on-duty shifts.
 */
import type { FastifyInstance } from 'fastify'
import { isCaseId, MAX_SHIFTS, PRIORITIES, type Shift } from '../../../protocol/collab/records.ts'
import { CASE_STATUSES, type CaseState, summariseTat } from '../../collab/cases.ts'
import { BadRequestError } from '../../errors.ts'
import type { NodeServices } from '../services.ts'

export function caseIdOf (params: { caseId: string }): string {
  if (!isCaseId(params.caseId)) throw new BadRequestError(`"${params.caseId.slice(0, 80)}" is not a case id (24 hex digits)`)
  return params.caseId
}

const PRIORITY_ORDER = new Map<string, number>([['STAT', 0], ['URGENT', 1], ['ROUTINE', 2]])

const WORKLIST_QUERY = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: CASE_STATUSES },
    priority: { type: 'string', enum: PRIORITIES },
    mine: { type: 'string', enum: ['true', 'false'] },
    closed: { type: 'integer', minimum: 0, maximum: 500 }
  }
} as const

/** An ISO 8601 time as a query parameter. */
const TIME = { type: 'string', maxLength: 40, pattern: '^\\d{4}-\\d{2}-\\d{2}(T[0-9:.]+(Z|[+-]\\d{2}:\\d{2})?)?$' } as const
const CASES_QUERY = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: CASE_STATUSES },
    from: TIME,
    to: TIME,
    limit: { type: 'integer', minimum: 1, maximum: 1000 },
    after: { type: 'string', maxLength: 128, pattern: '^t!' }
  }
} as const
const TAT_QUERY = { type: 'object', properties: { days: { type: 'integer', minimum: 1, maximum: 366 } } } as const

/** Closed cases the worklist shows after the open ones, unless told. */
const CLOSED_SHOWN = 50
const isOpenCase = (state: CaseState): boolean => state.status === 'SCHEDULED' || state.status === 'IN PROGRESS'
const closedAt = (state: CaseState): string => state.finalAt ?? state.canceledAt ?? state.createdAt

export interface WorklistEntry {
  caseId: string
  studyInstanceUid: string
  site: string
  siteName: string
  priority: string
  subspecialty: string
  modalities: string[]
  bodyPart: string
  status: string
  claimedBy: string | null
  claimedByName: string | null
  consultants: string[]
  readers: string[]
  createdAt: string
  dueAt: string
  claimedAt: string | null
  preliminaryAt: string | null
  finalAt: string | null
  overdue: boolean
}

export function worklistEntry (node: NodeServices, state: CaseState, now = Date.now()): WorklistEntry {
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
    claimedByName: state.claimedBy === null ? null : node.worklist.certificateOf(state.claimedBy)?.name ?? null,
    consultants: state.consultants,
    readers: state.readers,
    createdAt: state.createdAt,
    dueAt: state.dueAt,
    claimedAt: state.claimedAt,
    preliminaryAt: state.preliminaryAt,
    finalAt: state.finalAt,
    overdue: state.finalAt === null && state.status !== 'CANCELED' && Date.parse(state.dueAt) < now
  }
}

/** The cases this node's user works with. */
export function visibleCases (node: NodeServices): CaseState[] {
  const me = node.peerId
  return node.worklist.allCases().filter(state => state.site === me || state.readers.includes(me) || state.consultants.includes(me))
}

function parseShifts (body: unknown): Shift[] {
  const shifts = (body as { shifts?: unknown } | undefined)?.shifts
  if (!Array.isArray(shifts) || shifts.length > MAX_SHIFTS) throw new BadRequestError(`the body must be { "shifts": [{ "start", "end" }] } with at most ${MAX_SHIFTS} shifts`)
  return shifts.map((shift, i) => {
    const { start, end } = (shift ?? {}) as { start?: unknown, end?: unknown }
    if (typeof start !== 'string' || typeof end !== 'string' || Number.isNaN(Date.parse(start)) || Number.isNaN(Date.parse(end)) || Date.parse(end) <= Date.parse(start)) {
      throw new BadRequestError(`shifts[${i}] must have ISO 8601 "start" and "end", ending after it starts`)
    }
    return { start: new Date(start).toISOString(), end: new Date(end).toISOString() }
  })
}

export async function worklistRoutes (app: FastifyInstance, { node }: { node: NodeServices }): Promise<void> {
  type WorklistQuery = { status?: string, priority?: string, mine?: string, closed?: number }
  const worklistSchema = { querystring: WORKLIST_QUERY }
  app.get<{ Querystring: WorklistQuery }>('/api/worklist', { schema: worklistSchema }, async request => {
    const { status, priority, mine, closed = CLOSED_SHOWN } = request.query
    const now = Date.now()
    const wanted = visibleCases(node).filter(state => (status === undefined || state.status === status) && (priority === undefined || state.priority === priority) &&
      (mine !== 'true' || state.claimedBy === node.peerId || state.consultants.includes(node.peerId)))
    const open = wanted.filter(isOpenCase).sort((a, b) => (PRIORITY_ORDER.get(a.priority) ?? 9) - (PRIORITY_ORDER.get(b.priority) ?? 9) ||
      Date.parse(a.dueAt) - Date.parse(b.dueAt))
    // The closed cases still in memory (live: closed in the last days), the most recently closed first.
    const done = wanted.filter(state => !isOpenCase(state)).sort((a, b) => closedAt(b).localeCompare(closedAt(a))).slice(0, closed)
    return [...open, ...done].map(state => worklistEntry(node, state, now))
  })

  type CasesQuery = { status?: CaseState['status'], from?: string, to?: string, limit?: number, after?: string }
  app.get<{ Querystring: CasesQuery }>('/api/cases', { schema: { querystring: CASES_QUERY } }, async request => {
    const { status, from, to, limit = 100, after } = request.query
    const now = Date.now()
    const me = node.peerId
    const page = await node.worklist.query({
      limit, member: me,
      ...(status === undefined ? {} : { status }),
      ...(from === undefined ? {} : { from: new Date(from).toISOString() }),
      ...(to === undefined ? {} : { to: new Date(to).toISOString() }),
      ...(after === undefined ? {} : { after })
    })
    return { cases: page.cases.map(({ state }) => worklistEntry(node, node.worklist.caseState(state.caseId) ?? state, now)), next: page.next ?? null }
  })

  app.post<{ Params: { caseId: string } }>('/api/worklist/:caseId/claim', async (request) =>
    worklistEntry(node, await node.workflow.claim(caseIdOf(request.params), request.actor)))

  app.post<{ Params: { caseId: string } }>('/api/worklist/:caseId/release', async (request) =>
    worklistEntry(node, await node.workflow.release(caseIdOf(request.params), request.actor)))

  app.post<{ Params: { caseId: string }, Body: unknown }>('/api/worklist/:caseId/cancel', async (request) => {
    const reason = (request.body as { reason?: unknown } | undefined)?.reason
    if (typeof reason !== 'string' || reason.trim() === '' || reason.length > 512) throw new BadRequestError('the body must be { "reason": "..." } (1 to 512 characters)')
    return worklistEntry(node, await node.workflow.cancel(caseIdOf(request.params), reason, request.actor))
  })

  // Turnaround over the cases created in the last `?days=` (30), from the index: a year of history is not read.
  app.get<{ Querystring: { days?: number } }>('/api/tat', { schema: { querystring: TAT_QUERY } }, async request => {
    const days = request.query.days ?? 30
    const from = new Date(Date.now() - days * 24 * 3600_000).toISOString()
    const states = new Map<string, CaseState>()
    for (let after: string | undefined, first = true; first || after !== undefined; first = false) {
      const page = await node.worklist.query({ from, limit: 1000, member: node.peerId, ...(after === undefined ? {} : { after }) })
      for (const { state } of page.cases) states.set(state.caseId, state)
      after = page.next
    }
    for (const state of visibleCases(node)) if (state.createdAt >= from) states.set(state.caseId, state)
    return { generatedAt: new Date().toISOString(), days, byPriority: summariseTat(states.values(), PRIORITIES) }
  })

  app.get('/api/duty', async () => {
    const shifts = node.worklist.shifts()
    return node.workflow.radiologists().map(c => ({ peerId: c.peerId, name: c.name, subspecialties: c.subspecialties, shifts: shifts.get(c.peerId) ?? null, onDuty: node.workflow.onDuty(c.peerId) }))
  })

  app.put<{ Body: unknown }>('/api/duty', async (request) => {
    await node.workflow.setShifts(parseShifts(request.body))
    return { peerId: node.peerId, shifts: node.worklist.shifts().get(node.peerId) ?? [], onDuty: node.workflow.onDuty(node.peerId) }
  })
}
