/**
 * The study exchange over HTTP:
 * `POST /api/studies/:studyUid/share` `{ peerIds, deidentify?, retainDates?, retainPatientCharacteristics?,
 *   burnedInAnnotationClean? }`: wraps the study key for these members and announces it; with `deidentify`, the
 *   members get a de-identified copy instead (node/deid/share.ts), and the answer names the copy.
 * `POST /api/studies/:studyUid/fetch`: 202; the node fetches the study from whoever holds it.
 * `GET /api/studies/:studyUid/availability`: `{ instancesTotal, instancesLocal, bytesTotal, bytesLocal,
 *   complete, state, error?, sources? }`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ERROR_RESPONSES, StudyParams } from '../../../protocol/api/common.ts'
import { Availability, ShareBody, Shared } from '../../../protocol/api/studies.ts'
import type { DeidentifyOptions } from '../../deid/deidentify.ts'
import { type DeidentifiedShareComponents, shareDeidentified } from '../../deid/share.ts'
import { BadRequestError, RadmeshError } from '../../errors.ts'
import type { Exchange } from '../../exchange/exchange.ts'

export interface StudyRoutesOptions {
  exchange: Pick<Exchange, 'share' | 'fetch' | 'availability'>
  /** where a de-identified copy is read from and stored */
  archive: DeidentifiedShareComponents['archive']
  /** where the way back from a de-identified copy is kept, at the site only */
  mappings: NonNullable<DeidentifiedShareComponents['mappings']>
}

/** What a fetch that has not found the study's manifest yet answers. */
const FINDING = {
  instancesTotal: 0,
  instancesLocal: 0,
  bytesTotal: 0,
  bytesLocal: 0,
  complete: false,
  state: 'finding'
} as const

/** The profile's options the body names; they mean nothing without `deidentify`, and are refused without it. */
function deidentifyOptions(body: ShareBody): DeidentifyOptions | undefined {
  const { retainDates, retainPatientCharacteristics, burnedInAnnotationClean } = body
  if (body.deidentify !== true) {
    if (
      retainDates !== undefined ||
      retainPatientCharacteristics !== undefined ||
      burnedInAnnotationClean !== undefined
    ) {
      throw new BadRequestError(
        'retainDates, retainPatientCharacteristics and burnedInAnnotationClean ' +
          'apply to a de-identified copy: add "deidentify": true'
      )
    }
    return undefined
  }
  return {
    ...(retainDates === undefined ? {} : { retainDates }),
    retainPatientCharacteristics: retainPatientCharacteristics === true,
    burnedInAnnotationClean: burnedInAnnotationClean === true
  }
}

export const studyRoutes: FastifyPluginAsyncTypebox<StudyRoutesOptions> = async (app, options) => {
  const { exchange, archive, mappings } = options
  const share = exchange.share.bind(exchange)

  app.post(
    '/api/studies/:studyUid/share',
    {
      schema: { params: StudyParams, body: ShareBody, response: { 200: Shared, ...ERROR_RESPONSES } }
    },
    async request => {
      const { studyUid } = request.params
      const peerIds = [...new Set(request.body.peerIds)]
      const deidentify = deidentifyOptions(request.body)
      if (deidentify === undefined) {
        const shared = await share(studyUid, peerIds, request.actor)
        return { ...shared, studyInstanceUid: shared.studyUid }
      }
      const copy = await shareDeidentified({ archive, share, mappings }, studyUid, peerIds, deidentify, request.actor)
      const { versionId, recipients, originalStudyUid } = copy
      return { studyUid: copy.studyUid, studyInstanceUid: copy.studyUid, originalStudyUid, versionId, recipients }
    }
  )

  app.post(
    '/api/studies/:studyUid/fetch',
    {
      schema: { params: StudyParams, response: { 202: Availability, ...ERROR_RESPONSES } }
    },
    async (request, reply) => {
      const { studyUid } = request.params
      exchange.fetch(studyUid, request.actor)
      return await reply.code(202).send((await exchange.availability(studyUid)) ?? FINDING)
    }
  )

  app.get(
    '/api/studies/:studyUid/availability',
    {
      schema: { params: StudyParams, response: { 200: Availability, ...ERROR_RESPONSES } }
    },
    async request => {
      const { studyUid } = request.params
      const availability = await exchange.availability(studyUid)
      if (availability === undefined) {
        throw new RadmeshError(
          'RADMESH_NOT_FOUND',
          `this node knows no study ${studyUid}: it is not in its archive and was not shared with it`
        )
      }
      return availability
    }
  )
}
