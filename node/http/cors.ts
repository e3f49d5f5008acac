/**
 * Cross-origin access to the DICOMweb routes, for a viewer served from another origin (OHIF on its own
 * server): only the origins given with `radmesh start --cors ORIGIN`, only under /dicom-web, and the
 * request must still carry the API token (`Authorization: Bearer …`). No cookies cross origins.
 */
import type { FastifyInstance } from 'fastify'

const ALLOWED_HEADERS = 'authorization, accept, content-type'
const ALLOWED_METHODS = 'GET, POST, OPTIONS'
/** Browsers may cache a preflight answer this long (seconds). */
const PREFLIGHT_MAX_AGE = 600

export function allowCrossOrigin (app: FastifyInstance, origins: readonly string[]): void {
  if (origins.length === 0) return
  const allowed = new Set(origins.map(origin => origin.replace(/\/+$/, '')))
  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin
    if (origin === undefined || !allowed.has(origin) || !request.url.startsWith('/dicom-web/')) return
    void reply.headers({ 'access-control-allow-origin': origin, vary: 'Origin', 'access-control-expose-headers': 'content-type, content-location' })
  })
  // A preflight carries no Authorization header: it is answered before authentication, and says nothing else.
  app.options('/dicom-web/*', { config: { public: true } }, async (request, reply) => {
    const origin = request.headers.origin
    if (origin === undefined || !allowed.has(origin)) return await reply.code(403).send()
    return await reply.code(204).headers({
      'access-control-allow-origin': origin,
      'access-control-allow-methods': ALLOWED_METHODS,
      'access-control-allow-headers': ALLOWED_HEADERS,
      'access-control-max-age': String(PREFLIGHT_MAX_AGE),
      vary: 'Origin'
    }).send()
  })
}
