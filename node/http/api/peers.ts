import type { FastifyInstance } from 'fastify'
import type { NodeServices } from '../services.ts'

const peerSchema = {
  type: 'object',
  required: ['peerId', 'name', 'role', 'addrs'],
  properties: {
    peerId: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string' },
    subspecialties: { type: 'array', items: { type: 'string' } },
    addrs: { type: 'array', items: { type: 'string' } }
  }
} as const

/** `GET /api/peers`: the members connected now, each once, with the addresses of its open connections. */
export async function peerRoutes (app: FastifyInstance, { node }: { node: NodeServices }): Promise<void> {
  app.get('/api/peers', { schema: { response: { 200: { type: 'array', items: peerSchema } } } }, async () => node.connectedMembers())
}
