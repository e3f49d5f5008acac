import type { FastifyInstance } from 'fastify'
import type { NodeServices } from '../services.ts'

/** `GET /api/health`: open to all, so load balancers and monitors need no token. */
export async function healthRoutes (app: FastifyInstance, { node }: { node: NodeServices }): Promise<void> {
  app.get('/api/health', {
    config: { public: true },
    schema: {
      response: {
        200: {
          type: 'object',
          required: ['ok', 'peerId', 'name', 'role'],
          properties: { ok: { type: 'boolean' }, peerId: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' } }
        }
      }
    }
  }, async () => ({ ok: node.host.status === 'started', peerId: node.peerId, name: node.certificate.name, role: node.certificate.role }))
}
