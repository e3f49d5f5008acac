/**
 * Reports over HTTP (CONTRACT.md). Every read and change is audited (110110 Patient Record).
 * `GET /api/cases/:caseId/report`
 * `PUT /api/cases/:caseId/report` `{ sections: { findings: "...", ... } }`: replaces these sections as one edit;
 *   with `base: { findings: "..." }` (the text it was written from) only that change is made, keeping what
 *   others wrote since, or 409 RADMESH_REPORT_CHANGED if they changed the same place
 * `POST /api/cases/:caseId/report/sign` `{ status: "PRELIMINARY" | "FINAL" }`
 * `POST /api/cases/:caseId/report/addendum` `{ text }`: after FINAL
 * `POST /api/cases/:caseId/consult` `{ peerId }`: invites a second reader
 * `GET /api/cases/:caseId/report/fhir`: the FINAL report as a FHIR R4 DiagnosticReport (the case's site)
 */
import type { FastifyInstance } from 'fastify'
import { MAX_SECTION_CHARS, SECTION_NAMES, type Sections } from '../../../protocol/collab/records.ts'
import type { AuditActor } from '../../audit/log.ts'
import { BadRequestError } from '../../errors.ts'
import type { NodeServices } from '../services.ts'
import { caseIdOf, worklistEntry } from './worklist.ts'

function parseSections (sections: unknown, field: 'sections' | 'base'): Partial<Sections> {
  if (sections === null || typeof sections !== 'object' || Array.isArray(sections)) throw new BadRequestError(`the body must be { "sections": { ${SECTION_NAMES.join(', ')} } } with any of the sections, and optionally "base" with the texts they were written from`)
  for (const [name, text] of Object.entries(sections)) {
    if (!(SECTION_NAMES as readonly string[]).includes(name)) throw new BadRequestError(`"${name.slice(0, 40)}" in ${field} is not a report section; the sections are ${SECTION_NAMES.join(', ')}`)
    if (typeof text !== 'string' || text.length > MAX_SECTION_CHARS) throw new BadRequestError(`${field}.${name} must be text of at most ${MAX_SECTION_CHARS} characters`)
  }
  return sections as Partial<Sections>
}

/** `{ sections, base? }`: a base is given only for sections the edit writes. */
function parseEdit (body: unknown): { sections: Partial<Sections>, base: Partial<Sections> } {
  const { sections, base } = (body ?? {}) as { sections?: unknown, base?: unknown }
  const edit = { sections: parseSections(sections, 'sections'), base: base === undefined ? {} : parseSections(base, 'base') }
  for (const name of Object.keys(edit.base)) {
    if (!(name in edit.sections)) throw new BadRequestError(`base.${name} is given but sections.${name} is not: a base is the text a section's new text was written from`)
  }
  return edit
}

export async function reportRoutes (app: FastifyInstance, { node }: { node: NodeServices }): Promise<void> {
  const audited = async (caseId: string, action: 'R' | 'U', actor: AuditActor, detail: string): Promise<void> => {
    const state = node.worklist.caseState(caseId)
    await node.audit.append({ event: 'patientRecord', action, outcome: 0, actor, ...(state === undefined ? {} : { study: state.studyUid }), detail: `report of case ${caseId}: ${detail}` })
  }

  app.get<{ Params: { caseId: string } }>('/api/cases/:caseId/report', async (request) => {
    const caseId = caseIdOf(request.params)
    const view = await node.reports.view(caseId)
    await audited(caseId, 'R', request.actor, 'read')
    return view
  })

  app.put<{ Params: { caseId: string }, Body: unknown }>('/api/cases/:caseId/report', async (request) => {
    const caseId = caseIdOf(request.params)
    const { sections, base } = parseEdit(request.body)
    const view = await node.reports.edit(caseId, sections, base)
    await audited(caseId, 'U', request.actor, `edited ${Object.keys(sections).join(', ')}`)
    return view
  })

  app.post<{ Params: { caseId: string }, Body: unknown }>('/api/cases/:caseId/report/sign', async (request) => {
    const caseId = caseIdOf(request.params)
    const status = (request.body as { status?: unknown } | undefined)?.status
    if (status !== 'PRELIMINARY' && status !== 'FINAL') throw new BadRequestError('the body must be { "status": "PRELIMINARY" } or { "status": "FINAL" }')
    const view = await node.reports.sign(caseId, status)
    await audited(caseId, 'U', request.actor, `signed ${status}`)
    return view
  })

  app.post<{ Params: { caseId: string }, Body: unknown }>('/api/cases/:caseId/report/addendum', async (request) => {
    const caseId = caseIdOf(request.params)
    const text = (request.body as { text?: unknown } | undefined)?.text
    if (typeof text !== 'string') throw new BadRequestError('the body must be { "text": "..." }')
    const view = await node.reports.addendum(caseId, text)
    await audited(caseId, 'U', request.actor, 'addendum')
    return view
  })

  app.get<{ Params: { caseId: string } }>('/api/cases/:caseId/report/fhir', async (request, reply) => {
    const caseId = caseIdOf(request.params)
    const resource = await node.delivery.fhir(caseId)
    await audited(caseId, 'R', request.actor, 'read as FHIR')
    return await reply.type('application/fhir+json').send(resource)
  })

  app.post<{ Params: { caseId: string }, Body: unknown }>('/api/cases/:caseId/consult', async (request) => {
    const caseId = caseIdOf(request.params)
    const peerId = (request.body as { peerId?: unknown } | undefined)?.peerId
    if (typeof peerId !== 'string' || peerId.length === 0 || peerId.length > 128) throw new BadRequestError('the body must be { "peerId": "..." }')
    return worklistEntry(node, await node.workflow.consult(caseId, peerId, request.actor))
  })
}
