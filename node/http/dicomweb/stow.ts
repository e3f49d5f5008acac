/**
 * STOW-RS (PS3.18 10.5): `POST /dicom-web/studies[/:study]` with `multipart/related; type="application/dicom"`.
 * Each part goes through the same `archive.store()` as C-STORE and import; a refused part becomes a
 * FailedSOPSequence item with its reason, and the other parts are stored regardless.
 * Answers 200 when all were stored, 202 when some were refused, 409 when none was stored.
 */
import type { FastifyInstance } from 'fastify'
import { type MultipartPart, parseMultipartRelated } from '../../../protocol/dicomweb/multipart.ts'
import { MalformedMessageError } from '../../../protocol/errors.ts'
import { MAX_INSTANCE_BYTES } from '../../archive/archive.ts'
import { InvalidDicomError } from '../../dicom/errors.ts'
import { BadRequestError } from '../../errors.ts'
import type { NodeServices } from '../services.ts'
import { dicomwebBase } from './qido.ts'

/** A STOW-RS request is held in memory while its parts are stored: this bounds it. */
export const MAX_STOW_BYTES = 1024 * 1024 * 1024

const sq = (items: unknown[]): { vr: 'SQ', Value: unknown[] } => ({ vr: 'SQ', Value: items })
const ui = (value: string): { vr: 'UI', Value: string[] } => ({ vr: 'UI', Value: [value] })

/** PS3.4 C.4.2.1.4 / PS3.18 Table 10.5.3-1 failure reasons */
const FAILURE = { cannotUnderstand: 0xc000, studyMismatch: 0xa900, outOfResources: 0xa700 } as const

export async function stowRoutes (app: FastifyInstance, { node }: { node: NodeServices }): Promise<void> {
  app.addContentTypeParser(/^multipart\/related/i, { parseAs: 'buffer', bodyLimit: MAX_STOW_BYTES }, (_request, body, done) => { done(null, body) })

  const handler = async (request: import('fastify').FastifyRequest<{ Params: { study?: string } }>, reply: import('fastify').FastifyReply): Promise<unknown> => {
    const contentType = request.headers['content-type'] ?? ''
    let parts: MultipartPart[]
    try {
      parts = parseMultipartRelated(request.body as Buffer, contentType)
    } catch (error) {
      if (error instanceof MalformedMessageError) throw new BadRequestError(`not a multipart/related DICOM request: ${error.message}`)
      throw error
    }
    const referenced: unknown[] = []
    const failed: unknown[] = []
    for (const [index, part] of parts.entries()) {
      const partType = (part.headers['content-type'] ?? 'application/dicom').split(';')[0]?.trim().toLowerCase()
      if (partType !== 'application/dicom') {
        failed.push({ '00081197': { vr: 'US', Value: [FAILURE.cannotUnderstand] }, '00000902': { vr: 'LO', Value: [`part ${index + 1} is ${partType}; send application/dicom parts`] } })
        continue
      }
      try {
        if (part.body.byteLength > MAX_INSTANCE_BYTES) throw new InvalidDicomError('too-large', 'object too large')
        const { instance } = await node.archive.store(part.body, request.actor)
        if (request.params.study !== undefined && instance.studyUid !== request.params.study) {
          // Stored (it is valid DICOM), but reported: the client said it was sending another study.
          failed.push({ '00081150': ui(instance.sopClassUid), '00081155': ui(instance.sopUid), '00081197': { vr: 'US', Value: [FAILURE.studyMismatch] }, '00000902': { vr: 'LO', Value: [`belongs to study ${instance.studyUid}, not ${request.params.study}`] } })
          continue
        }
        referenced.push({
          '00081150': ui(instance.sopClassUid),
          '00081155': ui(instance.sopUid),
          '00081190': { vr: 'UR', Value: [`${dicomwebBase(request)}/studies/${instance.studyUid}/series/${instance.seriesUid}/instances/${instance.sopUid}`] }
        })
      } catch (error) {
        if (!(error instanceof InvalidDicomError)) throw error
        failed.push({ '00081197': { vr: 'US', Value: [FAILURE.cannotUnderstand] }, '00000902': { vr: 'LO', Value: [`part ${index + 1}: ${error.message}`] } })
      }
    }
    const status = failed.length === 0 ? 200 : referenced.length === 0 ? 409 : 202
    return await reply.status(status).type('application/dicom+json').send({
      ...(request.params.study === undefined ? {} : { '00081190': { vr: 'UR', Value: [`${dicomwebBase(request)}/studies/${request.params.study}`] } }),
      '00081199': sq(referenced),
      ...(failed.length === 0 ? {} : { '00081198': sq(failed) })
    })
  }
  app.post('/dicom-web/studies', { bodyLimit: MAX_STOW_BYTES }, handler)
  app.post<{ Params: { study?: string } }>('/dicom-web/studies/:study', { bodyLimit: MAX_STOW_BYTES }, handler)
}
