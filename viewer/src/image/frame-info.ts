/**
 * What a frame's pixels mean, read from an instance's DICOM JSON (WADO-RS metadata): size, sample layout,
 * photometric interpretation, the Modality LUT (rescale) and the VOI windows the file suggests.
 */

export type DicomJson = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string }>

export interface FrameInfo {
  rows: number
  columns: number
  samplesPerPixel: number
  bitsAllocated: number
  bitsStored: number
  pixelRepresentation: 0 | 1
  /** 0: R1 G1 B1 R2 …; 1: all R, then all G, then all B */
  planarConfiguration: 0 | 1
  photometric: string
  rescaleSlope: number
  rescaleIntercept: number
  /** windows from the file, first is the default */
  windows: Array<{ center: number; width: number; explanation: string }>
  frames: number
  /** mm per pixel, [row spacing, column spacing], when the file says */
  pixelSpacing: [number, number] | undefined
  transferSyntaxUid: string
}

/**
 * The most frames the viewer lists for one instance (a cine loop has thousands at most): a larger count is not
 * believed.
 */
export const MAX_FRAMES = 100_000
/** The largest decoded frame the viewer makes room for (a mammogram is 50 MB). */
export const MAX_FRAME_BYTES = 512 * 1024 * 1024

/** Frames an instance declares, as a number the viewer can loop to: at least 1, at most MAX_FRAMES. */
export function frameCount(json: DicomJson): number {
  const declared = number(json, '00280008', 1)
  return Number.isSafeInteger(declared) && declared >= 1 ? Math.min(declared, MAX_FRAMES) : 1
}

/**
 * Why a frame described so cannot be a real image, or undefined: declared sizes are checked before anything
 * is allocated from them (a crafted file must not take the browser tab down).
 */
export function frameInfoProblem(info: FrameInfo): string | undefined {
  const { rows, columns, samplesPerPixel, bitsAllocated } = info
  if (
    !Number.isInteger(rows) ||
    !Number.isInteger(columns) ||
    rows < 1 ||
    columns < 1 ||
    rows > 0xffff ||
    columns > 0xffff
  )
    return `${rows} x ${columns} pixels is not an image size`
  if (!Number.isInteger(samplesPerPixel) || samplesPerPixel < 1 || samplesPerPixel > 4)
    return `${samplesPerPixel} samples per pixel`
  if (![1, 8, 16, 32].includes(bitsAllocated)) return `${bitsAllocated} bits allocated per sample`
  const bytes = rows * columns * samplesPerPixel * Math.max(1, bitsAllocated / 8)
  if (bytes > MAX_FRAME_BYTES)
    return (
      `a frame of ${rows} x ${columns} x ${samplesPerPixel} at ${bitsAllocated} bits (${bytes} bytes) ` +
      'is larger than the viewer shows'
    )
  return undefined
}

export function values(json: DicomJson, tag: string): unknown[] {
  return json[tag]?.Value ?? []
}

export function first(json: DicomJson, tag: string): unknown {
  return values(json, tag)[0]
}

export function number(json: DicomJson, tag: string, fallback: number): number {
  const value = Number(first(json, tag))
  return Number.isFinite(value) ? value : fallback
}

export function text(json: DicomJson, tag: string): string {
  const value = first(json, tag)
  if (value === undefined || value === null) return ''
  if (typeof value === 'object' && 'Alphabetic' in (value as object))
    return String((value as { Alphabetic: unknown }).Alphabetic ?? '')
  return String(value)
}

/** A person name for people: "DOE^JANE" as "DOE, JANE". */
export function personName(json: DicomJson, tag: string): string {
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = text(json, tag).split('^')
  return [prefix, [family, [given, middle].filter(Boolean).join(' ')].filter(Boolean).join(', '), suffix]
    .filter(Boolean)
    .join(' ')
}

export function frameInfo(json: DicomJson, transferSyntaxUid: string): FrameInfo {
  const centers = values(json, '00281050').map(Number)
  const widths = values(json, '00281051').map(Number)
  const explanations = values(json, '00281055').map(String)
  const windows = centers.flatMap((center, i) => {
    const width = widths[i] ?? widths[0]
    return width !== undefined && Number.isFinite(center) && Number.isFinite(width) && width >= 1
      ? [{ center, width, explanation: explanations[i] ?? '' }]
      : []
  })
  const spacing = values(json, '00280030').map(Number)
  const bitsAllocated = number(json, '00280100', 16)
  return {
    rows: number(json, '00280010', 0),
    columns: number(json, '00280011', 0),
    samplesPerPixel: number(json, '00280002', 1),
    bitsAllocated,
    bitsStored: number(json, '00280101', bitsAllocated),
    pixelRepresentation: number(json, '00280103', 0) === 1 ? 1 : 0,
    planarConfiguration: number(json, '00280006', 0) === 1 ? 1 : 0,
    photometric: text(json, '00280004').trim() || 'MONOCHROME2',
    rescaleSlope: number(json, '00281053', 1),
    rescaleIntercept: number(json, '00281052', 0),
    windows,
    frames: number(json, '00280008', 1),
    pixelSpacing:
      spacing.length === 2 && spacing.every(v => Number.isFinite(v) && v > 0)
        ? [spacing[0] as number, spacing[1] as number]
        : undefined,
    transferSyntaxUid
  }
}
