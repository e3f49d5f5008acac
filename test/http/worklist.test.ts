/**
 * The worklist plugin: what it shows and in which order, from a fake worklist; its query and body checks.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { CaseState } from '../../node/worklist/cases.ts'
import type { MemberCertificate } from '../../protocol/membership/index.ts'
import { worklistRoutes } from '../../node/http/api/worklist.ts'
import { ACTOR, caseState, errorOf, ME, pluginApp } from './fixture.ts'

type WorklistEntry = { caseId: string; claimedByName: string | null; overdue: boolean }
const id = (n: number): string => n.toString(16).padStart(24, '0')

async function worklistApp(cases: CaseState[], version = { at: 0 }, names = new Map<string, string>()) {
  const calls: unknown[][] = []
  const app = await pluginApp(worklistRoutes, {
    peerId: ME,
    worklist: {
      allCases: () => {
        calls.push(['allCases'])
        return cases
      },
      caseState: caseId => cases.find(c => c.caseId === caseId),
      query: async () => ({ cases: [], next: undefined }),
      shifts: () => new Map(),
      certificateOf: peerId => (names.has(peerId) ? ({ name: names.get(peerId) } as MemberCertificate) : undefined),
      version: () => version.at
    },
    workflow: {
      claim: async (caseId, actor) => {
        calls.push(['claim', caseId, actor])
        return caseState({ caseId, claimedBy: ME })
      },
      release: async () => caseState(),
      cancel: async (caseId, reason, actor) => {
        calls.push(['cancel', caseId, reason, actor])
        return caseState()
      },
      radiologists: () => [],
      onDuty: () => true,
      setShifts: async shifts => {
        calls.push(['setShifts', shifts])
      }
    }
  })
  return { app, calls }
}

test('the worklist shows open cases by priority then due time, then the closed ones, newest first', async () => {
  const cases = [
    caseState({ caseId: id(1), priority: 'ROUTINE', dueAt: '2026-01-01T01:00:00Z' }),
    caseState({ caseId: id(2), priority: 'STAT', dueAt: '2026-01-01T03:00:00Z' }),
    caseState({ caseId: id(3), priority: 'STAT', dueAt: '2026-01-01T02:00:00Z' }),
    caseState({ caseId: id(4), status: 'COMPLETED', finalAt: '2026-01-01T05:00:00Z' }),
    caseState({ caseId: id(5), status: 'CANCELED', canceledAt: '2026-01-01T06:00:00Z' }),
    caseState({ caseId: id(6), site: 'other', readers: ['someone else'] })
  ]
  const { app } = await worklistApp(cases)
  const shown = (await app.inject({ url: '/api/worklist' })).json() as Array<{ caseId: string }>
  assert.equal(
    shown.map(entry => entry.caseId),
    [id(3), id(2), id(1), id(5), id(4)]
  )
  const open = (await app.inject({ url: '/api/worklist?closed=0' })).json() as Array<{ caseId: string }>
  assert.equal(
    open.map(entry => entry.caseId),
    [id(3), id(2), id(1)]
  )
})

test('an unchanged worklist is answered from its last serialisation, and 304 to the ETag it carries', async () => {
  const cases = [caseState({ caseId: id(1), dueAt: '2099-01-01T00:00:00Z' })]
  const { app, calls } = await worklistApp(cases)
  const first = await app.inject({ url: '/api/worklist' })
  const etag = first.headers.etag as string
  assert.match(etag, /^"[\w-]+"$/)
  assert.is(first.headers['content-type'], 'application/json; charset=utf-8')
  const again = await app.inject({ url: '/api/worklist' })
  assert.is(again.body, first.body)
  assert.is(again.headers.etag, etag)
  assert.is(calls.length, 1, 'the cases were listed once')
  const unchanged = await app.inject({ url: '/api/worklist', headers: { 'if-none-match': `"other", ${etag}` } })
  assert.is(unchanged.statusCode, 304)
  assert.is(unchanged.body, '')
  assert.is(unchanged.headers.etag, etag)
  const other = await app.inject({ url: '/api/worklist?closed=0' })
  assert.is(other.headers.etag, etag, 'the same list, whatever the query, has the same tag')
  assert.is((await app.inject({ url: '/api/worklist', headers: { 'if-none-match': '"stale"' } })).statusCode, 200)
})

test("a change to the worklist, a due time passing or a holder's name learnt answers anew", async () => {
  const version = { at: 0 }
  const names = new Map<string, string>()
  const soon = new Date(Date.now() + 300).toISOString()
  const cases = [caseState({ caseId: id(1), dueAt: soon, claimedBy: 'peer-x', status: 'IN PROGRESS' })]
  const { app } = await worklistApp(cases, version, names)
  const list = async () => {
    const response = await app.inject({ url: '/api/worklist' })
    return { etag: response.headers.etag as string, entries: response.json() as WorklistEntry[] }
  }
  const first = await list()
  assert.is(first.entries[0]?.claimedByName, null)
  cases.push(caseState({ caseId: id(2), dueAt: '2099-01-01T00:00:00Z' }))
  assert.is((await list()).etag, first.etag, 'not looked at again until the version moves')
  version.at++
  const changed = await list()
  assert.is.not(changed.etag, first.etag)
  assert.equal(
    changed.entries.map(e => e.caseId),
    [id(1), id(2)]
  )
  const stale = await app.inject({ url: '/api/worklist', headers: { 'if-none-match': first.etag } })
  assert.is(stale.statusCode, 200)
  names.set('peer-x', 'Dr X')
  const named = await list()
  assert.is(named.entries[0]?.claimedByName, 'Dr X')
  assert.is(named.entries[0]?.overdue, false)
  await new Promise(resolve => setTimeout(resolve, 400))
  const due = await list()
  assert.is(due.entries[0]?.overdue, true)
  assert.is.not(due.etag, named.etag)
})

test('a query number is read from text that is a number, and only then', async () => {
  const { app } = await worklistApp([])
  for (const limit of ['1.5', '1e3', '12abc', '0', '1001']) {
    const response = await app.inject({ url: `/api/cases?limit=${limit}` })
    assert.is(response.statusCode, 400, limit)
    assert.match(errorOf(response.body).message, 'limit', limit)
  }
  assert.is((await app.inject({ url: '/api/cases?limit=1000' })).statusCode, 200)
})

test('a claim passes the case and the caller, and answers the case', async () => {
  const { app, calls } = await worklistApp([])
  const response = await app.inject({ method: 'POST', url: `/api/worklist/${id(7)}/claim` })
  assert.is(response.statusCode, 200)
  assert.is((response.json() as { claimedBy: string }).claimedBy, ME)
  assert.equal(calls, [['claim', id(7), ACTOR]])
})

test('a cancel needs a reason with something in it', async () => {
  const { app, calls } = await worklistApp([])
  for (const payload of [{}, { reason: '   ' }, { reason: 'x'.repeat(513) }, { reason: 7 }]) {
    const response = await app.inject({ method: 'POST', url: `/api/worklist/${id(7)}/cancel`, payload })
    assert.is(response.statusCode, 400, JSON.stringify(payload))
  }
  assert.equal(calls, [])
  await app.inject({ method: 'POST', url: `/api/worklist/${id(7)}/cancel`, payload: { reason: 'duplicate' } })
  assert.equal(calls, [['cancel', id(7), 'duplicate', ACTOR]])
})

test('shifts must end after they start, and are kept in UTC', async () => {
  const { app, calls } = await worklistApp([])
  const backwards = { shifts: [{ start: '2026-01-01T10:00:00Z', end: '2026-01-01T09:00:00Z' }] }
  const refused = await app.inject({ method: 'PUT', url: '/api/duty', payload: backwards })
  assert.is(refused.statusCode, 400)
  assert.match(errorOf(refused.body).message, 'shifts[0]')
  const shifts = { shifts: [{ start: '2026-01-01T10:00:00+01:00', end: '2026-01-01T18:00:00+01:00' }] }
  assert.is((await app.inject({ method: 'PUT', url: '/api/duty', payload: shifts })).statusCode, 200)
  assert.equal(calls, [['setShifts', [{ start: '2026-01-01T09:00:00.000Z', end: '2026-01-01T17:00:00.000Z' }]]])
})

test.run()
