/**
 * `POST /api/import`: one Part 10 file as the body (`application/dicom`), stored exactly as STOW-RS and
 * C-STORE store it, as it arrives (nothing holds the request: the archive bounds the object, and a large one
 * goes to disk as it comes); `radmesh import` sends each file of its folders here.
 * `GET /api/instances/:sop`: where an instance is and what was stored (size, SHA-256, transfer syntax).
 * `GET /api/audit`: the audit trail (newest last), the last `?limit=` records (1 to 100000, 1000 if not given),
 *   with `?verify=1` the result of checking its chain.
 */
import type { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Imported, InstanceParams, StoredInstance } from '../../../protocol/api/archive.ts'
import { AuditQuery, AuditTrail, DEFAULT_AUDIT_RECORDS } from '../../../protocol/api/audit.ts'
import { ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import type { Archive } from '../../archive/archive.ts'
import type { AuditLog } from '../../audit/log.ts'
import { RadmeshError } from '../../errors.ts'

export interface ArchiveRoutesOptions {
  archive: Pick<Archive, 'incoming' | 'storeIncoming' | 'instance'>
  audit: Pick<AuditLog, 'query'>
}

/** `?verify`, `?verify=1` and `?verify=true` ask for the check; `0` and `false` do not. */
const VERIFY_YES = new Set(['', '1', 'true'])

export const archiveApiRoutes: FastifyPluginAsyncTypebox<ArchiveRoutesOptions> = async (app, { archive, audit }) => {
  // The body reaches the handler unread, as a stream (no parseAs: nothing buffers it).
  app.addContentTypeParser(['application/dicom', 'application/octet-stream'], (_request, payload, done) => {
    done(null, payload)
  })

  app.post('/api/import', { schema: { response: { 200: Imported, ...ERROR_RESPONSES } } }, async request => {
    const incoming = archive.incoming()
    try {
      // The next piece is read once this one is taken: while the archive writes, TCP holds the sender back.
      for await (const piece of request.body as Readable) {
        if (!incoming.write(piece as Uint8Array)) await incoming.drain()
      }
    } catch (error) {
      incoming.release() // the sender went away mid-file: nothing of it is stored
      throw error
    }
    const { outcome, instance } = await archive.storeIncoming(incoming, request.actor)
    return {
      outcome,
      studyInstanceUid: instance.studyUid,
      seriesInstanceUid: instance.seriesUid,
      sopInstanceUid: instance.sopUid,
      bytes: instance.size
    }
  })

  app.get(
    '/api/instances/:sop',
    {
      schema: { params: InstanceParams, response: { 200: StoredInstance, ...ERROR_RESPONSES } }
    },
    async request => {
      const instance = await archive.instance(request.params.sop)
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
    }
  )

  app.get(
    '/api/audit',
    {
      schema: { querystring: AuditQuery, response: { 200: AuditTrail, ...ERROR_RESPONSES } }
    },
    async request => {
      const { limit = DEFAULT_AUDIT_RECORDS, verify } = request.query
      return await audit.query({ limit, verify: verify !== undefined && VERIFY_YES.has(verify) })
    }
  )
}
