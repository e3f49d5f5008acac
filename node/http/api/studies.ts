/**
 * The study exchange over HTTP:
 * `POST /api/studies/:studyUid/share` `{ peerIds }`: wraps the study key for these members and announces it.
 * `POST /api/studies/:studyUid/fetch`: 202; the node fetches the study from whoever holds it.
 * `GET /api/studies/:studyUid/availability`: `{ instancesTotal, instancesLocal, bytesTotal, bytesLocal,
 *   complete, state, error?, sources? }`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ERROR_RESPONSES, StudyParams } from '../../../protocol/api/common.ts'
import { Availability, ShareBody, Shared } from '../../../protocol/api/studies.ts'
import { RadmeshError } from '../../errors.ts'
import type { Exchange } from '../../exchange/exchange.ts'

export interface StudyRoutesOptions {
  exchange: Pick<Exchange, 'share' | 'fetch' | 'availability'>
}

/** What a fetch that has not found the study's manifest yet answers. */
const FINDING = {
  instancesTotal: 0, instancesLocal: 0, bytesTotal: 0, bytesLocal: 0, complete: false, state: 'finding'
} as const

export const studyRoutes: FastifyPluginAsyncTypebox<StudyRoutesOptions> = async (app, { exchange }) => {
  app.post('/api/studies/:studyUid/share', {
    schema: { params: StudyParams, body: ShareBody, response: { 200: Shared, ...ERROR_RESPONSES } }
  }, async (request) => {
    return await exchange.share(request.params.studyUid, [...new Set(request.body.peerIds)], request.actor)
  })

  app.post('/api/studies/:studyUid/fetch', {
    schema: { params: StudyParams, response: { 202: Availability, ...ERROR_RESPONSES } }
  }, async (request, reply) => {
    const { studyUid } = request.params
    exchange.fetch(studyUid, request.actor)
    return await reply.code(202).send(await exchange.availability(studyUid) ?? FINDING)
  })

  app.get('/api/studies/:studyUid/availability', {
    schema: { params: StudyParams, response: { 200: Availability, ...ERROR_RESPONSES } }
  }, async (request) => {
    const { studyUid } = request.params
    const availability = await exchange.availability(studyUid)
    if (availability === undefined) {
      throw new RadmeshError('RADMESH_NOT_FOUND',
        `this node knows no study ${studyUid}: it is not in its archive and was not shared with it`)
    }
    return availability
  })
}
