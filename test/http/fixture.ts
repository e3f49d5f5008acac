/**
 * A plugin on its own, as the node runs it (node/http/server.ts's `baseServer`: the same validation and error
 * answers), with the caller already signed in as `ACTOR`, for `app.inject`. The plugin is given fakes of just
 * the slices of capabilities it takes; `calls` records what they were asked.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { AuditActor } from '../../node/audit/log.ts'
import type { CaseState } from '../../node/worklist/cases.ts'
import { baseServer } from '../../node/http/server.ts'

export const ACTOR: AuditActor = { type: 'api', id: 'api-token', address: '127.0.0.1' }
export const CASE = '0123456789abcdef01234567'
export const ME = '12D3KooWReader'

export async function pluginApp<O extends object>(
  plugin: FastifyPluginAsyncTypebox<O>,
  options: O
): Promise<ReturnType<typeof baseServer>> {
  const app = baseServer()
  app.addHook('onRequest', async request => {
    request.actor = ACTOR
  })
  await app.register(plugin, options)
  await app.ready()
  return app
}

/** A case as the worklist holds it, with `changes`. */
export function caseState(changes: Partial<CaseState> = {}): CaseState {
  return {
    caseId: CASE,
    studyUid: '1.2.3',
    site: '12D3KooWSite',
    siteName: 'Site',
    priority: 'ROUTINE',
    subspecialty: 'neuro',
    modalities: ['CT'],
    bodyPart: 'HEAD',
    readers: [ME],
    status: 'SCHEDULED',
    claimedBy: null,
    claim: null,
    claimers: [],
    consultants: [],
    seq: 0,
    createdAt: '2026-01-01T00:00:00.000Z',
    dueAt: '2026-01-02T00:00:00.000Z',
    claimedAt: null,
    preliminaryAt: null,
    finalAt: null,
    canceledAt: null,
    finalReportHash: null,
    ...changes
  }
}

/** The error body of a refusal. */
export const errorOf = (body: string): { code: string; message: string } =>
  (JSON.parse(body) as { error: { code: string; message: string } }).error
