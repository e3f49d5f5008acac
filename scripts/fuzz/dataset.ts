/**
 * Just enough of a DICOM file for the fuzzer: its elements found (nested ones too), its meta information read,
 * elements written in a transfer syntax, set or inserted where their tag belongs, fresh UIDs written in place,
 * and Part 10 files built around a data set. What is changed lives in ./mutate.ts.
 */
import {
  ITEM,
  ITEM_DELIMITER as ITEM_END,
  LONG_VRS,
  SEQUENCE_DELIMITER as SEQUENCE_END,
  TRANSFER_SYNTAX,
  UNDEFINED_LENGTH as UNDEFINED
} from '../../node/dicom/dictionary.ts'
import type { Rng } from './rng.ts'

// ---------------------------------------------------------------------------------------------------
// Reading just enough of a file

export const IMPLICIT_LE = TRANSFER_SYNTAX.implicitLittle
export const EXPLICIT_LE = TRANSFER_SYNTAX.explicitLittle
export const DEFLATED_LE = TRANSFER_SYNTAX.deflatedExplicitLittle
export const EXPLICIT_BE = TRANSFER_SYNTAX.explicitBig

export interface Syntax {
  explicit: boolean
  little: boolean
  deflated: boolean
}

export function syntaxOf(transferSyntaxUid: string): Syntax {
  return {
    explicit: transferSyntaxUid !== IMPLICIT_LE,
    little: transferSyntaxUid !== EXPLICIT_BE,
    deflated: transferSyntaxUid === DEFLATED_LE
  }
}

export interface Element {
  tag: number
  vr: string | undefined
  /** where the element starts (its tag) */
  offset: number
  lengthOffset: number
  lengthBytes: 2 | 4
  valueOffset: number
  /** 0xFFFFFFFF for undefined length */
  length: number
  /** where the element ends, its delimiters included */
  end: number
  depth: number
}

/**
 * The elements of a data set (nested ones too, with their depth), as far as they can be read: a walk that
 * meets bytes it cannot read stops there. At most `max` elements.
 */
export function walk(dataset: Buffer, syntax: Syntax, max = 20_000): Element[] {
  const out: Element[] = []
  try {
    walkInto(out, dataset, syntax, max)
  } catch (error) {
    if (!(error instanceof TooDeep)) throw error
  }
  return out
}

/** Sequences nested deeper than this are not read (a fuzzed input may nest 100,000 deep). */
const MAX_DEPTH = 64
class TooDeep extends Error {}

function walkInto(out: Element[], dataset: Buffer, syntax: Syntax, max: number): void {
  const u16 = (at: number): number => (syntax.little ? dataset.readUInt16LE(at) : dataset.readUInt16BE(at))
  const u32 = (at: number): number => (syntax.little ? dataset.readUInt32LE(at) : dataset.readUInt32BE(at))
  const tagAt = (at: number): number => ((u16(at) << 16) | u16(at + 2)) >>> 0

  /** Elements from `at` until `stop` (or an item delimiter); returns where it stopped. */
  const elements = (at: number, stop: number, depth: number): number => {
    if (depth > MAX_DEPTH) throw new TooDeep()
    while (at + 8 <= stop && out.length < max) {
      const tag = tagAt(at)
      if (tag === ITEM_END || tag === SEQUENCE_END) return at
      let vr: string | undefined
      let lengthOffset: number
      let lengthBytes: 2 | 4
      if (syntax.explicit && tag >>> 16 !== 0xfffe) {
        vr = dataset.toString('latin1', at + 4, at + 6)
        if (LONG_VRS.has(vr) || !/^[A-Z]{2}$/.test(vr)) {
          if (at + 12 > stop) return at
          lengthOffset = at + 8
          lengthBytes = 4
        } else {
          lengthOffset = at + 6
          lengthBytes = 2
        }
      } else {
        lengthOffset = at + 4
        lengthBytes = 4
      }
      const length = lengthBytes === 2 ? u16(lengthOffset) : u32(lengthOffset)
      const valueOffset = lengthOffset + lengthBytes
      const element: Element = {
        tag,
        vr,
        offset: at,
        lengthOffset,
        lengthBytes,
        valueOffset,
        length,
        end: valueOffset,
        depth
      }
      out.push(element)
      if (length === UNDEFINED) {
        const end = sequence(valueOffset, stop, depth + 1, tag === 0x7fe00010)
        if (end === undefined) return stop
        element.end = end
      } else {
        if (valueOffset + length > stop) return at
        element.end = valueOffset + length
        if (vr === 'SQ' && length > 0) sequence(valueOffset, valueOffset + length, depth + 1, false)
      }
      at = element.end
    }
    return at
  }

  /** Items until the sequence delimiter (or `stop`); returns the end after the delimiter. */
  const sequence = (at: number, stop: number, depth: number, fragments: boolean): number | undefined => {
    while (at + 8 <= stop && out.length < max) {
      const tag = tagAt(at)
      const length = u32(at + 4)
      if (tag === SEQUENCE_END) return at + 8
      if (tag !== ITEM) return undefined
      if (length === UNDEFINED && !fragments) {
        const inner = elements(at + 8, stop, depth)
        if (inner + 8 > stop || tagAt(inner) !== ITEM_END) return undefined
        at = inner + 8
      } else if (length === UNDEFINED) {
        return undefined
      } else {
        if (at + 8 + length > stop) return undefined
        if (!fragments) elements(at + 8, at + 8 + length, depth)
        at += 8 + length
      }
    }
    return at >= stop ? stop : undefined
  }

  elements(0, dataset.length, 0)
}

export interface Part10 {
  name: string
  /** the file as read */
  file: Buffer
  /** where the data set starts (after the meta group; 0 for a file without one) */
  datasetOffset: number
  transferSyntaxUid: string
  sopClassUid: string
  sopInstanceUid: string
  hasMeta: boolean
}

const text = (bytes: Buffer): string => bytes.toString('latin1').replace(/[\0 ]+$/, '')

/** A Part 10 file's meta information, or a guess for a bare data set (implicit VR, SOP class from the data set). */
export function readPart10(name: string, file: Buffer): Part10 {
  if (file.length >= 132 && file.toString('latin1', 128, 132) === 'DICM') {
    const meta = walk(file.subarray(132), syntaxOf(EXPLICIT_LE)).filter(e => e.depth === 0 && e.tag >>> 16 === 2)
    const value = (tag: number): string => {
      const e = meta.find(m => m.tag === tag)
      return e === undefined ? '' : text(file.subarray(132 + e.valueOffset, 132 + e.end))
    }
    const last = meta.at(-1)
    const datasetOffset = 132 + (last?.end ?? 0)
    return {
      name,
      file,
      datasetOffset,
      transferSyntaxUid: value(0x00020010) || EXPLICIT_LE,
      sopClassUid: value(0x00020002),
      sopInstanceUid: value(0x00020003),
      hasMeta: true
    }
  }
  // No meta: explicit VR if the fifth and sixth bytes read as a VR.
  const explicit = file.length > 6 && /^[A-Z]{2}$/.test(file.toString('latin1', 4, 6))
  const transferSyntaxUid = explicit ? EXPLICIT_LE : IMPLICIT_LE
  const elements = walk(file, syntaxOf(transferSyntaxUid))
  const value = (tag: number): string => {
    const e = elements.find(m => m.tag === tag && m.depth === 0)
    return e === undefined ? '' : text(file.subarray(e.valueOffset, e.end))
  }
  return {
    name,
    file,
    datasetOffset: 0,
    transferSyntaxUid,
    sopClassUid: value(0x00080016),
    sopInstanceUid: value(0x00080018),
    hasMeta: false
  }
}

// ---------------------------------------------------------------------------------------------------
// Writing elements

export function u16(value: number, little: boolean): Buffer {
  const b = Buffer.alloc(2)
  if (little) b.writeUInt16LE(value & 0xffff)
  else b.writeUInt16BE(value & 0xffff)
  return b
}

export function u32(value: number, little: boolean): Buffer {
  const b = Buffer.alloc(4)
  if (little) b.writeUInt32LE(value >>> 0)
  else b.writeUInt32BE(value >>> 0)
  return b
}

/** An element as the syntax writes it; `length` overrides the value's own (a lying length). */
export function encodeElement(tag: number, vr: string, value: Buffer, syntax: Syntax, length = value.length): Buffer {
  const head = Buffer.concat([u16(tag >>> 16, syntax.little), u16(tag & 0xffff, syntax.little)])
  if (!syntax.explicit || tag >>> 16 === 0xfffe) return Buffer.concat([head, u32(length, syntax.little), value])
  if (LONG_VRS.has(vr)) {
    return Buffer.concat([head, Buffer.from(vr, 'latin1'), Buffer.alloc(2), u32(length, syntax.little), value])
  }
  return Buffer.concat([head, Buffer.from(vr, 'latin1'), u16(length, syntax.little), value])
}

/** Text padded to an even length (UI with NUL, others with a space). */
export function textValue(value: string, vr: string): Buffer {
  const bytes = Buffer.from(value, 'latin1')
  return bytes.length % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from([vr === 'UI' ? 0 : 0x20])])
}

export const replaceRange = (bytes: Buffer, start: number, end: number, by: Buffer): Buffer =>
  Buffer.concat([bytes.subarray(0, start), by, bytes.subarray(end)])

/** Inserts a top-level element where its tag belongs (before the first top-level element with a larger tag). */
export function insertElement(dataset: Buffer, elements: Element[], tag: number, encoded: Buffer): Buffer {
  const after = elements.find(e => e.depth === 0 && e.tag > tag)
  const at = after?.offset ?? elements.filter(e => e.depth === 0).at(-1)?.end ?? dataset.length
  return replaceRange(dataset, at, at, encoded)
}

/** Sets a top-level element's value (inserted where its tag belongs when missing). */
export function setElement(
  dataset: Buffer,
  syntax: Syntax,
  elements: Element[],
  tag: number,
  vr: string,
  value: Buffer
): Buffer {
  const found = elements.find(e => e.depth === 0 && e.tag === tag)
  const ownVr = found?.vr !== undefined && /^[A-Z]{2}$/.test(found.vr) ? found.vr : vr
  const encoded = encodeElement(tag, ownVr, value, syntax)
  return found === undefined
    ? insertElement(dataset, elements, tag, encoded)
    : replaceRange(dataset, found.offset, found.end, encoded)
}

/** A Part 10 file: preamble, DICM, a meta group for the given UIDs, then the data set. */
export function part10File(
  dataset: Buffer,
  sopClassUid: string,
  sopInstanceUid: string,
  transferSyntaxUid: string
): Buffer {
  const syntax = syntaxOf(EXPLICIT_LE)
  const elements = [
    encodeElement(0x00020001, 'OB', Buffer.from([0, 1]), syntax),
    encodeElement(0x00020002, 'UI', textValue(sopClassUid, 'UI'), syntax),
    encodeElement(0x00020003, 'UI', textValue(sopInstanceUid, 'UI'), syntax),
    encodeElement(0x00020010, 'UI', textValue(transferSyntaxUid, 'UI'), syntax),
    encodeElement(0x00020012, 'UI', textValue('2.25.166424218330786432120557437325530848418', 'UI'), syntax)
  ]
  const group = Buffer.concat(elements)
  const groupLength = encodeElement(0x00020000, 'UL', u32(group.length, true), syntax)
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), groupLength, group, dataset])
}

export const hexTag = (tag: number): string =>
  `${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')}`.toUpperCase()

// ---------------------------------------------------------------------------------------------------
// Fresh UIDs, so each case is a new instance (unless it means to collide)

const UID_TAGS = [0x00080018, 0x0020000d, 0x0020000e] as const

export interface Uids {
  sop?: string
  study?: string
  series?: string
}

/** A UID of exactly `length` characters under 2.25. */
function uidOfLength(rng: Rng, length: number): string {
  let uid = `2.25.${1 + rng.int(9)}`
  while (uid.length < length) uid += String(rng.int(10))
  return uid.slice(0, length)
}

/**
 * Gives the data set (and the meta header, when there is one) new SOP Instance, Study and Series UIDs of the
 * same lengths, in place. Returns the new ones (undefined where the element was not found or too short).
 */
export function refreshUids(file: Buffer, part10: Part10, rng: Rng): Uids {
  const syntax = syntaxOf(part10.transferSyntaxUid)
  const out: Uids = {}
  if (syntax.deflated) return out
  const dataset = file.subarray(part10.datasetOffset)
  const elements = walk(dataset, syntax, 2_000)
  for (const [i, tag] of UID_TAGS.entries()) {
    const e = elements.find(el => el.depth === 0 && el.tag === tag)
    if (e === undefined || e.length === UNDEFINED || e.length < 8 || e.end > dataset.length) continue
    const old = text(dataset.subarray(e.valueOffset, e.end))
    if (old.length < 8) continue
    const uid = uidOfLength(rng, old.length)
    dataset.write(uid, e.valueOffset, 'latin1')
    if (i === 0) out.sop = uid
    else if (i === 1) out.study = uid
    else out.series = uid
  }
  if (part10.hasMeta && out.sop !== undefined) {
    const meta = walk(file.subarray(132, part10.datasetOffset), syntaxOf(EXPLICIT_LE))
    const e = meta.find(el => el.tag === 0x00020003)
    if (e !== undefined && e.end - e.valueOffset >= out.sop.length) {
      const at = 132 + e.valueOffset
      file.fill(0, at, 132 + e.end)
      file.write(out.sop, at, 'latin1')
    }
  }
  return out
}

/** The UIDs a data set names (top level), read after mutation, for opening what was accepted. */
export function uidsOf(dataset: Buffer, syntax: Syntax): Uids {
  if (syntax.deflated) return {}
  const elements = walk(dataset, syntax, 2_000)
  const value = (tag: number): string | undefined => {
    const e = elements.find(el => el.depth === 0 && el.tag === tag)
    return e === undefined || e.length === UNDEFINED ? undefined : text(dataset.subarray(e.valueOffset, e.end))
  }
  const sop = value(0x00080018)
  const study = value(0x0020000d)
  const series = value(0x0020000e)
  return {
    ...(sop === undefined ? {} : { sop }),
    ...(study === undefined ? {} : { study }),
    ...(series === undefined ? {} : { series })
  }
}
