/**
 * Critical results over HTTP (schemas and the routes' contract in protocol/api/critical.ts); the work is in
 * node/worklist/critical-results.ts.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CaseParams, ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import {
  CriticalAckBody,
  CriticalBody,
  CriticalCallBody,
  CriticalParams,
  CriticalQuery,
  CriticalResult,
  CriticalResults
} from '../../../protocol/api/critical.ts'
import type { CriticalResults as Critical } from '../../worklist/critical-results.ts'

export interface CriticalRoutesOptions {
  critical: Pick<Critical, 'list' | 'raise' | 'acknowledge' | 'recordCall'>
}

export const criticalRoutes: FastifyPluginAsyncTypebox<CriticalRoutesOptions> = async (app, { critical }) => {
  app.post(
    '/api/cases/:caseId/critical',
    {
      schema: { params: CaseParams, body: CriticalBody, response: { 200: CriticalResult, ...ERROR_RESPONSES } }
    },
    async request => {
      const { level, text } = request.body
      return await critical.raise(request.params.caseId, level, text, request.actor)
    }
  )

  app.get(
    '/api/critical',
    {
      schema: { querystring: CriticalQuery, response: { 200: CriticalResults, ...ERROR_RESPONSES } }
    },
    async request => critical.list(request.query.open === 'true')
  )

  app.post(
    '/api/critical/:id/ack',
    {
      schema: { params: CriticalParams, body: CriticalAckBody, response: { 200: CriticalResult, ...ERROR_RESPONSES } }
    },
    async request => {
      const { by, role = '' } = request.body
      return await critical.acknowledge(request.params.id, by, role, request.actor)
    }
  )

  app.post(
    '/api/critical/:id/call',
    {
      schema: { params: CriticalParams, body: CriticalCallBody, response: { 200: CriticalResult, ...ERROR_RESPONSES } }
    },
    async request => await critical.recordCall(request.params.id, request.body.note, request.actor)
  )
}
