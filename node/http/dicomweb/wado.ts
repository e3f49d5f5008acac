/**
 * WADO-RS (PS3.18 10.4): studies, series and instances as `multipart/related; type="application/dicom"`
 * with the stored bytes (an executable preamble zeroed, CVE-2019-11687), DICOM JSON metadata with
 * BulkDataURIs, frames, and bulk data. Responses stream, one stored chunk (1 MiB) at a time: an instance of
 * any size costs the node that much memory, metadata included (the pixel data is passed over unread), and a
 * frame only the chunks that hold it. Retrievals are audited as 110104 (transferred), metadata and frames as
 * 110103 (accessed).
 */
import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Archive, InstanceRecord } from '../../archive/archive.ts'
import { CHUNK_SIZE } from '../../archive/chunks.ts'
import { DEFLATED_SYNTAXES } from '../../dicom/file.ts'
import { bulkDataOf, dicomJsonOf, type FilePiece } from '../../dicom/json.ts'
import { safeForDownload } from '../../dicom/part10.ts'
import { RadmeshError } from '../../errors.ts'
import type { NodeServices } from '../services.ts'
import { encodeMultipartParts, encodeMultipartPartsAsync, multipartRelatedHeader, newBoundary, type StreamedPart } from '../../../protocol/dicomweb/multipart.ts'
import { dicomwebBase } from './qido.ts'
import { frameCount, parseFrameList, planFrames } from './frames.ts'

/** A stored file, chunk by chunk, its preamble made safe to hand out (CVE-2019-11687). */
async function * safeChunksOf (archive: Archive, instance: InstanceRecord): AsyncGenerator<Uint8Array> {
  let start = true
  for await (const chunk of archive.chunksOf(instance)) {
    yield start ? safeForDownload(chunk) : chunk
    start = false
  }
}

/**
 * A stored file's chunks for a reader that passes over the pixel data: a chunk wholly inside native pixel data
 * (of a data set not deflated) is offered as a count of bytes to skip, and read only if the reader needs it.
 */
async function * piecesOf (archive: Archive, instance: InstanceRecord): AsyncGenerator<FilePiece> {
  const pixels = instance.pixelData
  const skippable = pixels !== undefined && !pixels.encapsulated && !DEFLATED_SYNTAXES.has(instance.transferSyntaxUid)
  const from = skippable ? instance.datasetOffset + pixels.offset : 0
  const to = skippable ? from + pixels.length : 0
  for (let i = 0; i < instance.chunks.length; i++) {
    const start = i * CHUNK_SIZE
    const end = Math.min(instance.size, start + CHUNK_SIZE)
    if (start >= from && end <= to) {
      yield { skip: end - start, read: async () => await archive.readRange(instance, start, end) }
    } else {
      yield await archive.readRange(instance, start, end)
    }
  }
}

/** A stored file's chunks, read one at a time. */
async function * chunksOf (archive: Archive, instance: InstanceRecord): AsyncGenerator<Uint8Array> {
  yield * archive.chunksOf(instance)
}

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
    async function * files (): AsyncGenerator<StreamedPart> {
      for (const instance of list) yield { contentType: 'application/dicom', body: safeChunksOf(node.archive, instance) }
    }
    return await reply
      .type(multipartRelatedHeader(boundary, 'application/dicom'))
      .send(Readable.from(encodeMultipartPartsAsync(files(), boundary)))
  }

  const metadata = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply): Promise<FastifyReply> => {
    const list = await selected(request.params)
    await auditRetrieve(request, request.params, list, 'instancesAccessed', 'WADO-RS metadata')
    const base = dicomwebBase(request)
    const body = []
    for (const instance of list) {
      const prefix = `${base}/studies/${instance.studyUid}/series/${instance.seriesUid}/instances/${instance.sopUid}`
      // The frames the pixel data holds, never the count the object declares (dicom/geometry.ts).
      const frames = frameCount(instance)
      const pixelUri = frames === 0 ? `${prefix}/bulk/7FE00010` : `${prefix}/frames/${Array.from({ length: frames }, (_, i) => i + 1).join(',')}`
      body.push(await dicomJsonOf(piecesOf(node.archive, instance), path => path === '7FE00010' ? pixelUri : `${prefix}/bulk/${path}`))
    }
    return await reply.type('application/dicom+json').send(body)
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
    try {
      value = await bulkDataOf(chunksOf(node.archive, instance), path)
    } catch (error) {
      if (error instanceof RangeError) throw new RadmeshError('RADMESH_TOO_LARGE', error.message)
      throw error
    }
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
    const plan = planFrames(instance, frameNumbers)
    await auditRetrieve(request, request.params, [instance], 'instancesAccessed', `WADO-RS frames ${request.params.frames.slice(0, 200)}`)
    const boundary = newBoundary()
    const contentType = `${plan.contentType}; transfer-syntax=${plan.transferSyntaxUid}`
    async function * parts (): AsyncGenerator<StreamedPart> {
      for await (const frame of plan.frames(node.archive)) yield { contentType, body: frame.body }
    }
    return await reply
      .type(`${multipartRelatedHeader(boundary, plan.contentType)}; transfer-syntax=${plan.transferSyntaxUid}`)
      .send(Readable.from(encodeMultipartPartsAsync(parts(), boundary)))
  })
}
