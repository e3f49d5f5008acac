/**
 * What a frame's pixels mean, read from an instance's DICOM JSON (WADO-RS metadata): size, sample layout,
 * photometric interpretation, the Modality LUT (rescale) and the VOI windows the file suggests.
 */

export type DicomJson = Record<string, { vr: string, Value?: unknown[], BulkDataURI?: string, InlineBinary?: string }>

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
  windows: Array<{ center: number, width: number, explanation: string }>
  frames: number
  /** mm per pixel, [row spacing, column spacing], when the file says */
  pixelSpacing: [number, number] | undefined
  transferSyntaxUid: string
}

export function values (json: DicomJson, tag: string): unknown[] {
  return json[tag]?.Value ?? []
}

export function first (json: DicomJson, tag: string): unknown {
  return values(json, tag)[0]
}

export function number (json: DicomJson, tag: string, fallback: number): number {
  const value = Number(first(json, tag))
  return Number.isFinite(value) ? value : fallback
}

export function text (json: DicomJson, tag: string): string {
  const value = first(json, tag)
  if (value === undefined || value === null) return ''
  if (typeof value === 'object' && 'Alphabetic' in (value as object)) return String((value as { Alphabetic: unknown }).Alphabetic ?? '')
  return String(value)
}

/** A person name for people: "DOE^JANE" as "DOE, JANE". */
export function personName (json: DicomJson, tag: string): string {
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = text(json, tag).split('^')
  return [prefix, [family, [given, middle].filter(Boolean).join(' ')].filter(Boolean).join(', '), suffix].filter(Boolean).join(' ')
}

export function frameInfo (json: DicomJson, transferSyntaxUid: string): FrameInfo {
  const centers = values(json, '00281050').map(Number)
  const widths = values(json, '00281051').map(Number)
  const explanations = values(json, '00281055').map(String)
  const windows = centers.flatMap((center, i) => {
    const width = widths[i] ?? widths[0]
    return width !== undefined && Number.isFinite(center) && Number.isFinite(width) && width >= 1 ? [{ center, width, explanation: explanations[i] ?? '' }] : []
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
    pixelSpacing: spacing.length === 2 && spacing.every(v => Number.isFinite(v) && v > 0) ? [spacing[0] as number, spacing[1] as number] : undefined,
    transferSyntaxUid
  }
}
