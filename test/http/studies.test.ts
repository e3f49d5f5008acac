/** The study exchange plugin: recipients once each, a fetch that has found nothing yet, an unknown study. */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Availability } from '../../protocol/api/studies.ts'
import { studyRoutes } from '../../node/http/api/studies.ts'
import type { StudyFetch } from '../../node/exchange/fetch.ts'
import { ACTOR, errorOf, pluginApp } from './fixture.ts'

async function studiesApp (availability?: Availability) {
  const calls: unknown[][] = []
  const app = await pluginApp(studyRoutes, {
    exchange: {
      share: async (studyUid, peerIds, actor) => {
        calls.push(['share', studyUid, peerIds, actor])
        return { studyUid, versionId: 'v1', recipients: peerIds.map(peerId => ({ peerId, announced: true })) }
      },
      fetch: (studyUid, actor) => { calls.push(['fetch', studyUid, actor]); return {} as StudyFetch },
      availability: async () => availability
    }
  })
  return { app, calls }
}

test('a share names each recipient once', async () => {
  const { app, calls } = await studiesApp()
  const payload = { peerIds: ['a', 'b', 'a'] }
  const response = await app.inject({ method: 'POST', url: '/api/studies/1.2.3/share', payload })
  assert.is(response.statusCode, 200)
  assert.equal(calls, [['share', '1.2.3', ['a', 'b'], ACTOR]])
})

test('a share needs 1 to 64 recipients and a study UID in its path', async () => {
  const { app, calls } = await studiesApp()
  for (const [url, payload] of [
    ['/api/studies/1.2.3/share', { peerIds: [] }],
    ['/api/studies/1.2.3/share', { peerIds: Array.from({ length: 65 }, (_, i) => `p${i}`) }],
    ['/api/studies/1.2.3/share', { peerIds: 'a' }],
    ['/api/studies/DOE/share', { peerIds: ['a'] }]
  ] as const) {
    const response = await app.inject({ method: 'POST', url, payload })
    assert.is(response.statusCode, 400, `${url} ${JSON.stringify(payload)}`)
  }
  assert.equal(calls, [])
})

test('a fetch is 202 and says it is finding the study before anything is known', async () => {
  const { app, calls } = await studiesApp()
  const response = await app.inject({ method: 'POST', url: '/api/studies/1.2.3/fetch' })
  assert.is(response.statusCode, 202)
  const finding = {
    instancesTotal: 0, instancesLocal: 0, bytesTotal: 0, bytesLocal: 0, complete: false, state: 'finding'
  }
  assert.equal(response.json(), finding)
  assert.equal(calls, [['fetch', '1.2.3', ACTOR]])
})

test('the availability of a study this node does not know is 404', async () => {
  const { app } = await studiesApp()
  const response = await app.inject({ url: '/api/studies/1.2.3/availability' })
  assert.is(response.statusCode, 404)
  assert.is(errorOf(response.body).code, 'RADMESH_NOT_FOUND')
})

test.run()
