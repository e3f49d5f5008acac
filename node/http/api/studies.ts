/**
 * The study exchange over HTTP (CONTRACT.md):
 * `POST /api/studies/:studyUid/share` `{ peerIds }`: wraps the study key for these members and announces it.
 * `POST /api/studies/:studyUid/fetch`: 202; the node fetches the study from whoever holds it.
 * `GET /api/studies/:studyUid/availability`: `{ instancesTotal, instancesLocal, bytesTotal, bytesLocal,
 *   complete, state, error?, sources? }`.
 */
import type { FastifyInstance } from 'fastify'
import { UID_PATTERN } from '../../../protocol/exchange/manifest.ts'
import { BadRequestError, RadmeshError } from '../../errors.ts'
import type { NodeServices } from '../services.ts'

const MAX_RECIPIENTS = 64

function studyUidOf (params: { studyUid: string }): string {
  const uid = params.studyUid
  if (uid.length > 64 || !UID_PATTERN.test(uid)) throw new BadRequestError(`"${uid.slice(0, 80)}" is not a Study Instance UID (digits and dots, at most 64 characters)`)
  return uid
}

export async function studyRoutes (app: FastifyInstance, { node }: { node: NodeServices }): Promise<void> {
  app.post<{ Params: { studyUid: string }, Body: unknown }>('/api/studies/:studyUid/share', async (request) => {
    const studyUid = studyUidOf(request.params)
    const body = request.body as { peerIds?: unknown } | undefined
    const peerIds = body?.peerIds
    if (!Array.isArray(peerIds) || peerIds.length === 0 || peerIds.length > MAX_RECIPIENTS || !peerIds.every(p => typeof p === 'string' && p.length > 0 && p.length <= 128)) {
      throw new BadRequestError(`the body must be { "peerIds": [...] } with 1 to ${MAX_RECIPIENTS} peer ids`)
    }
    return await node.exchange.share(studyUid, [...new Set(peerIds as string[])], request.actor)
  })

  app.post<{ Params: { studyUid: string } }>('/api/studies/:studyUid/fetch', async (request, reply) => {
    const studyUid = studyUidOf(request.params)
    node.exchange.fetch(studyUid, request.actor)
    reply.code(202)
    return await node.exchange.availability(studyUid) ?? { instancesTotal: 0, instancesLocal: 0, bytesTotal: 0, bytesLocal: 0, complete: false, state: 'finding' }
  })

  app.get<{ Params: { studyUid: string } }>('/api/studies/:studyUid/availability', async (request) => {
    const studyUid = studyUidOf(request.params)
    const availability = await node.exchange.availability(studyUid)
    if (availability === undefined) throw new RadmeshError('RADMESH_NOT_FOUND', `this node knows no study ${studyUid}: it is not in its archive and was not shared with it`)
    return availability
  })
}
