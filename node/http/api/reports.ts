/**
 * Reports over HTTP. The reports capability records every read and change in the audit trail (110110 Patient
 * Record), whoever asks.
 * `GET /api/cases/:caseId/report`
 * `PUT /api/cases/:caseId/report` `{ sections: { findings: "...", ... } }`: replaces these sections as one edit;
 *   with `base: { findings: "..." }` (the text it was written from) only that change is made, keeping what
 *   others wrote since, or 409 RADMESH_REPORT_CHANGED if they changed the same place
 * `POST /api/cases/:caseId/report/sign` `{ status: "PRELIMINARY" | "FINAL" }`
 * `POST /api/cases/:caseId/report/addendum` `{ text }`: after FINAL
 * `POST /api/cases/:caseId/consult` `{ peerId }`: invites a second reader
 * `GET /api/cases/:caseId/report/fhir`: the FINAL report as a FHIR R4 DiagnosticReport (the case's site)
 * The GET of the report at the site adds `delivery.hl7`: its messages to the RIS, with their state and last ACK.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CaseParams, ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import {
  AddendumBody,
  ConsultBody,
  EditBody,
  FhirDiagnosticReport,
  ReportView,
  SignBody
} from '../../../protocol/api/reports.ts'
import { WorklistEntry } from '../../../protocol/api/worklist.ts'
import type { ReportDelivery } from '../../reports/delivery.ts'
import type { Reports } from '../../reports/reports.ts'
import type { ReadingWorkflow } from '../../workflow/workflow.ts'
import type { Worklist } from '../../worklist/worklist.ts'
import { BadRequestError } from '../../errors.ts'
import { worklistEntry } from './worklist.ts'

export interface ReportRoutesOptions {
  reports: Pick<Reports, 'read' | 'edit' | 'sign' | 'addendum'>
  delivery: Pick<ReportDelivery, 'fhir' | 'hl7Status'>
  workflow: Pick<ReadingWorkflow, 'consult'>
  worklist: Pick<Worklist, 'certificateOf'>
}

const answers = <T>(body: T) => ({ 200: body, ...ERROR_RESPONSES })

export const reportRoutes: FastifyPluginAsyncTypebox<ReportRoutesOptions> = async (app, options) => {
  const { reports, delivery, workflow, worklist } = options

  app.get(
    '/api/cases/:caseId/report',
    {
      schema: { params: CaseParams, response: answers(ReportView) }
    },
    async request => {
      const view = await reports.read(request.params.caseId, request.actor)
      const hl7 = await delivery.hl7Status(request.params.caseId)
      return hl7.length === 0 ? view : { ...view, delivery: { hl7 } }
    }
  )

  app.put(
    '/api/cases/:caseId/report',
    {
      schema: { params: CaseParams, body: EditBody, response: answers(ReportView) }
    },
    async request => {
      const { sections, base = {} } = request.body
      for (const name of Object.keys(base)) {
        if (!(name in sections)) {
          throw new BadRequestError(
            `base.${name} is given but sections.${name} is not: ` +
              "a base is the text a section's new text was written from"
          )
        }
      }
      return await reports.edit(request.params.caseId, sections, base, request.actor)
    }
  )

  app.post(
    '/api/cases/:caseId/report/sign',
    {
      schema: { params: CaseParams, body: SignBody, response: answers(ReportView) }
    },
    async request => await reports.sign(request.params.caseId, request.body.status, request.actor)
  )

  app.post(
    '/api/cases/:caseId/report/addendum',
    {
      schema: { params: CaseParams, body: AddendumBody, response: answers(ReportView) }
    },
    async request => await reports.addendum(request.params.caseId, request.body.text, request.actor)
  )

  app.get(
    '/api/cases/:caseId/report/fhir',
    {
      schema: { params: CaseParams, response: answers(FhirDiagnosticReport) }
    },
    async (request, reply) => {
      const resource = (await delivery.fhir(request.params.caseId, request.actor)) as FhirDiagnosticReport
      return await reply.type('application/fhir+json').send(resource)
    }
  )

  app.post(
    '/api/cases/:caseId/consult',
    {
      schema: { params: CaseParams, body: ConsultBody, response: answers(WorklistEntry) }
    },
    async request => {
      return worklistEntry(worklist, await workflow.consult(request.params.caseId, request.body.peerId, request.actor))
    }
  )
}
