/** The archive plugin: `/api/audit` asks the audit log, which reads its own file; instances by UID. */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { AuditQueryResult } from '../../node/audit/log.ts'
import { archiveApiRoutes } from '../../node/http/api/archive.ts'
import { errorOf, pluginApp } from './fixture.ts'

async function archiveApp() {
  const asked: Array<{ limit: number; verify?: boolean }> = []
  const app = await pluginApp(archiveApiRoutes, {
    archive: {
      incoming: () => {
        throw new Error('not used')
      },
      storeIncoming: async () => {
        throw new Error('not used')
      },
      instance: async () => undefined
    },
    audit: {
      query: async (options): Promise<AuditQueryResult> => {
        asked.push(options)
        return { total: 0, records: [], ...(options.verify === true ? { verify: { ok: true, records: 0 } } : {}) }
      }
    }
  })
  return { app, asked }
}

test('GET /api/audit asks the audit log for the last records, with the check when ?verify says so', async () => {
  const { app, asked } = await archiveApp()
  assert.equal((await app.inject({ url: '/api/audit' })).json(), { total: 0, records: [] })
  await app.inject({ url: '/api/audit?verify' })
  await app.inject({ url: '/api/audit?verify=1&limit=5' })
  await app.inject({ url: '/api/audit?verify=false' })
  const all = 1000
  assert.equal(asked, [
    { limit: all, verify: false },
    { limit: all, verify: true },
    { limit: 5, verify: true },
    { limit: all, verify: false }
  ])
  const refused = await app.inject({ url: '/api/audit?verify=maybe' })
  assert.is(refused.statusCode, 400)
  assert.match(errorOf(refused.body).message, 'verify')
})

test('an instance this node does not hold is 404 RADMESH_NOT_FOUND', async () => {
  const { app } = await archiveApp()
  const response = await app.inject({ url: '/api/instances/1.2.3' })
  assert.is(response.statusCode, 404)
  assert.is(errorOf(response.body).code, 'RADMESH_NOT_FOUND')
})

test.run()
