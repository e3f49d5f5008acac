/**
 * QIDO-RS (PS3.18 10.6): `GET /dicom-web/studies`, `/studies/:study/series`,
 * `/studies/:study/series/:series/instances`. The index is sealed, so matching decrypts each candidate;
 * a node holds thousands of studies, not millions, and this stays fast at that size.
 * Searches are audited (110112) by the archive's access (archive/access.ts), with the keys used, never the
 * values (they may be patient names). The study and series in a path are matched and audited, so they must be
 * UIDs (PS3.5 9.1), not whatever text a client put there.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import {
  type DicomJsonDataset,
  DicomJsonDatasets,
  QidoQuery as QidoQueryParameters,
  QidoSeriesParams,
  QidoStudyParams
} from '../../../protocol/api/dicomweb.ts'
import type { StudyAccess } from '../../archive/access.ts'
import type { Archive, InstanceRecord, SeriesRecord, StudyRecord } from '../../archive/archive.ts'
import { type Level, parseQidoQuery, toQidoJson } from '../../archive/qido.ts'
import { frameCount } from './frames.ts'

type Record_ = Record<string, string | string[] | number | undefined>

export const dicomwebBase = (request: FastifyRequest): string =>
  `${request.protocol}://${request.headers.host ?? 'localhost'}/dicom-web`

export const studyRecord = (study: StudyRecord, base: string): Record_ => ({
  ...study.attributes,
  '00080061': study.modalities,
  '00201206': study.seriesCount,
  '00201208': study.instanceCount,
  '00080056': 'ONLINE',
  '00081190': `${base}/studies/${study.studyUid}`
})

export const seriesRecord = (series: SeriesRecord, base: string): Record_ => ({
  ...series.attributes,
  '0020000D': series.studyUid,
  '00201209': series.instanceCount,
  '00080056': 'ONLINE',
  '00081190': `${base}/studies/${series.studyUid}/series/${series.seriesUid}`
})

export const instanceRecord = (instance: InstanceRecord, base: string): Record_ => ({
  ...instance.attributes,
  // The frames its pixel data holds, not what it declares (an instance stored before ingest checked that).
  ...(instance.attributes['00280008'] === undefined ? {} : { '00280008': String(frameCount(instance)) }),
  '0020000D': instance.studyUid,
  '0020000E': instance.seriesUid,
  '00083002': instance.transferSyntaxUid,
  '00080056': 'ONLINE',
  '00081190': `${base}/studies/${instance.studyUid}/series/${instance.seriesUid}/instances/${instance.sopUid}`
})

/** QIDO-RS answers: DICOM JSON, a data set per match. */
const ANSWERS = { response: { 200: DicomJsonDatasets, ...ERROR_RESPONSES } } as const

export interface QidoRoutesOptions {
  archive: Pick<Archive, 'studies' | 'seriesOf' | 'instancesOf'>
  access: Pick<StudyAccess, 'search'>
}

export const qidoRoutes: FastifyPluginAsyncTypebox<QidoRoutesOptions> = async (app, { archive, access }) => {
  /** The page of `records` that match the request's query, as DICOM JSON; the search is audited. */
  const respond = async (
    request: FastifyRequest,
    level: Level,
    records: AsyncIterable<Record_>,
    study?: string
  ): Promise<DicomJsonDataset[]> => {
    const query = parseQidoQuery(request.query as QidoQueryParameters, level)
    const by = { actor: request.actor, via: 'QIDO', ...(study === undefined ? {} : { study }) }
    const page = await access.search(level, query, records, by)
    return page.map(record => toQidoJson(record, level, query))
  }

  app.get(
    '/dicom-web/studies',
    {
      schema: { querystring: QidoQueryParameters, ...ANSWERS }
    },
    async (request, reply) => {
      const base = dicomwebBase(request)
      const studies = async function* () {
        for await (const study of archive.studies()) yield studyRecord(study, base)
      }
      return await reply.type('application/dicom+json').send(await respond(request, 'study', studies()))
    }
  )

  app.get(
    '/dicom-web/studies/:study/series',
    {
      schema: { params: QidoStudyParams, querystring: QidoQueryParameters, ...ANSWERS }
    },
    async (request, reply) => {
      const { study } = request.params
      const base = dicomwebBase(request)
      const series = async function* () {
        for await (const s of archive.seriesOf(study)) yield seriesRecord(s, base)
      }
      return await reply.type('application/dicom+json').send(await respond(request, 'series', series(), study))
    }
  )

  app.get(
    '/dicom-web/studies/:study/series/:series/instances',
    {
      schema: { params: QidoSeriesParams, querystring: QidoQueryParameters, ...ANSWERS }
    },
    async (request, reply) => {
      const { study, series } = request.params
      const base = dicomwebBase(request)
      const instances = async function* () {
        for await (const i of archive.instancesOf(study, series)) yield instanceRecord(i, base)
      }
      return await reply.type('application/dicom+json').send(await respond(request, 'instance', instances(), study))
    }
  )
}
