/**
 * Live report editing for the viewer (node/reports/live-report.ts): the browser is a Yjs client of the case's
 * report document, bound to this node's member, and its node is its only peer.
 *
 * `POST /api/cases/:caseId/report/live/binding` `{ clientId }`: the member's signed binding of that Yjs client;
 *   the viewer writes it into the report itself (a binding must come from the client it binds)
 * `GET /api/cases/:caseId/report/live`: Server-Sent Events: `update` (base64 Yjs update; the first one is the
 *   whole document), `view` (the report's status and verified signatures, as `GET …/report`, after each change),
 *   `awareness` (base64 y-protocols awareness update of the other readers)
 * `POST /api/cases/:caseId/report/live` (application/octet-stream, one Yjs update): checked by the same rules
 *   as a peer's update, then applied as this member's own change (durable before 204) and sent to the peers
 * `POST /api/cases/:caseId/report/presence` (application/octet-stream, a y-protocols awareness update): this
 *   viewer's name and cursor, for the other readers
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { CaseParams, ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import { Binding, BindingBody } from '../../../protocol/api/reports.ts'
import { MAX_UPDATE_BYTES } from '../../../protocol/collab/sync.ts'
import type { LiveReports } from '../../reports/live-report.ts'
import { BadRequestError } from '../../errors.ts'
import type { Sessions } from '../auth.ts'

export interface ReportLiveRoutesOptions {
  live: Pick<LiveReports, 'binding' | 'view' | 'subscribe' | 'apply' | 'presence'>
  sessions: Pick<Sessions, 'isAlive'>
}

/**
 * Comment lines keep proxies and browsers from timing an idle stream out; a viewer session that timed out ends
 * its stream then.
 */
const HEARTBEAT_MS = 5_000
/** Changes arriving together are answered with one `view`. */
const VIEW_DEBOUNCE_MS = 150

const base64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')
/** 204 with no body, or an error. */
const NO_CONTENT = { 204: Type.Null(), ...ERROR_RESPONSES }

/** The body of an update route: the bytes, or 400 with what to send. */
function updateOf(body: unknown, what: string): Uint8Array {
  if (!Buffer.isBuffer(body) || body.byteLength === 0) {
    throw new BadRequestError(`send one ${what} as application/octet-stream`)
  }
  return new Uint8Array(body)
}

export const reportLiveRoutes: FastifyPluginAsyncTypebox<ReportLiveRoutesOptions> = async (app, { live, sessions }) => {
  const bytes = { parseAs: 'buffer', bodyLimit: MAX_UPDATE_BYTES } as const
  app.addContentTypeParser('application/octet-stream', bytes, (_request, body, done) => {
    done(null, body)
  })

  app.post(
    '/api/cases/:caseId/report/live/binding',
    {
      schema: { params: CaseParams, body: BindingBody, response: { 200: Binding, ...ERROR_RESPONSES } }
    },
    async request => await live.binding(request.params.caseId, request.body.clientId)
  )

  app.get('/api/cases/:caseId/report/live', { schema: { params: CaseParams } }, async (request, reply) => {
    const { caseId } = request.params
    const raw = reply.raw
    const send = (event: string, data: string): void => {
      raw.write(`event: ${event}\ndata: ${data}\n\n`)
    }
    let viewTimer: NodeJS.Timeout | undefined
    const sendView = (): void => {
      clearTimeout(viewTimer)
      viewTimer = setTimeout(() => {
        live
          .view(caseId)
          .then(view => {
            send('view', JSON.stringify(view))
          })
          .catch(() => {})
      }, VIEW_DEBOUNCE_MS)
    }
    // Nothing is written before the subscription: a refusal is still an answer in the documented shape. What
    // arrives before the stream is open waits for it.
    let waiting: Array<[string, string]> | undefined = []
    const emit = (event: string, data: string): void => {
      if (waiting !== undefined) waiting.push([event, data])
      else send(event, data)
      if (event === 'update') sendView()
    }
    const subscription = await live.subscribe(caseId, request.actor, {
      update: update => {
        emit('update', base64(update))
      },
      awareness: update => {
        emit('awareness', base64(update))
      }
    })

    reply.hijack()
    if (raw.destroyed) {
      subscription.unsubscribe()
      return
    } // the viewer went away meanwhile
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    send('update', base64(subscription.state))
    sendView()
    if (subscription.awareness !== undefined) send('awareness', base64(subscription.awareness))
    for (const [event, data] of waiting) send(event, data)
    waiting = undefined
    const session = request.session
    const heartbeat = setInterval(() => {
      if (session !== undefined && !sessions.isAlive(session)) raw.end()
      else raw.write(': alive\n\n')
    }, HEARTBEAT_MS)
    raw.on('close', () => {
      clearInterval(heartbeat)
      clearTimeout(viewTimer)
      subscription.unsubscribe()
    })
  })

  const update = { schema: { params: CaseParams, response: NO_CONTENT } }
  app.post('/api/cases/:caseId/report/presence', update, async (request, reply) => {
    await live.presence(request.params.caseId, updateOf(request.body, 'awareness update'))
    return await reply.code(204).send(null)
  })

  app.post('/api/cases/:caseId/report/live', update, async (request, reply) => {
    await live.apply(request.params.caseId, updateOf(request.body, 'Yjs update'), request.actor)
    return await reply.code(204).send(null)
  })
}
