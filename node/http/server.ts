/**
 * The node's HTTP server (fastify): the JSON API, and later DICOMweb and the viewer. One plugin per route
 * family; this file only wires them, authenticates, and turns errors into `{ error: { code, message } }`.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { isCaseId } from '../../protocol/collab/records.ts'
import { RadmeshError } from '../errors.ts'
import { healthRoutes } from './api/health.ts'
import { allowCrossOrigin } from './cors.ts'
import { negotiateDicomweb } from './dicomweb/accept.ts'
import { handleClientError, handleError, handleFrameworkError, schemaError } from './errors.ts'
import { loggableRequest, loggableUrl } from './log.ts'
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

/** See the server's connectionTimeout. */
export const IDLE_CONNECTION_MS = 120_000

export async function createHttpServer (
  node: NodeServices, sessions: Sessions, log: Logger, corsOrigins: readonly string[] = []
): Promise<FastifyInstance> {
  const app = Fastify({
    // URLs are logged without their query values, and never with headers: see ./log.ts.
    loggerInstance: log.child({ component: 'http' }, { serializers: { req: loggableRequest } }) as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    // A connection with no bytes either way for this long is closed: a sender that stops midway (a STOW-RS part,
    // an import) lets go of what it held. Live report streams send a heartbeat well within it.
    connectionTimeout: IDLE_CONNECTION_MS,
    // Every refusal in the documented shape, also fastify's router's and Node's parser's: see ./errors.ts.
    frameworkErrors: handleFrameworkError,
    clientErrorHandler: handleClientError,
    schemaErrorFormatter: schemaError
  })
  allowCrossOrigin(app, corsOrigins)
  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config.public === true) return
    await sessions.authenticate(request, reply)
  })
  app.addHook('onRequest', negotiateDicomweb)
  // A route about a case finds it in memory: a closed case, no longer live, is loaded from disk first.
  app.addHook('preHandler', async request => {
    const caseId = (request.params as { caseId?: unknown } | undefined)?.caseId
    if (typeof caseId === 'string' && isCaseId(caseId)) await node.worklist.ensureCase(caseId)
  })
  app.setErrorHandler(handleError)
  app.setNotFoundHandler(async request => {
    throw new RadmeshError('RADMESH_NOT_FOUND', `no route ${request.method} ${loggableUrl(request.url)}`)
  })
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
