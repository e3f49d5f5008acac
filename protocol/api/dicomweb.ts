/**
 * The path and query parameters of the DICOMweb routes (PS3.18) under /dicom-web, and the DICOM JSON they
 * answer with (PS3.18 F.2). Request and response bodies of WADO-RS and STOW-RS are multipart/related and
 * streamed: they have no JSON schema.
 */
import { type Static, Type } from 'typebox'
import { Uid } from './common.ts'

/** QIDO-RS: the study and series in the path are matched and audited, so they must be UIDs. */
export const QidoStudyParams = Type.Object({ study: Uid })
export type QidoStudyParams = Static<typeof QidoStudyParams>
export const QidoSeriesParams = Type.Object({ study: Uid, series: Uid })
export type QidoSeriesParams = Static<typeof QidoSeriesParams>

/**
 * QIDO-RS query parameters: attribute keywords or tags (PS3.18 8.3.4), `includefield`, `limit`, `offset`,
 * `fuzzymatching`, each once or more. Keys are case-insensitive and many, so the node's QIDO reader checks
 * them (it names the parameter at fault); this says only their form.
 */
export const QidoQuery = Type.Record(Type.String(), Type.Union([Type.String(), Type.Array(Type.String())]))
export type QidoQuery = Static<typeof QidoQuery>

/**
 * WADO-RS: a study, series or instance by UID. Anything else names nothing stored here and is answered 404,
 * as an unknown UID is.
 */
export const WadoParams = Type.Object({
  study: Type.String(),
  series: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String())
})
export type WadoParams = Static<typeof WadoParams>

/** WADO-RS frames: a comma-separated list of frame numbers, from 1 (the node checks the list). */
const InstancePath = { study: Type.String(), series: Type.String(), instance: Type.String() }
export const FramesParams = Type.Object({ ...InstancePath, frames: Type.String() })
export type FramesParams = Static<typeof FramesParams>

/** WADO-RS bulk data: a tag, or sequence/item/tag for a value inside a sequence. */
export const BulkParams = Type.Object({ ...InstancePath, '*': Type.String() })
export type BulkParams = Static<typeof BulkParams>

/**
 * Rendered resources (PS3.18 8.3.5, 10.4.1.1.3): a study, series, instance or frame, rendered as an image. The
 * study and series levels answer only `…/thumbnail`; `frame` is one frame number.
 */
export const RenderedParams = Type.Object({
  study: Type.String(),
  series: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String()),
  frame: Type.Optional(Type.String())
})
export type RenderedParams = Static<typeof RenderedParams>

/**
 * Rendered resources' query (PS3.18 8.3.5.1): `viewport` vw,vh[,sx,sy,sw,sh] (the size to fit, and the region
 * of the image to show), `window` center,width[,linear], `quality` 1 to 100 (JPEG only; PNG is lossless). Other
 * parameters (`accept` is the content negotiation's, `annotation`, …) are taken and not acted on.
 */
export const RenderedQuery = Type.Object({
  viewport: Type.Optional(Type.String({ maxLength: 100 })),
  window: Type.Optional(Type.String({ maxLength: 100 })),
  quality: Type.Optional(Type.String({ maxLength: 10 }))
})
export type RenderedQuery = Static<typeof RenderedQuery>

/** STOW-RS to a study: the instances sent must be of that study. */
export const StowParams = Type.Object({ study: Type.Optional(Type.String()) })
export type StowParams = Static<typeof StowParams>

/** One attribute of a DICOM JSON data set (PS3.18 F.2.2): its VR, and its values, a bulk data URI or inline bytes. */
export const DicomJsonAttribute = Type.Object({
  vr: Type.String(),
  Value: Type.Optional(Type.Array(Type.Unknown())),
  BulkDataURI: Type.Optional(Type.String()),
  InlineBinary: Type.Optional(Type.String())
})
/** A DICOM JSON data set: attributes by tag (8 hex digits). */
export const DicomJsonDataset = Type.Record(Type.String(), DicomJsonAttribute)
export type DicomJsonDataset = Static<typeof DicomJsonDataset>
export const DicomJsonDatasets = Type.Array(DicomJsonDataset)
