/** The HTTP side of a node, as `createNode()` (node.ts) serves it: the API, DICOMweb and viewer on HOST:PORT. */
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { ListenError } from './errors.ts'
import type { Sessions } from './http/auth.ts'
import { createHttpServer } from './http/server.ts'
import { isAddressInUse } from './node-options.ts'

/** Builds the HTTP server and listens on `http`; a taken port is a ListenError. Returns it and its URL. */
export async function serveHttp(
  components: Parameters<typeof createHttpServer>[0],
  sessions: Sessions,
  log: Logger,
  corsOrigins: readonly string[],
  http: { host: string; port: number }
): Promise<{ app: FastifyInstance; httpUrl: string }> {
  const app = await createHttpServer(components, sessions, log, corsOrigins)
  try {
    await app.listen({ host: http.host, port: http.port })
  } catch (error) {
    await app.close().catch(() => {})
    if (isAddressInUse(error))
      throw new ListenError(
        'RADMESH_ADDRESS_IN_USE',
        `cannot serve HTTP on ${http.host}:${http.port}: address already in use; choose another --http port`,
        { cause: error }
      )
    throw error
  }
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : http.port
  return { app, httpUrl: `http://${http.host.includes(':') ? `[${http.host}]` : http.host}:${port}` }
}
