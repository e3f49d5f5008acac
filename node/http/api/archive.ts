/**
 * `POST /api/import`: one Part 10 file as the body (`application/dicom`), stored exactly as STOW-RS and
 * C-STORE store it, as it arrives (nothing holds the request: the archive bounds the object, and a large one
 * goes to disk as it comes); `radmesh import` sends each file of its folders here.
 * `GET /api/instances/:sop`: where an instance is and what was stored (size, SHA-256, transfer syntax).
 * `GET /api/audit`: the audit trail (newest last), the last `?limit=` records (1 to 100000, 1000 if not given),
 *   with `?verify=1` the result of checking its chain.
 */
import type { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { AuditLog } from '../../audit/log.ts'
import { RadmeshError } from '../../errors.ts'
import type { NodeServices } from '../services.ts'

const DEFAULT_AUDIT_RECORDS = 1000
const MAX_AUDIT_RECORDS = 100_000
/** `?verify`, `?verify=1` and `?verify=true` ask for the check; `0` and `false` do not. */
const VERIFY_YES = new Set(['', '1', 'true'])
const AUDIT_QUERY = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: MAX_AUDIT_RECORDS },
    verify: { type: 'string', enum: [...VERIFY_YES, '0', 'false'] }
  }
} as const

export async function archiveApiRoutes (app: FastifyInstance, { node }: { node: NodeServices }): Promise<void> {
  // The body reaches the handler unread, as a stream (no parseAs: nothing buffers it).
  app.addContentTypeParser(['application/dicom', 'application/octet-stream'], (_request, payload, done) => { done(null, payload) })

  app.post('/api/import', async (request) => {
    const incoming = node.archive.incoming()
    try {
      // The next piece is read once this one is taken: while the archive writes, TCP holds the sender back.
      for await (const piece of request.body as Readable) {
        if (!incoming.write(piece as Uint8Array)) await incoming.drain()
      }
    } catch (error) {
      incoming.release() // the sender went away mid-file: nothing of it is stored
      throw error
    }
    const { outcome, instance } = await node.archive.storeIncoming(incoming, request.actor)
    return { outcome, studyInstanceUid: instance.studyUid, seriesInstanceUid: instance.seriesUid, sopInstanceUid: instance.sopUid, bytes: instance.size }
  })

  app.get<{ Params: { sop: string } }>('/api/instances/:sop', async (request) => {
    const instance = await node.archive.instance(request.params.sop)
    if (instance === undefined) throw new RadmeshError('RADMESH_NOT_FOUND', `no instance ${request.params.sop} here`)
    return {
      studyInstanceUid: instance.studyUid,
      seriesInstanceUid: instance.seriesUid,
      sopInstanceUid: instance.sopUid,
      sopClassUid: instance.sopClassUid,
      transferSyntaxUid: instance.transferSyntaxUid,
      bytes: instance.size,
      sha256: instance.sha256,
      storedAt: instance.storedAt
    }
  })

  type AuditQuery = { verify?: string, limit?: number }
  app.get<{ Querystring: AuditQuery }>('/api/audit', { schema: { querystring: AUDIT_QUERY } }, async (request) => {
    await node.audit.settled()
    const records = await AuditLog.read(node.auditPath)
    const limit = request.query.limit ?? DEFAULT_AUDIT_RECORDS
    const verify = request.query.verify !== undefined && VERIFY_YES.has(request.query.verify)
    return {
      total: records.length,
      records: records.slice(-limit),
      ...(verify ? { verify: await AuditLog.verify(node.auditPath) } : {})
    }
  })
}
