/**
 * Cutting frames out of stored pixel data (WADO-RS `…/frames/N`): native pixel data by frame size
 * (big endian turned little endian, as PS3.18 wants), encapsulated pixel data by the basic offset table,
 * one fragment per frame, or all fragments of a single frame.
 */
import type { InstanceRecord } from '../../archive/archive.ts'
import { datasetOf } from '../../dicom/part10.ts'
import { TRANSFER_SYNTAX } from '../../dicom/uids.ts'
import { BadRequestError, RadmeshError } from '../../errors.ts'

const MEDIA_TYPES: Record<string, string> = {
  [TRANSFER_SYNTAX.jpegBaseline]: 'image/jpeg',
  [TRANSFER_SYNTAX.jpegExtended]: 'image/jpeg',
  [TRANSFER_SYNTAX.jpegLossless]: 'image/jpeg',
  [TRANSFER_SYNTAX.jpegLosslessSV1]: 'image/jpeg',
  [TRANSFER_SYNTAX.jpegLsLossless]: 'image/jls',
  [TRANSFER_SYNTAX.jpegLsNearLossless]: 'image/jls',
  [TRANSFER_SYNTAX.jpeg2000Lossless]: 'image/jp2',
  [TRANSFER_SYNTAX.jpeg2000]: 'image/jp2',
  [TRANSFER_SYNTAX.rle]: 'image/x-dicom-rle'
}

export interface Frame { body: Uint8Array, contentType: string, transferSyntaxUid: string }

const numberOf = (value: unknown, fallback: number): number => {
  const n = Number(Array.isArray(value) ? value[0] : value)
  return Number.isFinite(n) && n > 0 ? n : fallback
}

export function parseFrameList (text: string): number[] {
  const frames = text.split(',').map(part => Number(part.trim()))
  if (frames.length === 0 || frames.some(n => !Number.isSafeInteger(n) || n < 1)) throw new BadRequestError(`frame list "${text}": give frame numbers from 1, separated by commas`)
  return frames
}

export function extractFrames (file: Uint8Array, instance: InstanceRecord, frameNumbers: number[]): Frame[] {
  const pixelData = instance.pixelData
  if (pixelData === undefined) throw new RadmeshError('RADMESH_NOT_FOUND', `instance ${instance.sopUid} has no pixel data`)
  const frameCount = numberOf(instance.attributes['00280008'], 1)
  for (const n of frameNumbers) {
    if (n > frameCount) throw new RadmeshError('RADMESH_NOT_FOUND', `instance ${instance.sopUid} has ${frameCount} frame(s), not ${n}`)
  }
  const dataset = datasetOf(file, instance)
  if (!pixelData.encapsulated) {
    const rows = numberOf(instance.attributes['00280010'], 0)
    const columns = numberOf(instance.attributes['00280011'], 0)
    const samples = numberOf(instance.attributes['00280002'], 1)
    const bitsAllocated = numberOf(instance.attributes['00280100'], 16)
    // YBR_FULL_422 keeps two chroma samples per two pixels (PS3.3 C.7.6.3.1.2): 2 samples per pixel on average.
    const samplesStored = samples === 3 && String(instance.attributes['00280004'] ?? '').trim() === 'YBR_FULL_422' ? 2 : samples
    const frameBytes = bitsAllocated === 1 ? Math.ceil((rows * columns * samples) / 8) : rows * columns * samplesStored * (bitsAllocated / 8)
    if (frameBytes === 0 || frameBytes * frameCount > pixelData.length) {
      throw new RadmeshError('RADMESH_INVALID_DICOM', `instance ${instance.sopUid}: ${frameCount} frame(s) of ${rows}x${columns}x${samples} at ${bitsAllocated} bits do not fit its ${pixelData.length} bytes of pixel data`)
    }
    return frameNumbers.map(n => {
      const start = pixelData.offset + (n - 1) * frameBytes
      let body: Uint8Array = dataset.subarray(start, start + frameBytes)
      if (instance.transferSyntaxUid === TRANSFER_SYNTAX.explicitBig && bitsAllocated === 16) body = Buffer.from(body).swap16()
      if (instance.transferSyntaxUid === TRANSFER_SYNTAX.explicitBig && bitsAllocated === 32) body = Buffer.from(body).swap32()
      return { body, contentType: 'application/octet-stream', transferSyntaxUid: TRANSFER_SYNTAX.explicitLittle }
    })
  }
  const { fragments, offsetTable } = pixelData
  const contentType = MEDIA_TYPES[instance.transferSyntaxUid] ?? 'application/octet-stream'
  const concat = (list: Array<{ offset: number, length: number }>): Uint8Array =>
    list.length === 1 ? dataset.subarray(list[0]?.offset ?? 0, (list[0]?.offset ?? 0) + (list[0]?.length ?? 0)) : Buffer.concat(list.map(f => dataset.subarray(f.offset, f.offset + f.length)))
  let groups: Array<Array<{ offset: number, length: number }>>
  if (frameCount === 1) {
    groups = [fragments]
  } else if (offsetTable.length === frameCount) {
    // Offsets in the table count from the first fragment's item tag; each fragment item adds 8 bytes of header.
    const first = fragments[0]?.offset ?? 0
    const starts = offsetTable.map(o => first - 8 + o)
    groups = starts.map((start, i) => fragments.filter(f => f.offset - 8 >= start && (i + 1 >= starts.length || f.offset - 8 < (starts[i + 1] as number))))
  } else if (fragments.length === frameCount) {
    groups = fragments.map(f => [f])
  } else {
    throw new RadmeshError('RADMESH_INVALID_DICOM', `instance ${instance.sopUid}: ${fragments.length} fragments for ${frameCount} frames and no offset table; its frames cannot be told apart`)
  }
  return frameNumbers.map(n => ({ body: concat(groups[n - 1] ?? []), contentType, transferSyntaxUid: instance.transferSyntaxUid }))
}
