/**
 * `POST /api/membership/revocations`: hands revocations signed by the administrator to this node, which
 * verifies them, stores them, disconnects the revoked members and spreads the revocations to every member.
 * `GET /api/membership`: this node's certificate, the consortium, the revocations it holds.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import { Membership, RevocationsAdded, RevocationsBody } from '../../../protocol/api/membership.ts'
import { MalformedMessageError } from '../../../protocol/errors.ts'
import { decodeRevocation, type Revocation } from '../../../protocol/membership/index.ts'
import { BadRequestError } from '../../errors.ts'
import type { MembershipRegistry } from '../../membership/registry.ts'
import type { RevocationSpreader } from '../../membership/revocation-spread.ts'
import type { Self } from '../services.ts'

export interface MembershipRoutesOptions {
  self: Self
  registry: Pick<MembershipRegistry, 'trust' | 'allRevocations'>
  revocations: Pick<RevocationSpreader, 'submit'>
}

export const membershipRoutes: FastifyPluginAsyncTypebox<MembershipRoutesOptions> = async (app, options) => {
  const { self, registry, revocations } = options
  app.post(
    '/api/membership/revocations',
    {
      schema: { body: RevocationsBody, response: { 200: RevocationsAdded, ...ERROR_RESPONSES } }
    },
    async request => {
      let submitted: Revocation[]
      try {
        // One revocation as the administrator's file holds it, or a list.
        submitted = (Array.isArray(request.body) ? request.body : [request.body]).map(decodeRevocation)
      } catch (error) {
        if (error instanceof MalformedMessageError) throw new BadRequestError(error.message)
        throw error
      }
      const { added, invalid } = await revocations.submit(submitted)
      if (invalid > 0 && added.length === 0) {
        throw new BadRequestError(`${invalid} revocation(s) are not signed by this consortium's root`)
      }
      return { added: added.map(r => r.peerId), invalid }
    }
  )

  app.get('/api/membership', { schema: { response: { 200: Membership, ...ERROR_RESPONSES } } }, async () => ({
    consortium: registry.trust.info,
    certificate: self.certificate,
    revocations: registry.allRevocations()
  }))
}
