/**
 * Deflated data sets for the fuzzer's dicom and stow kinds: deflate bombs (a few KB that inflate to gigabytes)
 * and other deflated variants, valid or damaged. Every choice comes from the case's generator (./rng.ts).
 */
import { constants, deflateRawSync } from 'node:zlib'
import { type Element, encodeElement, EXPLICIT_LE, syntaxOf, textValue, walk } from './dataset.ts'
import type { Rng } from './rng.ts'

const MIB = 1024 * 1024
/** A raw deflate fragment of 1 MiB of zeros, ending on a full flush: copies of it concatenate into one stream. */
let zeroMib: Buffer | undefined

/**
 * A Deflated Explicit VR Little Endian data set: `dataset` (explicit VR little endian) with a private OB element
 * of `inflatedMib` MiB of zeros inserted, deflated into a few KB per GB. Built from copies of one compressed
 * MiB, so even a 4 GiB bomb costs nothing to make.
 */
export function deflateBomb(dataset: Buffer, inflatedMib: number, rng: Rng): { dataset: Buffer; what: string } {
  zeroMib ??= deflateRawSync(Buffer.alloc(MIB), { level: 9, finishFlush: constants.Z_FULL_FLUSH })
  const syntax = syntaxOf(EXPLICIT_LE)
  const elements = walk(dataset, syntax, 5_000)
  // Private group 0009: creator, then OB elements of at most 4 GiB - 2 MiB each.
  const creator = encodeElement(0x00090010, 'LO', textValue('RADMESH FUZZ', 'LO'), syntax)
  const inPixelData = rng.chance(0.3) && elements.some(e => e.tag === 0x7fe00010 && e.depth === 0)
  const fragments: Buffer[] = []
  const at = inPixelData
    ? (elements.find(e => e.tag === 0x7fe00010 && e.depth === 0) as Element).offset
    : (elements.find(e => e.depth === 0 && e.tag > 0x00091000)?.offset ?? dataset.length)
  const flushed = { finishFlush: constants.Z_FULL_FLUSH }
  const head = Buffer.concat([dataset.subarray(0, at), inPixelData ? Buffer.alloc(0) : creator])
  fragments.push(deflateRawSync(head, flushed))
  let left = inflatedMib
  let element = 0
  while (left > 0) {
    const mib = Math.min(left, 4095)
    const tag = inPixelData ? 0x7fe00010 : 0x00091000 + element
    fragments.push(deflateRawSync(encodeElement(tag, 'OB', Buffer.alloc(0), syntax, mib * MIB), flushed))
    for (let i = 0; i < mib; i++) fragments.push(zeroMib)
    left -= mib
    element++
    if (inPixelData) break
  }
  const rest = inPixelData ? (elements.find(e => e.tag === 0x7fe00010 && e.depth === 0) as Element).end : at
  fragments.push(deflateRawSync(dataset.subarray(rest), { finishFlush: constants.Z_FINISH }))
  const bomb = Buffer.concat(fragments)
  const where = inPixelData ? 'as pixel data' : 'in private OB'
  return { dataset: bomb, what: `deflate bomb: ${inflatedMib} MiB of zeros ${where} in ${bomb.length} bytes` }
}

/** Other deflated data sets: a plain one, one cut short, one with garbage after a valid start. */
export function deflatedVariant(dataset: Buffer, rng: Rng): { dataset: Buffer; what: string } {
  const plain = deflateRawSync(dataset)
  const variant = rng.pick(['plain', 'truncated', 'garbage', 'not deflate'])
  if (variant === 'plain') return { dataset: plain, what: 'deflated, valid' }
  if (variant === 'truncated') return { dataset: plain.subarray(0, rng.int(plain.length)), what: 'deflated, cut short' }
  if (variant === 'garbage') {
    const half = plain.subarray(0, plain.length >> 1)
    return { dataset: Buffer.concat([half, rng.bytes(1000)]), what: 'deflated, then garbage' }
  }
  return { dataset, what: 'declared deflated, sent plain' }
}
