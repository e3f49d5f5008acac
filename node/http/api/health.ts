/** `GET /api/health`: open to all, so load balancers and monitors need no token. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import { Health } from '../../../protocol/api/health.ts'
import type { RadmeshHost } from '../../p2p/host.ts'
import type { Self } from '../services.ts'

export interface HealthRoutesOptions {
  self: Self
  host: Pick<RadmeshHost, 'status'>
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, { self, host }) => {
  const schema = { response: { 200: Health, ...ERROR_RESPONSES } }
  app.get('/api/health', { config: { public: true }, schema }, async () => ({
    ok: host.status === 'started',
    peerId: self.peerId,
    name: self.certificate.name,
    role: self.certificate.role
  }))
}
