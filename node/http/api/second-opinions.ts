/**
 * Second opinions over HTTP (the route's contract in protocol/api/second-opinions.ts); the work is in
 * node/workflow/second-opinions.ts.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CaseParams, ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import { SecondOpinions } from '../../../protocol/api/second-opinions.ts'
import type { SecondOpinions as Opinions } from '../../workflow/second-opinions.ts'

export interface SecondOpinionRoutesOptions {
  secondOpinions: Pick<Opinions, 'ofCase'>
}

export const secondOpinionRoutes: FastifyPluginAsyncTypebox<SecondOpinionRoutesOptions> = async (
  app,
  { secondOpinions }
) => {
  app.get(
    '/api/cases/:caseId/second-opinions',
    { schema: { params: CaseParams, response: { 200: SecondOpinions, ...ERROR_RESPONSES } } },
    async request => await secondOpinions.ofCase(request.params.caseId)
  )
}
