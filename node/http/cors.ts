/**
 * Cross-origin access to the DICOMweb routes, for a viewer served from another origin (OHIF on its own
 * server), by @fastify/cors: only the origins given with `radmesh start --cors ORIGIN`, only under
 * /dicom-web, and the request must still carry the API token (`Authorization: Bearer …`). No cookies cross
 * origins. A preflight carries no Authorization header: an allowed one is answered before authentication,
 * and one from another origin is refused (403) and told nothing else.
 */
import fastifyCors, { type FastifyCorsOptions } from '@fastify/cors'
import type { FastifyInstance, FastifyRequest } from 'fastify'

/** Browsers may cache a preflight answer this long (seconds). */
const PREFLIGHT_MAX_AGE = 600
const DICOMWEB = '/dicom-web/'

export async function allowCrossOrigin(app: FastifyInstance, origins: readonly string[]): Promise<void> {
  if (origins.length === 0) return
  const allowed = new Set(origins.map(origin => origin.replace(/\/+$/, '')))
  const isAllowed = (request: FastifyRequest): boolean => {
    const origin = request.headers.origin
    return origin !== undefined && allowed.has(origin) && request.url.startsWith(DICOMWEB)
  }
  const optionsFor = (request: FastifyRequest): FastifyCorsOptions =>
    !isAllowed(request)
      ? { origin: false }
      : {
          origin: request.headers.origin as string,
          methods: 'GET, POST, OPTIONS',
          allowedHeaders: 'authorization, accept, content-type',
          exposedHeaders: 'content-type, content-location',
          maxAge: PREFLIGHT_MAX_AGE,
          strictPreflight: false
        }
  await app.register(fastifyCors, {
    delegator: (request, callback) => {
      callback(null, optionsFor(request))
    }
  })
  // A preflight from an origin not allowed reaches this route, before authentication.
  app.options(`${DICOMWEB}*`, { config: { public: true } }, async (_request, reply) => await reply.code(403).send())
}
