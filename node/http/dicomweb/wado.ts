/**
 * WADO-RS (PS3.18 10.4): studies, series and instances as `multipart/related; type="application/dicom"`
 * with the stored bytes (an executable preamble zeroed, CVE-2019-11687), DICOM JSON metadata with
 * BulkDataURIs, frames, and pixel data as bulk data. Responses stream: one instance in memory at a time.
 * Retrievals are audited as 110104 (transferred), metadata and frames as 110103 (accessed).
 */
import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { InstanceRecord } from '../../archive/archive.ts'
import { instanceToDicomJson } from '../../dicom/json.ts'
import { safeForDownload } from '../../dicom/part10.ts'
import { RadmeshError } from '../../errors.ts'
import type { NodeServices } from '../services.ts'
import { encodeMultipartParts, encodeMultipartPartsAsync, multipartRelatedHeader, newBoundary } from '../../../protocol/dicomweb/multipart.ts'
import { dicomwebBase } from './qido.ts'
import { extractFrames, parseFrameList } from './frames.ts'

interface Params { study: string, series?: string, instance?: string }

export async function wadoRoutes (app: FastifyInstance, { node }: { node: NodeServices }): Promise<void> {
  /** The instances a path names; 404 when it names none. */
  async function selected (params: Params): Promise<InstanceRecord[]> {
    let list: InstanceRecord[] = []
    if (params.instance !== undefined) {
      const instance = await node.archive.instance(params.instance)
      if (instance !== undefined && instance.studyUid === params.study && (params.series === undefined || instance.seriesUid === params.series)) list = [instance]
    } else {
      for await (const instance of node.archive.instancesOf(params.study, params.series)) list.push(instance)
    }
    if (list.length === 0) throw new RadmeshError('RADMESH_NOT_FOUND', `no ${params.instance !== undefined ? 'instance' : params.series !== undefined ? 'series' : 'study'} ${params.instance ?? params.series ?? params.study} here`)
    return list
  }

  const auditRetrieve = async (request: FastifyRequest, params: Params, list: InstanceRecord[], event: 'instancesTransferred' | 'instancesAccessed', detail: string): Promise<void> => {
    await node.audit.append({
      event, action: 'R', outcome: 0, actor: request.actor, study: params.study,
      ...(params.series === undefined ? {} : { series: params.series }),
      instances: list.map(i => i.sopUid), detail
    })
  }

  const retrieve = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply): Promise<FastifyReply> => {
    const list = await selected(request.params)
    await auditRetrieve(request, request.params, list, 'instancesTransferred', 'WADO-RS retrieve')
    const boundary = newBoundary()
    async function * parts (): AsyncGenerator<{ contentType: string, body: Uint8Array }> {
      for (const instance of list) yield { contentType: 'application/dicom', body: safeForDownload(await node.archive.read(instance)) }
    }
    return await reply
      .type(multipartRelatedHeader(boundary, 'application/dicom'))
      .send(Readable.from(encodeMultipartPartsAsync(parts(), boundary)))
  }

  const metadata = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply): Promise<FastifyReply> => {
    const list = await selected(request.params)
    await auditRetrieve(request, request.params, list, 'instancesAccessed', 'WADO-RS metadata')
    const base = dicomwebBase(request)
    const body = []
    for (const instance of list) {
      const file = await node.archive.read(instance)
      const prefix = `${base}/studies/${instance.studyUid}/series/${instance.seriesUid}/instances/${instance.sopUid}`
      body.push(instanceToDicomJson(file, tag => tag === '7FE00010' ? `${prefix}/frames/${frameList(instance)}` : `${prefix}/bulk/${tag}`))
    }
    return await reply.type('application/dicom+json').send(body)
  }

  const frameList = (instance: InstanceRecord): string => {
    const count = Number(instance.attributes['00280008'] ?? 1)
    return Array.from({ length: Number.isSafeInteger(count) && count > 0 ? count : 1 }, (_, i) => i + 1).join(',')
  }

  app.get<{ Params: Params }>('/dicom-web/studies/:study', retrieve)
  app.get<{ Params: Params }>('/dicom-web/studies/:study/series/:series', retrieve)
  app.get<{ Params: Params }>('/dicom-web/studies/:study/series/:series/instances/:instance', retrieve)
  app.get<{ Params: Params }>('/dicom-web/studies/:study/metadata', metadata)
  app.get<{ Params: Params }>('/dicom-web/studies/:study/series/:series/metadata', metadata)
  app.get<{ Params: Params }>('/dicom-web/studies/:study/series/:series/instances/:instance/metadata', metadata)

  // Bulk data by path (PS3.18 8.7.5): a tag, or sequence/item/tag for nested values.
  app.get<{ Params: Params & { '*': string } }>('/dicom-web/studies/:study/series/:series/instances/:instance/bulk/*', async (request, reply) => {
    const [instance] = await selected(request.params) as [InstanceRecord]
    const path = request.params['*'].toUpperCase()
    let value: Uint8Array | undefined
    instanceToDicomJson(await node.archive.read(instance), (at, bytes) => {
      if (at === path) value = bytes
      return ''
    })
    if (value === undefined) throw new RadmeshError('RADMESH_NOT_FOUND', `instance ${instance.sopUid} has no bulk data at ${path}${path === '7FE00010' ? ' (encapsulated pixel data: use …/frames/N)' : ''}`)
    await auditRetrieve(request, request.params, [instance], 'instancesAccessed', `WADO-RS bulk data ${path}`)
    const boundary = newBoundary()
    return await reply
      .type(multipartRelatedHeader(boundary, 'application/octet-stream'))
      .send(Readable.from(encodeMultipartParts([{ contentType: 'application/octet-stream', body: value }], boundary)))
  })

  app.get<{ Params: Params & { frames: string } }>('/dicom-web/studies/:study/series/:series/instances/:instance/frames/:frames', async (request, reply) => {
    const frameNumbers = parseFrameList(request.params.frames)
    const [instance] = await selected(request.params) as [InstanceRecord]
    const frames = extractFrames(await node.archive.read(instance), instance, frameNumbers)
    await auditRetrieve(request, request.params, [instance], 'instancesAccessed', `WADO-RS frames ${request.params.frames}`)
    const boundary = newBoundary()
    const first = frames[0]
    const type = first?.contentType ?? 'application/octet-stream'
    const syntax = first?.transferSyntaxUid ?? ''
    const parts = frames.map(frame => ({ contentType: `${frame.contentType}; transfer-syntax=${frame.transferSyntaxUid}`, body: frame.body }))
    return await reply
      .type(`${multipartRelatedHeader(boundary, type)}; transfer-syntax=${syntax}`)
      .send(Readable.from(encodeMultipartParts(parts, boundary)))
  })
}
