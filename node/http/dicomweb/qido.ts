/**
 * QIDO-RS (PS3.18 10.6): `GET /dicom-web/studies`, `/studies/:study/series`,
 * `/studies/:study/series/:series/instances`. The index is sealed, so matching decrypts each candidate;
 * a node holds thousands of studies, not millions, and this stays fast at that size.
 * Queries are audited (110112) with the keys used, never the values (they may be patient names).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { InstanceRecord, SeriesRecord, StudyRecord } from '../../archive/archive.ts'
import { type Level, matches, parseQidoQuery, type QidoQuery, toQidoJson } from '../../archive/qido.ts'
import type { NodeServices } from '../services.ts'
import { frameCount } from './frames.ts'

type Record_ = Record<string, string | string[] | number | undefined>

export const dicomwebBase = (request: FastifyRequest): string => `${request.protocol}://${request.headers.host ?? 'localhost'}/dicom-web`

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

/**
 * A UID in the path: it is matched, and audited as the study queried, so it must be a UID (PS3.5 9.1) and not
 * whatever text a client put there.
 */
const UID = { type: 'string', maxLength: 64, pattern: '^[0-9]+(\\.[0-9]+)*$' } as const
const STUDY_PARAMS = { type: 'object', properties: { study: UID } } as const
const SERIES_PARAMS = { type: 'object', properties: { study: UID, series: UID } } as const

async function respond (level: Level, query: QidoQuery, records: AsyncIterable<Record_>): Promise<unknown[]> {
  const matched: Record_[] = []
  for await (const record of records) {
    if (matches(query, record as Record<string, string | string[] | undefined>)) matched.push(record)
  }
  const end = query.limit === undefined ? undefined : query.offset + query.limit
  return matched.slice(query.offset, end).map(record => toQidoJson(record, level, query))
}

export async function qidoRoutes (app: FastifyInstance, { node }: { node: NodeServices }): Promise<void> {
  const audit = async (request: FastifyRequest, level: Level, query: QidoQuery, count: number, study?: string): Promise<void> => {
    await node.audit.append({
      event: 'query', action: 'E', outcome: 0, actor: request.actor, ...(study === undefined ? {} : { study }),
      detail: `QIDO ${level} by ${query.filters.map(f => f.tag).join(',') || 'no filter'}: ${count} result(s)`
    })
  }

  app.get('/dicom-web/studies', async (request, reply) => {
    const query = parseQidoQuery(request.query as Record<string, string>, 'study')
    const base = dicomwebBase(request)
    const studies = async function * () { for await (const study of node.archive.studies()) yield studyRecord(study, base) }
    const body = await respond('study', query, studies())
    await audit(request, 'study', query, body.length)
    return await reply.type('application/dicom+json').send(body)
  })

  const seriesPath = '/dicom-web/studies/:study/series'
  app.get<{ Params: { study: string } }>(seriesPath, { schema: { params: STUDY_PARAMS } }, async (request, reply) => {
    const query = parseQidoQuery(request.query as Record<string, string>, 'series')
    const base = dicomwebBase(request)
    const series = async function * () { for await (const s of node.archive.seriesOf(request.params.study)) yield seriesRecord(s, base) }
    const body = await respond('series', query, series())
    await audit(request, 'series', query, body.length, request.params.study)
    return await reply.type('application/dicom+json').send(body)
  })

  const instancesPath = '/dicom-web/studies/:study/series/:series/instances'
  type SeriesParams = { study: string, series: string }
  app.get<{ Params: SeriesParams }>(instancesPath, { schema: { params: SERIES_PARAMS } }, async (request, reply) => {
    const query = parseQidoQuery(request.query as Record<string, string>, 'instance')
    const base = dicomwebBase(request)
    const instances = async function * () { for await (const i of node.archive.instancesOf(request.params.study, request.params.series)) yield instanceRecord(i, base) }
    const body = await respond('instance', query, instances())
    await audit(request, 'instance', query, body.length, request.params.study)
    return await reply.type('application/dicom+json').send(body)
  })
}
