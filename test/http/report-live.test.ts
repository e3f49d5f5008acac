/**
 * The live report plugin: bodies are the bytes of one update; what the live report capability refuses is
 * answered by its code, before any event stream starts.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { reportLiveRoutes } from '../../node/http/api/report-live.ts'
import { CaseError } from '../../node/errors.ts'
import { ACTOR, CASE, errorOf, pluginApp } from './fixture.ts'

const OCTETS = { 'content-type': 'application/octet-stream' }
const LIVE = `/api/cases/${CASE}/report/live`

async function liveApp(refusal?: Error) {
  const applied: unknown[][] = []
  const app = await pluginApp(reportLiveRoutes, {
    sessions: { isAlive: () => true },
    live: {
      binding: async () => {
        throw new Error('not used')
      },
      view: async () => {
        throw new Error('not used')
      },
      subscribe: async () => {
        throw refusal ?? new Error('not used')
      },
      apply: async (caseId, update, actor) => {
        if (refusal !== undefined) throw refusal
        applied.push([caseId, [...update], actor])
      },
      presence: async (caseId, update) => {
        applied.push([caseId, [...update]])
      }
    }
  })
  return { app, applied }
}

test("an update is applied as the caller's, and answered 204", async () => {
  const { app, applied } = await liveApp()
  const response = await app.inject({ method: 'POST', url: LIVE, headers: OCTETS, payload: Buffer.from([1, 2, 3]) })
  assert.is(response.statusCode, 204)
  assert.is(response.body, '')
  assert.equal(applied, [[CASE, [1, 2, 3], ACTOR]])
})

test('an empty update is 400, and nothing is applied', async () => {
  const { app, applied } = await liveApp()
  const response = await app.inject({ method: 'POST', url: LIVE, headers: OCTETS, payload: Buffer.alloc(0) })
  assert.is(response.statusCode, 400)
  assert.is(errorOf(response.body).code, 'RADMESH_BAD_REQUEST')
  assert.equal(applied, [])
})

test('an update the report refuses as FINAL is 409 RADMESH_REPORT_FINAL, from its code', async () => {
  const { app } = await liveApp(new CaseError('RADMESH_REPORT_FINAL', 'the report change was refused'))
  const response = await app.inject({ method: 'POST', url: LIVE, headers: OCTETS, payload: Buffer.from([1]) })
  assert.is(response.statusCode, 409)
  assert.is(errorOf(response.body).code, 'RADMESH_REPORT_FINAL')
})

test('a live report this node may not open is refused in the documented shape, not as an event stream', async () => {
  const { app } = await liveApp(new CaseError('RADMESH_NOT_ALLOWED', 'this node is not on the case'))
  const response = await app.inject({ method: 'GET', url: `/api/cases/${CASE}/report/live` })
  assert.is(response.statusCode, 403)
  assert.match(response.headers['content-type'] ?? '', /^application\/json/)
  assert.is(errorOf(response.body).code, 'RADMESH_NOT_ALLOWED')
})

test('a binding needs a numeric client id', async () => {
  const { app } = await liveApp()
  const response = await app.inject({ method: 'POST', url: `${LIVE}/binding`, payload: { clientId: '5' } })
  assert.is(response.statusCode, 400)
  assert.match(errorOf(response.body).message, 'clientId')
})

test.run()
