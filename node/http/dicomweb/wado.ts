/**
 * WADO-RS (PS3.18 10.4): studies, series and instances as `multipart/related; type="application/dicom"`
 * with the stored bytes (an executable preamble zeroed, CVE-2019-11687), DICOM JSON metadata with
 * BulkDataURIs, frames, and bulk data. Responses stream, one stored chunk (1 MiB) at a time: an instance of
 * any size costs the node that much memory, metadata included (the pixel data is passed over unread), and a
 * frame only the chunks that hold it. The archive's access (archive/access.ts) finds what a path names and
 * audits the read: retrievals as 110104 (transferred), metadata, frames and bulk data as 110103 (accessed).
 */
import { Readable } from 'node:stream'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { ERROR_RESPONSES } from '../../../protocol/api/common.ts'
import { BulkParams, DicomJsonDatasets, FramesParams, WadoParams } from '../../../protocol/api/dicomweb.ts'
import type { Retrieval, StudyAccess } from '../../archive/access.ts'
import type { Archive, InstanceRecord } from '../../archive/archive.ts'
import { bulkDataOf, dicomJsonOf } from '../../dicom/json.ts'
import { isNativeYbr422 } from '../../dicom/geometry.ts'
import { safeForDownload } from '../../dicom/part10.ts'
import { RadmeshError } from '../../errors.ts'
import {
  encodeMultipartParts,
  encodeMultipartPartsAsync,
  multipartRelatedHeader,
  newBoundary,
  type StreamedPart
} from '../../../protocol/dicomweb/multipart.ts'
import { dicomwebBase } from './qido.ts'
import { frameCount, parseFrameList, piecesOf, planFrames } from './frames.ts'
import { renderedRoutes } from './rendered.ts'

/** A stored file, chunk by chunk, its preamble made safe to hand out (CVE-2019-11687). */
async function* safeChunksOf(archive: Pick<Archive, 'chunksOf'>, instance: InstanceRecord): AsyncGenerator<Uint8Array> {
  let start = true
  for await (const chunk of archive.chunksOf(instance)) {
    yield start ? safeForDownload(chunk) : chunk
    start = false
  }
}

/** A stored file's chunks, read one at a time. */
async function* chunksOf(archive: Pick<Archive, 'chunksOf'>, instance: InstanceRecord): AsyncGenerator<Uint8Array> {
  yield* archive.chunksOf(instance)
}

export interface WadoRoutesOptions {
  archive: Pick<Archive, 'chunksOf' | 'readRange'>
  access: Pick<StudyAccess, 'retrieve' | 'instances'>
}

const RETRIEVE: Retrieval = { event: 'instancesTransferred', detail: 'WADO-RS retrieve' }
const METADATA: Retrieval = { event: 'instancesAccessed', detail: 'WADO-RS metadata' }
/**
 * The answers are multipart and streamed, so this plugin keeps fastify's default type provider (TypeBox's types
 * a reply from its JSON schema, and a stream has none): the same schemas check the path, and their static
 * types are the routes' generics.
 */
type Route<P> = { Params: P }

export const wadoRoutes: FastifyPluginAsync<WadoRoutesOptions> = async (app, { archive, access }) => {
  await app.register(renderedRoutes, { archive, access })
  type Request = FastifyRequest<Route<WadoParams>>
  const retrieve = async (request: Request, reply: FastifyReply): Promise<FastifyReply> => {
    const list = await access.retrieve(request.params, request.actor, RETRIEVE, instances => instances)
    const boundary = newBoundary()
    async function* files(): AsyncGenerator<StreamedPart> {
      for (const instance of list) yield { contentType: 'application/dicom', body: safeChunksOf(archive, instance) }
    }
    return await reply
      .type(multipartRelatedHeader(boundary, 'application/dicom'))
      .send(Readable.from(encodeMultipartPartsAsync(files(), boundary)))
  }

  const metadata = async (request: Request, reply: FastifyReply): Promise<FastifyReply> => {
    const list = await access.retrieve(request.params, request.actor, METADATA, instances => instances)
    const base = dicomwebBase(request)
    const body = []
    for (const instance of list) {
      const prefix = `${base}/studies/${instance.studyUid}/series/${instance.seriesUid}/instances/${instance.sopUid}`
      // The frames the pixel data holds, never the count the object declares (dicom/geometry.ts).
      const frames = frameCount(instance)
      const all = Array.from({ length: frames }, (_, i) => i + 1).join(',')
      const pixelUri = frames === 0 ? `${prefix}/bulk/7FE00010` : `${prefix}/frames/${all}`
      const uriOf = (path: string): string => (path === '7FE00010' ? pixelUri : `${prefix}/bulk/${path}`)
      const dataset = await dicomJsonOf(piecesOf(archive, instance), uriOf)
      // Native YBR_FULL_422 frames are served as YBR_FULL (dicom/geometry.ts): the metadata says what they hold.
      if (isNativeYbr422(instance.attributes, instance.pixelData)) {
        dataset['00280004'] = { vr: 'CS', Value: ['YBR_FULL'] }
      }
      body.push(dataset)
    }
    return await reply.type('application/dicom+json').send(body)
  }

  const study = { schema: { params: WadoParams } }
  const metadataSchema = { schema: { params: WadoParams, response: { 200: DicomJsonDatasets, ...ERROR_RESPONSES } } }
  for (const path of [':study', ':study/series/:series', ':study/series/:series/instances/:instance']) {
    app.get<Route<WadoParams>>(`/dicom-web/studies/${path}`, study, retrieve)
    app.get<Route<WadoParams>>(`/dicom-web/studies/${path}/metadata`, metadataSchema, metadata)
  }

  // Bulk data by path (PS3.18 8.7.5): a tag, or sequence/item/tag for nested values.
  app.get<Route<BulkParams>>(
    '/dicom-web/studies/:study/series/:series/instances/:instance/bulk/*',
    {
      schema: { params: BulkParams }
    },
    async (request, reply) => {
      const path = request.params['*'].toUpperCase()
      const retrieval: Retrieval = { event: 'instancesAccessed', detail: `WADO-RS bulk data ${path}` }
      const value = await access.retrieve(request.params, request.actor, retrieval, async ([instance]) => {
        const { sopUid } = instance as InstanceRecord
        let found: Uint8Array | undefined
        try {
          found = await bulkDataOf(chunksOf(archive, instance as InstanceRecord), path)
        } catch (error) {
          if (error instanceof RangeError) throw new RadmeshError('RADMESH_TOO_LARGE', error.message)
          throw error
        }
        const hint = path === '7FE00010' ? ' (encapsulated pixel data: use …/frames/N)' : ''
        if (found === undefined) {
          throw new RadmeshError('RADMESH_NOT_FOUND', `instance ${sopUid} has no bulk data at ${path}${hint}`)
        }
        return found
      })
      const boundary = newBoundary()
      return await reply
        .type(multipartRelatedHeader(boundary, 'application/octet-stream'))
        .send(Readable.from(encodeMultipartParts([{ contentType: 'application/octet-stream', body: value }], boundary)))
    }
  )

  app.get<Route<FramesParams>>(
    '/dicom-web/studies/:study/series/:series/instances/:instance/frames/:frames',
    {
      schema: { params: FramesParams }
    },
    async (request, reply) => {
      const frameNumbers = parseFrameList(request.params.frames)
      const detail = `WADO-RS frames ${request.params.frames.slice(0, 200)}`
      const retrieval: Retrieval = { event: 'instancesAccessed', detail }
      const plan = await access.retrieve(request.params, request.actor, retrieval, ([instance]) =>
        planFrames(instance as InstanceRecord, frameNumbers)
      )
      const boundary = newBoundary()
      const contentType = `${plan.contentType}; transfer-syntax=${plan.transferSyntaxUid}`
      async function* parts(): AsyncGenerator<StreamedPart> {
        for await (const frame of plan.frames(archive)) yield { contentType, body: frame.body }
      }
      return await reply
        .type(`${multipartRelatedHeader(boundary, plan.contentType)}; transfer-syntax=${plan.transferSyntaxUid}`)
        .send(Readable.from(encodeMultipartPartsAsync(parts(), boundary)))
    }
  )
}
