/**
 * The node's HTTP server (fastify): the JSON API, and later DICOMweb and the viewer. One plugin per route
 * family; this file only wires them, authenticates, and turns errors into `{ error: { code, message } }`.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { ERROR_TABLE, isRadmeshError } from '../errors.ts'
import { healthRoutes } from './api/health.ts'
import { allowCrossOrigin } from './cors.ts'
import { membershipRoutes } from './api/membership.ts'
import { peerRoutes } from './api/peers.ts'
import type { Sessions } from './auth.ts'
import type { NodeServices } from './services.ts'
import { viewerRoutes } from './viewer.ts'
import { archiveApiRoutes } from './api/archive.ts'
import { studyRoutes } from './api/studies.ts'
import { reportLiveRoutes } from './api/report-live.ts'
import { reportRoutes } from './api/reports.ts'
import { worklistRoutes } from './api/worklist.ts'
import { qidoRoutes } from './dicomweb/qido.ts'
import { stowRoutes } from './dicomweb/stow.ts'
import { wadoRoutes } from './dicomweb/wado.ts'

declare module 'fastify' {
  interface FastifyContextConfig { public?: boolean }
}

export async function createHttpServer (node: NodeServices, sessions: Sessions, log: Logger, corsOrigins: readonly string[] = []): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: log.child({ component: 'http' }) as FastifyBaseLogger, bodyLimit: 1024 * 1024 })
  allowCrossOrigin(app, corsOrigins)
  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config.public === true) return
    await sessions.authenticate(request, reply)
  })
  app.setErrorHandler((error, request, reply) => {
    if (isRadmeshError(error)) {
      return reply.status(error.httpStatus).send({ error: { code: error.code, message: error.message } })
    }
    const status = (error as { statusCode?: number }).statusCode ?? 500
    if (status < 500) {
      return reply.status(status).send({ error: { code: status === 404 ? 'RADMESH_NOT_FOUND' : 'RADMESH_BAD_REQUEST', message: (error as Error).message } })
    }
    request.log.error({ err: error }, 'request failed')
    return reply.status(500).send({ error: { code: 'RADMESH_INTERNAL', message: ERROR_TABLE.RADMESH_INTERNAL.summary } })
  })
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: { code: 'RADMESH_NOT_FOUND', message: `no route ${request.method} ${request.url}` } }))
  await app.register(healthRoutes, { node })
  await app.register(peerRoutes, { node })
  await app.register(membershipRoutes, { node })
  await app.register(viewerRoutes, { node, sessions })
  await app.register(archiveApiRoutes, { node })
  await app.register(studyRoutes, { node })
  await app.register(worklistRoutes, { node })
  await app.register(reportRoutes, { node })
  await app.register(reportLiveRoutes, { node, sessions })
  await app.register(qidoRoutes, { node })
  await app.register(wadoRoutes, { node })
  await app.register(stowRoutes, { node })
  return app
}
