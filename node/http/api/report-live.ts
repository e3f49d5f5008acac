/**
 * Live report editing for the viewer: the browser is a Yjs client of the case's report document, bound
 * to this node's member, and its node is its only peer.
 *
 * `POST /api/cases/:caseId/report/live/binding` `{ clientId }`: the member's signed binding of that Yjs client;
 *   the viewer writes it into the report itself (a binding must come from the client it binds)
 * `GET /api/cases/:caseId/report/live`: Server-Sent Events: `update` (base64 Yjs update; the first one is the
 *   whole document), `view` (the report's status and verified signatures, as `GET …/report`, after each change)
 * `POST /api/cases/:caseId/report/live` (application/octet-stream, one Yjs update): checked by the same rules
 *   as a peer's update, then applied as this member's own change (durable before 204) and sent to the peers
 * `POST /api/cases/:caseId/report/presence` (application/octet-stream, a y-protocols awareness update): this
 *   viewer's name and cursor, for the other readers; the stream's `awareness` events carry theirs
 *
 * Opening the live report and each accepted update are audited (110110 Patient Record).
 */
import type { FastifyInstance } from 'fastify'
import * as Y from 'yjs'
import { MAX_UPDATE_BYTES, reportDocId } from '../../../protocol/collab/sync.ts'
import { UpdateRefusedError } from '../../collab/inspect.ts'
import { BadRequestError, CaseError } from '../../errors.ts'
import type { Sessions } from '../auth.ts'
import type { NodeServices } from '../services.ts'
import { caseIdOf } from './worklist.ts'

/** Comment lines keep proxies and browsers from timing an idle stream out; a viewer session that timed out ends its stream then. */
const HEARTBEAT_MS = 5_000
/** Changes arriving together are answered with one `view`. */
const VIEW_DEBOUNCE_MS = 150

export async function reportLiveRoutes (app: FastifyInstance, { node, sessions }: { node: NodeServices, sessions: Sessions }): Promise<void> {
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: MAX_UPDATE_BYTES }, (_request, body, done) => { done(null, body) })

  app.post<{ Params: { caseId: string }, Body: unknown }>('/api/cases/:caseId/report/live/binding', async (request) => {
    const caseId = caseIdOf(request.params)
    const clientId = (request.body as { clientId?: unknown } | undefined)?.clientId
    if (typeof clientId !== 'number') throw new BadRequestError('the body must be { "clientId": N }, the viewer\'s Yjs client id')
    return await node.reports.viewerBinding(caseId, clientId)
  })

  app.get<{ Params: { caseId: string } }>('/api/cases/:caseId/report/live', async (request, reply) => {
    const caseId = caseIdOf(request.params)
    const state = node.reports.readable(caseId)
    const docId = reportDocId(caseId)
    const doc = await node.documents.open(docId)
    await node.audit.append({ event: 'patientRecord', action: 'R', outcome: 0, actor: request.actor, study: state.studyUid, detail: `report of case ${caseId}: opened live` })

    reply.hijack()
    const raw = reply.raw
    raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' })
    const send = (event: string, data: string): void => { raw.write(`event: ${event}\ndata: ${data}\n\n`) }
    let viewTimer: NodeJS.Timeout | undefined
    const sendView = (): void => {
      clearTimeout(viewTimer)
      viewTimer = setTimeout(() => {
        node.reports.view(caseId).then(view => { send('view', JSON.stringify(view)) }).catch(() => {})
      }, VIEW_DEBOUNCE_MS)
    }
    send('update', Buffer.from(Y.encodeStateAsUpdate(doc)).toString('base64'))
    sendView()
    const present = node.presence.snapshot(docId)
    if (present !== undefined) send('awareness', Buffer.from(present).toString('base64'))
    const unsubscribe = node.documents.onUpdate((changed, update) => {
      if (changed !== docId) return
      send('update', Buffer.from(update).toString('base64'))
      sendView()
    })
    const unsubscribePresence = node.presence.onUpdate((changed, update) => {
      if (changed === docId) send('awareness', Buffer.from(update).toString('base64'))
    })
    const session = request.session
    const heartbeat = setInterval(() => {
      if (session !== undefined && !sessions.isAlive(session)) raw.end()
      else raw.write(': alive\n\n')
    }, HEARTBEAT_MS)
    raw.on('close', () => {
      clearInterval(heartbeat)
      clearTimeout(viewTimer)
      unsubscribe()
      unsubscribePresence()
    })
  })

  app.post<{ Params: { caseId: string }, Body: Buffer }>('/api/cases/:caseId/report/presence', async (request, reply) => {
    const caseId = caseIdOf(request.params)
    if (!Buffer.isBuffer(request.body) || request.body.byteLength === 0) throw new BadRequestError('send one awareness update as application/octet-stream')
    node.reports.readable(caseId)
    try {
      await node.presence.apply(reportDocId(caseId), new Uint8Array(request.body), { kind: 'viewer' })
    } catch (error) {
      if (error instanceof UpdateRefusedError) throw new BadRequestError(`presence refused: ${error.message}`)
      throw error
    }
    return await reply.code(204).send()
  })

  app.post<{ Params: { caseId: string }, Body: Buffer }>('/api/cases/:caseId/report/live', async (request, reply) => {
    const caseId = caseIdOf(request.params)
    if (!Buffer.isBuffer(request.body) || request.body.byteLength === 0) throw new BadRequestError('send one Yjs update as application/octet-stream')
    try {
      await node.sync.applyFromViewer(reportDocId(caseId), new Uint8Array(request.body))
    } catch (error) {
      if (error instanceof UpdateRefusedError) throw new CaseError(/FINAL/.test(error.message) ? 'RADMESH_REPORT_FINAL' : 'RADMESH_NOT_ALLOWED', `the report change was refused: ${error.message}`)
      throw error
    }
    const state = node.worklist.caseState(caseId)
    await node.audit.append({ event: 'patientRecord', action: 'U', outcome: 0, actor: request.actor, ...(state === undefined ? {} : { study: state.studyUid }), detail: `report of case ${caseId}: edited in the viewer` })
    return await reply.code(204).send()
  })
}
