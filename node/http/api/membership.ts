import type { FastifyInstance } from 'fastify'
import { decodeRevocation, type Revocation } from '../../../protocol/membership/index.ts'
import { MalformedMessageError } from '../../../protocol/errors.ts'
import { BadRequestError } from '../../errors.ts'
import type { NodeServices } from '../services.ts'

/**
 * `POST /api/membership/revocations`: hands revocations signed by the administrator to this node, which
 * verifies them, stores them, disconnects the revoked members and spreads the revocations to every member.
 * `GET /api/membership`: this node's certificate, the members it has verified, the revocations it holds.
 */
export async function membershipRoutes (app: FastifyInstance, { node }: { node: NodeServices }): Promise<void> {
  app.post('/api/membership/revocations', {
    schema: { body: { anyOf: [{ type: 'array', maxItems: 4096, items: { type: 'object' } }, { type: 'object' }] } }
  }, async (request) => {
    let revocations: Revocation[]
    try {
      // One revocation as the administrator's file holds it, or a list.
      revocations = (Array.isArray(request.body) ? request.body : [request.body]).map(decodeRevocation)
    } catch (error) {
      if (error instanceof MalformedMessageError) throw new BadRequestError(error.message)
      throw error
    }
    const { added, invalid } = await node.revocations.submit(revocations)
    if (invalid > 0 && added.length === 0) throw new BadRequestError(`${invalid} revocation(s) are not signed by this consortium's root`)
    return { added: added.map(r => r.peerId), invalid }
  })

  app.get('/api/membership', async () => ({
    consortium: node.registry.trust.info,
    certificate: node.certificate,
    revocations: node.registry.allRevocations()
  }))
}
