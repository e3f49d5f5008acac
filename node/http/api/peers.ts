/**
 * `GET /api/peers`: the members connected now, each once, with the addresses of its open connections.
 * `GET /api/reach`: how members can reach this node (direct, through relays, not known yet).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import { type ConnectedMember, ConnectedMembers, Reach } from '../../../protocol/api/peers.ts'

export interface PeerRoutesOptions {
  connectedMembers(): ConnectedMember[]
  reach(): Reach
}

export const peerRoutes: FastifyPluginAsyncTypebox<PeerRoutesOptions> = async (app, { connectedMembers, reach }) => {
  const schema = { response: { 200: ConnectedMembers, ...ERROR_RESPONSES } }
  app.get('/api/peers', { schema }, async () => connectedMembers())
  app.get('/api/reach', { schema: { response: { 200: Reach, ...ERROR_RESPONSES } } }, async () => reach())
}
