/**
 * Rendered resources (PS3.18 8.3.5, 10.4.1.1.3): an instance or frame drawn as JPEG or PNG with its default
 * presentation (dicom/render.ts), and thumbnails of a study, series, instance or frame. A study or series is
 * represented by the middle instance (by Instance Number) of its first series with pixel data; a multi-frame
 * instance by its middle frame for a thumbnail and its first frame for `…/rendered`. Thumbnails fit 128 x 128
 * unless `viewport` says otherwise. Only the instance drawn is read and audited (110103, instances accessed).
 * JPEG (`quality` 1 to 100, DEFAULT_JPEG_QUALITY otherwise) unless the Accept weighs PNG more (accept.ts);
 * an Accept that takes neither is answered 406.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { RenderedParams, RenderedQuery } from '../../../protocol/api/dicomweb.ts'
import type { Retrieval, StudyAccess } from '../../archive/access.ts'
import type { Archive, InstanceRecord } from '../../archive/archive.ts'
import { dicomJsonOf } from '../../dicom/json.ts'
import { DEFAULT_JPEG_QUALITY, encodeJpeg } from '../../dicom/render-jpeg.ts'
import { encodePng } from '../../dicom/render-png.ts'
import { decodeForRendering } from '../../dicom/render-codecs.ts'
import { fitTo, type Rendered, renderFrame, renderInfoOf, type Window } from '../../dicom/render.ts'
import { BadRequestError, RadmeshError } from '../../errors.ts'
import { renderedMediaType } from './accept.ts'
import { frameCount, piecesOf, planFrames } from './frames.ts'

/** A thumbnail's default size (PS3.18 leaves it to the server): what OHIF's study browser draws. */
export const THUMBNAIL_SIZE = 128
/** The largest viewport drawn: a rendered image is held in memory whole. */
export const MAX_VIEWPORT = 4096

export interface RenderedRoutesOptions {
  archive: Pick<Archive, 'chunksOf' | 'readRange'>
  access: Pick<StudyAccess, 'retrieve' | 'instances'>
}

interface Viewport {
  width: number
  height: number
  region?: { x: number; y: number; width: number; height: number }
}

function integers(text: string, name: string, counts: number[]): number[] {
  const values = text.split(',').map(v => Number(v.trim()))
  if (!counts.includes(values.length) || values.some(v => !Number.isSafeInteger(v))) {
    const what = `${name} "${text.slice(0, 40)}"`
    throw new BadRequestError(`${what}: give ${counts.join(' or ')} integers, separated by commas`)
  }
  return values
}

export function parseViewport(text: string): Viewport {
  const [width = 0, height = 0, x = 0, y = 0, w = 0, h = 0] = integers(text, 'viewport', [2, 6])
  if (width < 1 || height < 1 || width > MAX_VIEWPORT || height > MAX_VIEWPORT) {
    throw new BadRequestError(`viewport ${width} x ${height}: each side from 1 to ${MAX_VIEWPORT}`)
  }
  if (text.split(',').length === 2) return { width, height }
  if (x < 0 || y < 0 || w < 1 || h < 1) throw new BadRequestError('viewport region: sx, sy from 0, sw and sh from 1')
  return { width, height, region: { x, y, width: w, height: h } }
}

export function parseWindow(text: string): Window {
  const [center = '', width = '', fn = 'linear'] = text.split(',').map(v => v.trim())
  const c = Number(center)
  const w = Number(width)
  const numbers = center !== '' && width !== '' && Number.isFinite(c) && Number.isFinite(w)
  if (!numbers || w < 1 || fn.toLowerCase() !== 'linear') {
    throw new BadRequestError(`window "${text.slice(0, 40)}": give center,width (width from 1), function linear`)
  }
  return { center: c, width: w }
}

export function parseQuality(text: string): number {
  const quality = Number(text.trim())
  if (text.trim() === '' || !Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new BadRequestError(`quality "${text.slice(0, 20)}": give an integer from 1 to 100`)
  }
  return quality
}

function crop(image: Rendered, region: NonNullable<Viewport['region']>): Rendered {
  const x0 = Math.min(region.x, image.width - 1)
  const y0 = Math.min(region.y, image.height - 1)
  const width = Math.min(region.width, image.width - x0)
  const height = Math.min(region.height, image.height - y0)
  const { channels } = image
  const data = new Uint8Array(width * height * channels)
  for (let y = 0; y < height; y++) {
    const from = ((y0 + y) * image.width + x0) * channels
    data.set(image.data.subarray(from, from + width * channels), y * width * channels)
  }
  return { data, width, height, channels }
}

const instanceNumber = (i: InstanceRecord): number => {
  const value = i.attributes['00200013']
  const n = Number(Array.isArray(value) ? value[0] : value)
  return Number.isFinite(n) ? n : 0
}

/** The instance that stands for a study or series: the middle one of the first series with pixel data. */
export function representative(instances: InstanceRecord[]): InstanceRecord | undefined {
  const drawable = instances.filter(i => i.pixelData !== undefined)
  const series = drawable[0]?.seriesUid
  const inSeries = drawable.filter(i => i.seriesUid === series).sort((a, b) => instanceNumber(a) - instanceNumber(b))
  return inSeries[Math.floor((inSeries.length - 1) / 2)]
}

export const renderedRoutes: FastifyPluginAsync<RenderedRoutesOptions> = async (app, { archive, access }) => {
  type Request = FastifyRequest<{ Params: RenderedParams; Querystring: RenderedQuery }>
  const render =
    (thumbnail: boolean) =>
    async (request: Request, reply: FastifyReply): Promise<FastifyReply> => {
      const { params, query } = request
      const viewport =
        query.viewport === undefined
          ? thumbnail
            ? { width: THUMBNAIL_SIZE, height: THUMBNAIL_SIZE }
            : undefined
          : parseViewport(query.viewport)
      const window = query.window === undefined ? undefined : parseWindow(query.window)
      const quality = query.quality === undefined ? DEFAULT_JPEG_QUALITY : parseQuality(query.quality)
      const mediaType = renderedMediaType(request)
      const frameAsked = params.frame === undefined ? undefined : (integers(params.frame, 'frame', [1])[0] as number)

      // The instance drawn, found first: only it is read and audited.
      const chosen = params.instance === undefined ? representative(await access.instances(params)) : undefined
      if (params.instance === undefined && chosen === undefined) {
        const level = params.series === undefined ? 'study' : 'series'
        throw new RadmeshError('RADMESH_NOT_FOUND', `${level} has no image to draw`)
      }
      const path =
        chosen === undefined ? params : { study: chosen.studyUid, series: chosen.seriesUid, instance: chosen.sopUid }
      const what = thumbnail ? 'thumbnail' : 'rendered'
      const ofFrame = frameAsked === undefined ? '' : ` frame ${frameAsked}`
      const retrieval: Retrieval = { event: 'instancesAccessed', detail: `WADO-RS ${what}${ofFrame}` }
      const image = await access.retrieve(path, request.actor, retrieval, async ([found]) => {
        const instance = found as InstanceRecord
        const frames = frameCount(instance)
        const frame = frameAsked ?? (thumbnail ? Math.max(1, Math.ceil(frames / 2)) : 1)
        const plan = planFrames(instance, [frame])
        const info = renderInfoOf(await dicomJsonOf(piecesOf(archive, instance), () => ''))
        let bytes: Uint8Array | undefined
        for await (const f of plan.frames(archive)) bytes = f.body
        const decoded = await decodeForRendering(bytes ?? new Uint8Array(0), plan.transferSyntaxUid, info)
        return renderFrame(decoded, info, window)
      })
      const shown = viewport?.region === undefined ? image : crop(image, viewport.region)
      const fitted = viewport === undefined ? shown : fitTo(shown, viewport.width, viewport.height)
      const { data, width, height, channels } = fitted
      const body =
        mediaType === 'image/jpeg'
          ? encodeJpeg(data, width, height, channels, quality)
          : encodePng(data, width, height, channels)
      return await reply.type(mediaType).header('vary', 'accept').send(body)
    }

  const schema = { schema: { params: RenderedParams, querystring: RenderedQuery } }
  const instance = '/dicom-web/studies/:study/series/:series/instances/:instance'
  const study = '/dicom-web/studies/:study'
  for (const path of [study, `${study}/series/:series`, instance, `${instance}/frames/:frame`]) {
    app.get(`${path}/thumbnail`, schema, render(true))
  }
  app.get(`${instance}/rendered`, schema, render(false))
  app.get(`${instance}/frames/:frame/rendered`, schema, render(false))
}
