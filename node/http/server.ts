/**
 * The node's HTTP server (fastify): the JSON API, DICOMweb and the viewer. One plugin per route family, each
 * given only the slice of the node it uses; this file only wires them, authenticates, and turns errors into
 * `{ error: { code, message } }`. Every route declares what it takes and answers as a schema (protocol/api),
 * checked by TypeBox's compiler (./validation.ts).
 */
import fastifyCookie from '@fastify/cookie'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { isCaseId } from '../../protocol/collab/records.ts'
import type { Worklist } from '../worklist/worklist.ts'
import { RadmeshError } from '../errors.ts'
import { type ArchiveRoutesOptions, archiveApiRoutes } from './api/archive.ts'
import { type CriticalRoutesOptions, criticalRoutes } from './api/critical.ts'
import { type HealthRoutesOptions, healthRoutes } from './api/health.ts'
import { type MembershipRoutesOptions, membershipRoutes } from './api/membership.ts'
import { type PeerRoutesOptions, peerRoutes } from './api/peers.ts'
import { type PriorRoutesOptions, priorRoutes } from './api/priors.ts'
import { type ReportLiveRoutesOptions, reportLiveRoutes } from './api/report-live.ts'
import { type ReportRoutesOptions, reportRoutes } from './api/reports.ts'
import { type SecondOpinionRoutesOptions, secondOpinionRoutes } from './api/second-opinions.ts'
import { type StudyRoutesOptions, studyRoutes } from './api/studies.ts'
import { type WorklistRoutesOptions, worklistRoutes } from './api/worklist.ts'
import type { Sessions } from './auth.ts'
import { allowCrossOrigin } from './cors.ts'
import { negotiateDicomweb } from './dicomweb/accept.ts'
import { type QidoRoutesOptions, qidoRoutes } from './dicomweb/qido.ts'
import { type StowRoutesOptions, stowRoutes } from './dicomweb/stow.ts'
import { type WadoRoutesOptions, wadoRoutes } from './dicomweb/wado.ts'
import { handleClientError, handleError, handleFrameworkError, schemaError } from './errors.ts'
import { loggableRequest, loggableUrl } from './log.ts'
import { validatorCompiler } from './validation.ts'
import type { Self } from './services.ts'
import { viewerRoutes } from './viewer.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    public?: boolean
  }
}

/** See the server's connectionTimeout. */
export const IDLE_CONNECTION_MS = 120_000

/** What the plugins take, together: each field the union of the slices the plugins take of it (node.ts builds it). */
export interface HttpComponents {
  self: Self
  host: HealthRoutesOptions['host']
  connectedMembers: PeerRoutesOptions['connectedMembers']
  reach: PeerRoutesOptions['reach']
  registry: MembershipRoutesOptions['registry']
  revocations: MembershipRoutesOptions['revocations']
  archive: ArchiveRoutesOptions['archive'] &
    QidoRoutesOptions['archive'] &
    WadoRoutesOptions['archive'] &
    StowRoutesOptions['archive'] &
    StudyRoutesOptions['archive']
  /** the way back from de-identified copies, sealed at the site */
  deidMappings: StudyRoutesOptions['mappings']
  audit: ArchiveRoutesOptions['audit']
  access: QidoRoutesOptions['access'] & WadoRoutesOptions['access']
  exchange: StudyRoutesOptions['exchange']
  worklist: WorklistRoutesOptions['worklist'] & ReportRoutesOptions['worklist'] & Pick<Worklist, 'ensureCase'>
  workflow: WorklistRoutesOptions['workflow'] & ReportRoutesOptions['workflow']
  reports: ReportRoutesOptions['reports']
  delivery: ReportRoutesOptions['delivery']
  live: ReportLiveRoutesOptions['live']
  critical: CriticalRoutesOptions['critical']
  priors: PriorRoutesOptions['priors']
  secondOpinions: SecondOpinionRoutesOptions['secondOpinions']
}

/**
 * A fastify instance as every plugin runs in: schemas checked by ./validation.ts, every refusal (fastify's
 * router's and Node's parser's too) answered by ./errors.ts, unknown routes 404. Tests build plugins on it.
 */
export function baseServer(
  options: { loggerInstance?: FastifyBaseLogger; bodyLimit?: number; connectionTimeout?: number } = {}
) {
  const app = Fastify({
    ...options,
    frameworkErrors: handleFrameworkError,
    clientErrorHandler: handleClientError,
    schemaErrorFormatter: schemaError
  }).withTypeProvider<TypeBoxTypeProvider>()
  app.setValidatorCompiler(validatorCompiler)
  app.setErrorHandler(handleError)
  app.setNotFoundHandler(async request => {
    throw new RadmeshError('RADMESH_NOT_FOUND', `no route ${request.method} ${loggableUrl(request.url)}`)
  })
  return app
}

export async function createHttpServer(
  node: HttpComponents,
  sessions: Sessions,
  log: Logger,
  corsOrigins: readonly string[] = []
): Promise<FastifyInstance> {
  const app = baseServer({
    // URLs are logged without their query values, and never with headers: see ./log.ts.
    loggerInstance: log.child({ component: 'http' }, { serializers: { req: loggableRequest } }) as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    // A connection with no bytes either way for this long is closed: a sender that stops midway (a STOW-RS part,
    // an import) lets go of what it held. Live report streams send a heartbeat well within it.
    connectionTimeout: IDLE_CONNECTION_MS
  })
  // Both answer before authentication: CORS preflights carry no credentials, and the session is a cookie.
  await allowCrossOrigin(app, corsOrigins)
  await app.register(fastifyCookie)
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
  const { self, archive, worklist, workflow } = node
  await app.register(healthRoutes, { self, host: node.host })
  await app.register(peerRoutes, { connectedMembers: node.connectedMembers, reach: node.reach })
  await app.register(membershipRoutes, { self, registry: node.registry, revocations: node.revocations })
  await app.register(viewerRoutes, { self, sessions })
  await app.register(archiveApiRoutes, { archive, audit: node.audit })
  await app.register(studyRoutes, { exchange: node.exchange, archive, mappings: node.deidMappings })
  await app.register(worklistRoutes, { peerId: self.peerId, worklist, workflow })
  await app.register(reportRoutes, { reports: node.reports, delivery: node.delivery, workflow, worklist })
  await app.register(reportLiveRoutes, { live: node.live, sessions })
  await app.register(criticalRoutes, { critical: node.critical })
  await app.register(priorRoutes, { priors: node.priors })
  await app.register(secondOpinionRoutes, { secondOpinions: node.secondOpinions })
  await app.register(qidoRoutes, { archive, access: node.access })
  await app.register(wadoRoutes, { archive, access: node.access })
  await app.register(stowRoutes, { archive })
  return app
}
