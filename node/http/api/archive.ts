/**
 * `POST /api/import`: one Part 10 file as the body (`application/dicom`), stored exactly as STOW-RS and
 * C-STORE store it; `radmesh import` sends each file of its folders here.
 * `GET /api/instances/:sop`: where an instance is and what was stored (size, SHA-256, transfer syntax).
 * `GET /api/audit`: the audit trail (newest last), with `?verify=1` the result of checking its chain.
 */
import type { FastifyInstance } from 'fastify'
import { MAX_INSTANCE_BYTES } from '../../archive/archive.ts'
import { AuditLog } from '../../audit/log.ts'
import { RadmeshError } from '../../errors.ts'
import type { NodeServices } from '../services.ts'

export async function archiveApiRoutes (app: FastifyInstance, { node }: { node: NodeServices }): Promise<void> {
  app.addContentTypeParser(['application/dicom', 'application/octet-stream'], { parseAs: 'buffer', bodyLimit: MAX_INSTANCE_BYTES }, (_request, body, done) => { done(null, body) })

  app.post('/api/import', { bodyLimit: MAX_INSTANCE_BYTES }, async (request) => {
    const { outcome, instance } = await node.archive.store(request.body as Buffer, request.actor)
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

  app.get<{ Querystring: { verify?: string, limit?: string } }>('/api/audit', async (request) => {
    await node.audit.settled()
    const records = await AuditLog.read(node.auditPath)
    const limit = Math.min(Number(request.query.limit ?? 1000) || 1000, 100_000)
    return {
      total: records.length,
      records: records.slice(-limit),
      ...(request.query.verify === undefined ? {} : { verify: await AuditLog.verify(node.auditPath) })
    }
  })
}
