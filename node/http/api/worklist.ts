/**
 * The worklist and turnaround times over HTTP (CONTRACT.md):
 * `GET /api/worklist` the cases this node sees (a site: its own; a radiologist: those routed to it or
 *   that it consults on), sorted by priority then due time; filters `?status=`, `?priority=`, `?mine=true`.
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
    mine: { type: 'string', enum: ['true', 'false'] }
  }
} as const

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
  type WorklistQuery = { status?: string, priority?: string, mine?: string }
  const worklistSchema = { querystring: WORKLIST_QUERY }
  app.get<{ Querystring: WorklistQuery }>('/api/worklist', { schema: worklistSchema }, async request => {
    const { status, priority, mine } = request.query
    const now = Date.now()
    return visibleCases(node)
      .filter(state => (status === undefined || state.status === status) && (priority === undefined || state.priority === priority) &&
        (mine !== 'true' || state.claimedBy === node.peerId || state.consultants.includes(node.peerId)))
      .sort((a, b) => (PRIORITY_ORDER.get(a.priority) ?? 9) - (PRIORITY_ORDER.get(b.priority) ?? 9) ||
        Date.parse(a.dueAt) - Date.parse(b.dueAt))
      .map(state => worklistEntry(node, state, now))
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

  app.get('/api/tat', async () => ({ generatedAt: new Date().toISOString(), byPriority: summariseTat(visibleCases(node), PRIORITIES) }))

  app.get('/api/duty', async () => {
    const shifts = node.worklist.shifts()
    return node.workflow.radiologists().map(c => ({ peerId: c.peerId, name: c.name, subspecialties: c.subspecialties, shifts: shifts.get(c.peerId) ?? null, onDuty: node.workflow.onDuty(c.peerId) }))
  })

  app.put<{ Body: unknown }>('/api/duty', async (request) => {
    await node.workflow.setShifts(parseShifts(request.body))
    return { peerId: node.peerId, shifts: node.worklist.shifts().get(node.peerId) ?? [], onDuty: node.workflow.onDuty(node.peerId) }
  })
}
