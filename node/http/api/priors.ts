/**
 * A case's priors over HTTP (schema and contract in protocol/api/priors.ts); the work is in
 * node/workflow/priors.ts.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CaseParams, ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import { CasePriors } from '../../../protocol/api/priors.ts'
import type { CasePriorsService } from '../../workflow/priors.ts'

export interface PriorRoutesOptions {
  priors: Pick<CasePriorsService, 'casePriors'>
}

export const priorRoutes: FastifyPluginAsyncTypebox<PriorRoutesOptions> = async (app, { priors }) => {
  app.get(
    '/api/cases/:caseId/priors',
    { schema: { params: CaseParams, response: { 200: CasePriors, ...ERROR_RESPONSES } } },
    async request => await priors.casePriors(request.params.caseId)
  )
}
