/** `GET /api/peers`: the members connected now, each once, with the addresses of its open connections. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import { type ConnectedMember, ConnectedMembers } from '../../../protocol/api/peers.ts'

export interface PeerRoutesOptions {
  connectedMembers(): ConnectedMember[]
}

export const peerRoutes: FastifyPluginAsyncTypebox<PeerRoutesOptions> = async (app, { connectedMembers }) => {
  const schema = { response: { 200: ConnectedMembers, ...ERROR_RESPONSES } }
  app.get('/api/peers', { schema }, async () => connectedMembers())
}
