/**
 * STOW-RS (PS3.18 10.5): `POST /dicom-web/studies[/:study]` with `multipart/related; type="application/dicom"`.
 * Each part goes into the archive as it arrives, through the same `archive.incoming()` and `storeIncoming()` as a
 * C-STORE; a refused part becomes a FailedSOPSequence item with its reason (A700 over the size limit, C000 not
 * valid DICOM), and the other parts are stored regardless. Answers 200 when all were stored, 202 when some were
 * refused, 409 when none was stored; 415 for a body that is not multipart/related; 400 for one without a usable
 * boundary, or that breaks before its first part is whole (when it breaks later, the fault is the last failure
 * item). A part cut off (the client went away) is let go: nothing of it is stored.
 *
 * Memory: nothing holds the request. The body is read from the socket as it comes, through the multipart parser
 * (it keeps one delimiter line and one header block at most, protocol/dicomweb/multipart.ts), into the archive's
 * incoming object for the part, which bounds what a part costs (MAX_INSTANCE_BYTES; a large object goes to disk
 * as it arrives, archive/incoming.ts). While a part is written or stored, the request is not read: the socket's
 * buffers fill and TCP holds the sender back. So a request costs a few socket reads beyond its current part,
 * whatever its length: there is no limit on a request's total (a study can weigh gigabytes), only on its parts
 * (DEFAULT_MAX_PARTS) and on each part.
 */
import type { Readable } from 'node:stream'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import {
  type MultipartEvent,
  multipartBoundary,
  MultipartParser,
  parseContentType
} from '../../../protocol/dicomweb/multipart.ts'
import { ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import { DicomJsonDataset, StowParams } from '../../../protocol/api/dicomweb.ts'
import { MalformedMessageError } from '../../../protocol/errors.ts'
import type { Archive } from '../../archive/archive.ts'
import type { IncomingObject } from '../../archive/incoming.ts'
import { DIMSE_STATUS } from '../../dicom/dictionary.ts'
import { InvalidDicomError } from '../../dicom/errors.ts'
import { BadRequestError, RadmeshError } from '../../errors.ts'
import { dicomwebBase } from './qido.ts'

const sq = (items: unknown[]): { vr: 'SQ'; Value: unknown[] } => ({ vr: 'SQ', Value: items })
const ui = (value: string): { vr: 'UI'; Value: string[] } => ({ vr: 'UI', Value: [value] })
const ur = (value: string): { vr: 'UR'; Value: string[] } => ({ vr: 'UR', Value: [value] })

/** PS3.18 Table 10.5.3-1 failure reasons: the statuses a C-STORE would answer (PS3.4 C.4.2.1.4) */
const FAILURE = {
  cannotUnderstand: DIMSE_STATUS.cannotUnderstand,
  studyMismatch: DIMSE_STATUS.datasetMismatch,
  outOfResources: DIMSE_STATUS.outOfResources
} as const

/** A FailedSOPSequence item: the reason, a comment, and the instance when it is known. */
function failure(reason: number, comment: string, instance?: { sopClassUid: string; sopUid: string }): unknown {
  return {
    ...(instance === undefined ? {} : { '00081150': ui(instance.sopClassUid), '00081155': ui(instance.sopUid) }),
    '00081197': { vr: 'US', Value: [reason] },
    '00000902': { vr: 'LO', Value: [comment] }
  }
}

const ACCEPTED = 'STOW-RS takes multipart/related; type="application/dicom"'
/** A body of a media type STOW-RS does not take (415). */
class UnsupportedMediaTypeError extends RadmeshError {
  constructor(message: string) {
    super('RADMESH_UNSUPPORTED_MEDIA_TYPE', message)
    this.name = 'UnsupportedMediaTypeError'
  }
}

/** The multipart boundary of a STOW-RS request, or the error to answer: 415 not multipart/related, 400 no boundary. */
function boundaryOf(contentType: string | undefined): string {
  try {
    const { type } = parseContentType(contentType ?? '')
    if (type !== 'multipart/related') throw new UnsupportedMediaTypeError(`${ACCEPTED}, not ${type}`)
    return multipartBoundary(contentType ?? '')
  } catch (error) {
    if (!(error instanceof MalformedMessageError)) throw error
    if ((contentType ?? '').trim() === '') throw new UnsupportedMediaTypeError(`${ACCEPTED}: send a Content-Type`)
    throw new BadRequestError(`not a multipart/related DICOM request: ${error.message}`)
  }
}

export interface StowRoutesOptions {
  archive: Pick<Archive, 'incoming' | 'storeIncoming'>
}

// The request is a stream and the answer DICOM JSON at 200, 202 or 409: fastify's default type provider, as WADO-RS.
export const stowRoutes: FastifyPluginAsync<StowRoutesOptions> = async (app, { archive }) => {
  // In this plugin only: every body reaches the handler as the request stream, unread (no parseAs: nothing buffers
  // it, and no body limit applies; see the top of this file). The handler answers 415 to what it does not take.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => {
    done(null, payload)
  })

  type Request = FastifyRequest<{ Params: { study?: string } }>
  const handler = async (request: Request, reply: FastifyReply): Promise<unknown> => {
    const parser = new MultipartParser(boundaryOf(request.headers['content-type']))
    const study = request.params.study
    const referenced: unknown[] = []
    const failed: unknown[] = []
    /** the part being read: its number, and where its bytes go (nowhere for a part refused at its headers) */
    let current: { part: number; incoming: IncomingObject | undefined } | undefined

    const store = async (part: number, incoming: IncomingObject): Promise<void> => {
      try {
        const { instance } = await archive.storeIncoming(incoming, request.actor)
        if (study !== undefined && instance.studyUid !== study) {
          // Stored (it is valid DICOM), but reported: the client said it was sending another study.
          failed.push(failure(FAILURE.studyMismatch, `belongs to study ${instance.studyUid}, not ${study}`, instance))
          return
        }
        const { studyUid, seriesUid, sopUid } = instance
        referenced.push({
          '00081150': ui(instance.sopClassUid),
          '00081155': ui(sopUid),
          '00081190': ur(`${dicomwebBase(request)}/studies/${studyUid}/series/${seriesUid}/instances/${sopUid}`)
        })
      } catch (error) {
        if (!(error instanceof InvalidDicomError)) throw error
        const reason = error.reason === 'too-large' ? FAILURE.outOfResources : FAILURE.cannotUnderstand
        failed.push(failure(reason, `part ${part}: ${error.message}`))
      }
    }

    const take = async (event: MultipartEvent): Promise<void> => {
      if (event.type === 'part') {
        const partType = (event.headers['content-type'] ?? 'application/dicom').split(';')[0]?.trim().toLowerCase()
        if (partType === 'application/dicom') {
          current = { part: event.part, incoming: archive.incoming() }
        } else {
          current = { part: event.part, incoming: undefined } // its bytes are read and dropped
          const comment = `part ${event.part} is ${partType}; send application/dicom parts`
          failed.push(failure(FAILURE.cannotUnderstand, comment))
        }
      } else if (event.type === 'body') {
        const incoming = current?.incoming
        if (incoming !== undefined && !incoming.write(event.bytes)) await incoming.drain()
      } else if (event.type === 'part-end') {
        const incoming = current?.incoming
        current = undefined
        if (incoming !== undefined) await store(event.part, incoming)
      }
    }

    /** A part cut off: nothing of it is stored, and its bytes are let go. Returns its number. */
    const dropCurrent = (): number | undefined => {
      const part = current?.part
      current?.incoming?.release()
      current = undefined
      return part
    }

    let malformed: MalformedMessageError | undefined
    const events: MultipartEvent[] = []
    try {
      // Async iteration asks for the next piece once this one is taken: while a part is written or stored, the
      // request is not read, and backpressure reaches TCP.
      for await (const piece of (request.body as Readable | undefined) ?? []) {
        if (malformed !== undefined) continue // the rest is read and dropped, so that the client reads the answer
        try {
          parser.push(piece as Uint8Array, events)
        } catch (error) {
          if (!(error instanceof MalformedMessageError)) throw error
          malformed = error // the events before the fault are taken still: the parts that were whole are stored
        }
        for (const event of events) await take(event)
        events.length = 0
        if (malformed !== undefined) dropCurrent()
      }
      if (malformed === undefined) {
        try {
          parser.end()
        } catch (error) {
          if (!(error instanceof MalformedMessageError)) throw error
          malformed = error
        }
      }
    } catch (error) {
      // What was stored stays; the part cut off is dropped.
      const part = dropCurrent()
      if (!request.raw.destroyed && !request.raw.readableAborted) throw error // the archive failed
      const where = part ?? parser.parts
      request.log.info({ event: 'stow-cut-off', part: where, stored: referenced.length }, 'STOW-RS request cut off')
      throw new BadRequestError(`the request ended inside part ${where}: the client closed the connection`)
    } finally {
      dropCurrent()
    }

    if (malformed !== undefined) {
      // Before any part was whole, the request is not one; after, the parts that were are answered for.
      if (referenced.length === 0 && failed.length === 0) {
        throw new BadRequestError(`not a multipart/related DICOM request: ${malformed.message}`)
      }
      failed.push(failure(FAILURE.cannotUnderstand, `the rest of the request could not be read: ${malformed.message}`))
    }
    const status = failed.length === 0 ? 200 : referenced.length === 0 ? 409 : 202
    return await reply
      .status(status)
      .type('application/dicom+json')
      .send({
        ...(study === undefined ? {} : { '00081190': ur(`${dicomwebBase(request)}/studies/${study}`) }),
        '00081199': sq(referenced),
        ...(failed.length === 0 ? {} : { '00081198': sq(failed) })
      })
  }
  const answers = { 200: DicomJsonDataset, 202: DicomJsonDataset, 409: DicomJsonDataset, ...ERROR_RESPONSES }
  app.post('/dicom-web/studies', { schema: { response: answers } }, handler)
  app.post<{ Params: StowParams }>(
    '/dicom-web/studies/:study',
    { schema: { params: StowParams, response: answers } },
    handler
  )
}
