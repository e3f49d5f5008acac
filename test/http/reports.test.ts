/**
 * The reports plugin only translates: it checks the body against its schema, hands the caller (for the audit
 * trail) to the reports capability, and answers its errors by their code.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { ReportView } from '../../protocol/api/reports.ts'
import type { AuditActor } from '../../node/audit/log.ts'
import { reportRoutes } from '../../node/http/api/reports.ts'
import { CaseError } from '../../node/errors.ts'
import { ACTOR, CASE, caseState, errorOf, pluginApp } from './fixture.ts'

const REPORT = `/api/cases/${CASE}/report`

const VIEW: ReportView = {
  caseId: CASE,
  studyInstanceUid: '1.2.3',
  status: 'DRAFT',
  sections: { indication: '', technique: '', comparison: '', findings: 'normal', impression: '' },
  authors: [],
  signatures: [],
  addenda: [],
  finalAt: null
}

async function reportsApp(fail?: Error) {
  const calls: Array<{ method: string; args: unknown[] }> = []
  const record = async (method: string, ...args: unknown[]): Promise<ReportView> => {
    calls.push({ method, args })
    if (fail !== undefined) throw fail
    return VIEW
  }
  const app = await pluginApp(reportRoutes, {
    reports: {
      read: async (caseId: string, actor: AuditActor) => await record('read', caseId, actor),
      edit: async (...args: unknown[]) => await record('edit', ...args),
      sign: async (...args: unknown[]) => await record('sign', ...args),
      addendum: async (...args: unknown[]) => await record('addendum', ...args)
    },
    delivery: { fhir: async () => ({ resourceType: 'DiagnosticReport', status: 'final' }), hl7Status: async () => [] },
    workflow: { consult: async () => caseState({ consultants: ['12D3KooWConsultant'] }) },
    worklist: { certificateOf: () => undefined }
  })
  return { app, calls }
}

test('reading a report hands the caller to the reports capability, which audits it', async () => {
  const { app, calls } = await reportsApp()
  const response = await app.inject({ method: 'GET', url: REPORT })
  assert.is(response.statusCode, 200)
  assert.equal(response.json(), VIEW)
  assert.equal(calls, [{ method: 'read', args: [CASE, ACTOR] }])
})

test('an edit with a section that does not exist is refused before the capability sees it', async () => {
  const { app, calls } = await reportsApp()
  const response = await app.inject({ method: 'PUT', url: REPORT, payload: { sections: { summary: 'x' } } })
  assert.is(response.statusCode, 400)
  assert.is(errorOf(response.body).code, 'RADMESH_BAD_REQUEST')
  assert.match(errorOf(response.body).message, 'summary')
  assert.equal(calls, [])
})

test('a base for a section the edit does not write is refused', async () => {
  const { app, calls } = await reportsApp()
  const payload = { sections: { findings: 'a' }, base: { impression: 'b' } }
  const response = await app.inject({ method: 'PUT', url: REPORT, payload })
  assert.is(response.statusCode, 400)
  assert.match(errorOf(response.body).message, 'base.impression')
  assert.equal(calls, [])
})

test('an edit passes its sections, its base and the caller', async () => {
  const { app, calls } = await reportsApp()
  const payload = { sections: { findings: 'a' }, base: { findings: '' } }
  const response = await app.inject({ method: 'PUT', url: REPORT, payload })
  assert.is(response.statusCode, 200)
  assert.equal(calls, [{ method: 'edit', args: [CASE, { findings: 'a' }, { findings: '' }, ACTOR] }])
})

test('a signature must be PRELIMINARY or FINAL, and a text is not coerced from a number', async () => {
  const { app, calls } = await reportsApp()
  const sign = await app.inject({ method: 'POST', url: `${REPORT}/sign`, payload: { status: 'DONE' } })
  assert.is(sign.statusCode, 400)
  assert.match(errorOf(sign.body).message, 'PRELIMINARY, FINAL')
  const addendum = await app.inject({ method: 'POST', url: `${REPORT}/addendum`, payload: { text: 5 } })
  assert.is(addendum.statusCode, 400)
  assert.equal(calls, [])
  const final = await app.inject({ method: 'POST', url: `${REPORT}/sign`, payload: { status: 'FINAL' } })
  assert.is(final.statusCode, 200)
  assert.equal(calls, [{ method: 'sign', args: [CASE, 'FINAL', ACTOR] }])
})

test('a path that is not a case id is 400, and no capability is asked', async () => {
  const { app, calls } = await reportsApp()
  const response = await app.inject({ method: 'GET', url: '/api/cases/DOE%5EJOHN/report' })
  assert.is(response.statusCode, 400)
  assert.match(errorOf(response.body).message, 'caseId')
  assert.equal(calls, [])
})

test("the capability's error is answered by its code: a FINAL report is 409 RADMESH_REPORT_FINAL", async () => {
  const { app } = await reportsApp(new CaseError('RADMESH_REPORT_FINAL', 'the report is FINAL'))
  const response = await app.inject({ method: 'PUT', url: REPORT, payload: { sections: { findings: 'x' } } })
  assert.is(response.statusCode, 409)
  assert.equal(errorOf(response.body), { code: 'RADMESH_REPORT_FINAL', message: 'the report is FINAL' })
})

test('the FHIR report is application/fhir+json with its fields whole', async () => {
  const { app } = await reportsApp()
  const response = await app.inject({ method: 'GET', url: `${REPORT}/fhir` })
  assert.is(response.statusCode, 200)
  assert.match(response.headers['content-type'] ?? '', /^application\/fhir\+json/)
  assert.equal(response.json(), { resourceType: 'DiagnosticReport', status: 'final' })
})

test('a consult answers the case as the worklist shows it', async () => {
  const { app } = await reportsApp()
  const payload = { peerId: '12D3KooWConsultant' }
  const response = await app.inject({ method: 'POST', url: `/api/cases/${CASE}/consult`, payload })
  assert.is(response.statusCode, 200)
  assert.equal((response.json() as { consultants: string[] }).consultants, ['12D3KooWConsultant'])
})

test.run()
