/**
 * DICOM mutations for the fuzzer's dicom and stow kinds: real files (the pydicom corpus, generated CT slices)
 * read just enough to find their elements, then changed the way a broken modality or an attacker would: bit
 * flips, byte runs, truncation, lengths set to huge or odd values, VRs replaced, size attributes (frames, rows,
 * columns…) set to huge values, deep or wide sequences, deflate bombs, duplicated elements, damaged UIDs.
 * Every choice comes from the case's generator, so a case's input is the same every time it is replayed.
 */
import { createHash } from 'node:crypto'
import { constants, deflateRawSync } from 'node:zlib'
import {
  ITEM,
  ITEM_DELIMITER as ITEM_END,
  LONG_VRS,
  SEQUENCE_DELIMITER as SEQUENCE_END,
  TRANSFER_SYNTAX,
  UNDEFINED_LENGTH as UNDEFINED
} from '../../node/dicom/dictionary.ts'

// ---------------------------------------------------------------------------------------------------
// The case's generator

/** sfc32, seeded from SHA-256 of (kind, seed, case): one case replays alone, and the kinds differ. */
export class Rng {
  #a: number
  #b: number
  #c: number
  #d: number

  constructor (kind: string, seed: number, index: number) {
    const digest = createHash('sha256').update(`radmesh fuzz ${kind} ${seed} ${index}`).digest()
    this.#a = digest.readUInt32LE(0)
    this.#b = digest.readUInt32LE(4)
    this.#c = digest.readUInt32LE(8)
    this.#d = digest.readUInt32LE(12)
    for (let i = 0; i < 12; i++) this.u32()
  }

  u32 (): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0
    this.#d = (this.#d + 1) >>> 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) >>> 0
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0
    this.#c = (this.#c + t) >>> 0
    return t
  }

  /** 0 <= n < max */
  int (max: number): number { return max <= 1 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * max) }
  range (min: number, max: number): number { return min + this.int(max - min + 1) }
  chance (p: number): boolean { return this.u32() / 0x1_0000_0000 < p }
  pick<T> (items: readonly T[]): T { return items[this.int(items.length)] as T }
  bytes (n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff
    return out
  }

  /** A size from a few bytes to `max`, small ones likelier (log-uniform). */
  size (max: number): number { return Math.max(1, Math.floor(Math.exp(this.u32() / 0x1_0000_0000 * Math.log(max)))) }
}

// ---------------------------------------------------------------------------------------------------
// Reading just enough of a file

export const IMPLICIT_LE = TRANSFER_SYNTAX.implicitLittle
export const EXPLICIT_LE = TRANSFER_SYNTAX.explicitLittle
export const DEFLATED_LE = TRANSFER_SYNTAX.deflatedExplicitLittle
export const EXPLICIT_BE = TRANSFER_SYNTAX.explicitBig

export interface Syntax { explicit: boolean, little: boolean, deflated: boolean }

export function syntaxOf (transferSyntaxUid: string): Syntax {
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
export function walk (dataset: Buffer, syntax: Syntax, max = 20_000): Element[] {
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

function walkInto (out: Element[], dataset: Buffer, syntax: Syntax, max: number): void {
  const u16 = (at: number): number => syntax.little ? dataset.readUInt16LE(at) : dataset.readUInt16BE(at)
  const u32 = (at: number): number => syntax.little ? dataset.readUInt32LE(at) : dataset.readUInt32BE(at)
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
      if (syntax.explicit && (tag >>> 16) !== 0xfffe) {
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
        tag, vr, offset: at, lengthOffset, lengthBytes, valueOffset, length, end: valueOffset, depth
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
export function readPart10 (name: string, file: Buffer): Part10 {
  if (file.length >= 132 && file.toString('latin1', 128, 132) === 'DICM') {
    const meta = walk(file.subarray(132), syntaxOf(EXPLICIT_LE)).filter(e => e.depth === 0 && (e.tag >>> 16) === 2)
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

function u16 (value: number, little: boolean): Buffer {
  const b = Buffer.alloc(2)
  if (little) b.writeUInt16LE(value & 0xffff)
  else b.writeUInt16BE(value & 0xffff)
  return b
}

function u32 (value: number, little: boolean): Buffer {
  const b = Buffer.alloc(4)
  if (little) b.writeUInt32LE(value >>> 0)
  else b.writeUInt32BE(value >>> 0)
  return b
}

/** An element as the syntax writes it; `length` overrides the value's own (a lying length). */
export function encodeElement (tag: number, vr: string, value: Buffer, syntax: Syntax, length = value.length): Buffer {
  const head = Buffer.concat([u16(tag >>> 16, syntax.little), u16(tag & 0xffff, syntax.little)])
  if (!syntax.explicit || (tag >>> 16) === 0xfffe) return Buffer.concat([head, u32(length, syntax.little), value])
  if (LONG_VRS.has(vr)) {
    return Buffer.concat([head, Buffer.from(vr, 'latin1'), Buffer.alloc(2), u32(length, syntax.little), value])
  }
  return Buffer.concat([head, Buffer.from(vr, 'latin1'), u16(length, syntax.little), value])
}

/** Text padded to an even length (UI with NUL, others with a space). */
export function textValue (value: string, vr: string): Buffer {
  const bytes = Buffer.from(value, 'latin1')
  return bytes.length % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from([vr === 'UI' ? 0 : 0x20])])
}

const replaceRange = (bytes: Buffer, start: number, end: number, by: Buffer): Buffer =>
  Buffer.concat([bytes.subarray(0, start), by, bytes.subarray(end)])

/** Inserts a top-level element where its tag belongs (before the first top-level element with a larger tag). */
export function insertElement (dataset: Buffer, elements: Element[], tag: number, encoded: Buffer): Buffer {
  const after = elements.find(e => e.depth === 0 && e.tag > tag)
  const at = after?.offset ?? (elements.filter(e => e.depth === 0).at(-1)?.end ?? dataset.length)
  return replaceRange(dataset, at, at, encoded)
}

/** Sets a top-level element's value (inserted where its tag belongs when missing). */
export function setElement (dataset: Buffer, syntax: Syntax, elements: Element[], tag: number, vr: string,
  value: Buffer): Buffer {
  const found = elements.find(e => e.depth === 0 && e.tag === tag)
  const ownVr = found?.vr !== undefined && /^[A-Z]{2}$/.test(found.vr) ? found.vr : vr
  const encoded = encodeElement(tag, ownVr, value, syntax)
  return found === undefined
    ? insertElement(dataset, elements, tag, encoded)
    : replaceRange(dataset, found.offset, found.end, encoded)
}

// ---------------------------------------------------------------------------------------------------
// Fresh UIDs, so each case is a new instance (unless it means to collide)

const UID_TAGS = [0x00080018, 0x0020000d, 0x0020000e] as const

export interface Uids { sop?: string, study?: string, series?: string }

/** A UID of exactly `length` characters under 2.25. */
function uidOfLength (rng: Rng, length: number): string {
  let uid = `2.25.${1 + rng.int(9)}`
  while (uid.length < length) uid += String(rng.int(10))
  return uid.slice(0, length)
}

/**
 * Gives the data set (and the meta header, when there is one) new SOP Instance, Study and Series UIDs of the
 * same lengths, in place. Returns the new ones (undefined where the element was not found or too short).
 */
export function refreshUids (file: Buffer, part10: Part10, rng: Rng): Uids {
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
export function uidsOf (dataset: Buffer, syntax: Syntax): Uids {
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

// ---------------------------------------------------------------------------------------------------
// Mutations of a data set

export interface Mutated { dataset: Buffer, transferSyntaxUid: string, what: string[] }

const VRS = ['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OW', 'PN',
  'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV', 'ZZ', '\0\0', 'ob', '  ']
const HUGE_LENGTHS = [0xffffffff, 0xfffffffe, 0x7fffffff, 0x80000000, 0x10000000, 0xffff, 0xfffe, 1, 3]

/** Size attributes: the value the element gets is one of `values`. */
interface SizeAttribute { tag: number, vr: string, name: string, values: readonly string[] | readonly number[] }
const SIZE_ATTRIBUTES: readonly SizeAttribute[] = [
  {
    tag: 0x00280008,
    vr: 'IS',
    name: 'NumberOfFrames',
    values: ['1000000000', '100000000', '2147483648', '99999999999', '-1', '0', '1e9', ' 7 ', 'X', '65536']
  },
  { tag: 0x00280010, vr: 'US', name: 'Rows', values: [0, 1, 0xffff, 0x8000, 3] },
  { tag: 0x00280011, vr: 'US', name: 'Columns', values: [0, 1, 0xffff, 0x8000, 3] },
  { tag: 0x00280002, vr: 'US', name: 'SamplesPerPixel', values: [0, 2, 3, 4, 0xffff] },
  { tag: 0x00280100, vr: 'US', name: 'BitsAllocated', values: [0, 1, 7, 12, 32, 64, 0xffff] },
  { tag: 0x00280101, vr: 'US', name: 'BitsStored', values: [0, 17, 64, 0xffff] },
  { tag: 0x00280102, vr: 'US', name: 'HighBit', values: [0, 31, 0xffff] },
  { tag: 0x00280103, vr: 'US', name: 'PixelRepresentation', values: [2, 0xffff] },
  { tag: 0x00280006, vr: 'US', name: 'PlanarConfiguration', values: [1, 2, 0xffff] },
  {
    tag: 0x00280004,
    vr: 'CS',
    name: 'PhotometricInterpretation',
    values: ['YBR_FULL_422', 'PALETTE COLOR', 'RGB', 'XYZ', '']
  },
  { tag: 0x00281050, vr: 'DS', name: 'WindowCenter', values: ['1e308', 'NaN', '-Infinity', '1\\2\\3\\4\\5\\6\\7', ''] },
  { tag: 0x00283002, vr: 'US', name: 'LUTDescriptor', values: [0xffff, 0] }
]

function sizeValue (vr: string, value: string | number, syntax: Syntax): Buffer {
  if (vr === 'US') return u16(Number(value), syntax.little)
  return textValue(String(value), vr)
}

/** SQ nested `depth` deep (undefined or defined lengths), each item holding the next sequence. */
function nestedSequence (tag: number, depth: number, undefinedLength: boolean, syntax: Syntax): Buffer {
  const itemTag = (t: number): Buffer => Buffer.concat([u16(t >>> 16, syntax.little), u16(t & 0xffff, syntax.little)])
  if (undefinedLength) {
    const open = Buffer.concat([
      encodeElement(tag, 'SQ', Buffer.alloc(0), syntax, UNDEFINED), itemTag(ITEM), u32(UNDEFINED, syntax.little)
    ])
    const close = Buffer.concat([
      itemTag(ITEM_END), u32(0, syntax.little), itemTag(SEQUENCE_END), u32(0, syntax.little)
    ])
    const out = Buffer.allocUnsafe((open.length + close.length) * depth)
    for (let i = 0; i < depth; i++) open.copy(out, i * open.length)
    for (let i = 0; i < depth; i++) close.copy(out, depth * open.length + i * close.length)
    return out
  }
  let inner: Buffer = Buffer.alloc(0)
  for (let i = 0; i < depth; i++) {
    const item = Buffer.concat([itemTag(ITEM), u32(inner.length, syntax.little), inner])
    inner = encodeElement(tag, 'SQ', item, syntax)
  }
  return inner
}

/** One SQ with `count` empty items. */
function wideSequence (tag: number, count: number, syntax: Syntax): Buffer {
  const item = Buffer.concat([u16(0xfffe, syntax.little), u16(0xe000, syntax.little), u32(0, syntax.little)])
  const items = Buffer.allocUnsafe(item.length * count)
  for (let i = 0; i < count; i++) item.copy(items, i * item.length)
  return encodeElement(tag, 'SQ', items, syntax)
}

type Mutation = (dataset: Buffer, syntax: Syntax, rng: Rng, elements: Element[]) =>
  { dataset: Buffer, what: string } | undefined

const pickElement = (rng: Rng, elements: Element[], filter: (e: Element) => boolean = () => true):
Element | undefined => {
  const candidates = elements.filter(filter)
  return candidates.length === 0 ? undefined : rng.pick(candidates)
}

const MUTATIONS: ReadonlyArray<[name: string, weight: number, mutation: Mutation]> = [
  ['bit flips', 4, (dataset, _syntax, rng) => {
    if (dataset.length === 0) return undefined
    const out = Buffer.from(dataset)
    const n = rng.range(1, 16)
    for (let i = 0; i < n; i++) {
      const at = rng.int(out.length)
      out[at] = (out[at] as number) ^ (1 << rng.int(8))
    }
    return { dataset: out, what: `${n} bit flips` }
  }],
  ['byte run', 3, (dataset, _syntax, rng) => {
    if (dataset.length === 0) return undefined
    const out = Buffer.from(dataset)
    const at = rng.int(out.length)
    const length = Math.min(out.length - at, rng.size(4096))
    const fill = rng.pick([0x00, 0xff, 0x20, 0x7f, -1])
    if (fill < 0) rng.bytes(length).copy(out, at)
    else out.fill(fill, at, at + length)
    return { dataset: out, what: `${length} bytes at ${at} set to ${fill < 0 ? 'random' : fill}` }
  }],
  ['truncation', 3, (dataset, _syntax, rng, elements) => {
    const e = rng.chance(0.5) ? pickElement(rng, elements) : undefined
    const at = e === undefined
      ? rng.int(dataset.length)
      : e.offset + rng.int(Math.max(1, Math.min(16, e.end - e.offset)))
    return { dataset: dataset.subarray(0, at), what: `truncated at ${at} of ${dataset.length}` }
  }],
  ['length field', 4, (dataset, syntax, rng, elements) => {
    const e = pickElement(rng, elements)
    if (e === undefined) return undefined
    const out = Buffer.from(dataset)
    const length = e.lengthBytes === 2
      ? rng.pick([0xffff, 0xfffe, 0, 1, (e.length + 1) & 0xffff])
      : rng.pick([...HUGE_LENGTHS, e.length + 1, Math.max(0, e.length - 1), dataset.length - e.valueOffset + 2])
    if (e.lengthBytes === 2) out.set(u16(length, syntax.little), e.lengthOffset)
    else out.set(u32(length, syntax.little), e.lengthOffset)
    return { dataset: out, what: `length of (${hexTag(e.tag)}) ${e.length} -> ${length}` }
  }],
  ['VR replaced', 3, (dataset, syntax, rng, elements) => {
    if (!syntax.explicit) return undefined
    const e = pickElement(rng, elements, el => el.vr !== undefined)
    if (e === undefined) return undefined
    const vr = rng.pick(VRS)
    const out = Buffer.from(dataset)
    out.write(vr, e.offset + 4, 'latin1')
    return { dataset: out, what: `VR of (${hexTag(e.tag)}) ${e.vr} -> ${JSON.stringify(vr)}` }
  }],
  ['size attribute', 5, (dataset, syntax, rng, elements) => {
    if (!syntax.little) return undefined
    const attribute = rng.pick(SIZE_ATTRIBUTES)
    const value = rng.pick(attribute.values as ReadonlyArray<string | number>)
    return {
      dataset: setElement(dataset, syntax, elements, attribute.tag, attribute.vr,
        sizeValue(attribute.vr, value, syntax)),
      what: `${attribute.name} = ${JSON.stringify(value)}`
    }
  }],
  ['nested sequences', 2, (dataset, syntax, rng, elements) => {
    const depth = rng.pick([8, 64, 512, 4096, 20_000, 100_000])
    const undefinedLength = rng.chance(0.6) || depth > 4096
    const tag = rng.pick([0x0040a730, 0x00081115, 0x00089215])
    return {
      dataset: insertElement(dataset, elements, tag, nestedSequence(tag, depth, undefinedLength, syntax)),
      what: `(${hexTag(tag)}) sequences nested ${depth} deep, ${undefinedLength ? 'undefined' : 'defined'} lengths`
    }
  }],
  ['wide sequence', 1, (dataset, syntax, rng, elements) => {
    const count = rng.pick([1000, 100_000, 400_000])
    return {
      dataset: insertElement(dataset, elements, 0x00081115, wideSequence(0x00081115, count, syntax)),
      what: `a sequence of ${count} empty items`
    }
  }],
  ['duplicated element', 3, (dataset, _syntax, rng, elements) => {
    const e = pickElement(rng, elements, el => el.depth === 0)
    if (e === undefined) return undefined
    const copy = dataset.subarray(e.offset, e.end)
    const topLevel = elements.filter(el => el.depth === 0)
    const at = rng.chance(0.5) ? e.end : (rng.pick(topLevel).offset)
    return { dataset: replaceRange(dataset, at, at, Buffer.from(copy)), what: `(${hexTag(e.tag)}) duplicated at ${at}` }
  }],
  ['UID damaged', 3, (dataset, syntax, rng, elements) => {
    const isUid = (el: Element): boolean =>
      el.vr === 'UI' || [0x00080016, 0x00080018, 0x0020000d, 0x0020000e].includes(el.tag)
    const e = pickElement(rng, elements, el => el.depth === 0 && isUid(el))
    if (e === undefined) return undefined
    const value = rng.pick(['', '1', '1.2.', '.1.2', '1..2', '01.2.3', '1.2.3a', '1.2.3 4', `1.${'9'.repeat(70)}`,
      '1.2\\1.3', '\u00e9\u00e9.1', `2.25.${'1'.repeat(200)}`, '1.2.840.10008.5.1.4.1.1.2', '../../etc/passwd', '%s%n',
      '1.2.3\0\0\0\0'])
    return {
      dataset: replaceRange(dataset, e.offset, e.end, encodeElement(e.tag, 'UI', textValue(value, 'UI'), syntax)),
      what: `(${hexTag(e.tag)}) UID -> ${JSON.stringify(value.slice(0, 24))}`
    }
  }]
]

const TOTAL_WEIGHT = MUTATIONS.reduce((sum, [, weight]) => sum + weight, 0)

function pickMutation (rng: Rng): [string, Mutation] {
  let n = rng.int(TOTAL_WEIGHT)
  for (const [name, weight, mutation] of MUTATIONS) {
    if (n < weight) return [name, mutation]
    n -= weight
  }
  const [name, , mutation] = MUTATIONS[0] as (typeof MUTATIONS)[number]
  return [name, mutation]
}

/** One to three mutations of a data set in its own syntax (a deflated one gets byte-level ones only). */
export function mutateDataset (dataset: Buffer, transferSyntaxUid: string, rng: Rng): Mutated {
  const syntax = syntaxOf(transferSyntaxUid)
  const what: string[] = []
  let current = dataset
  const count = rng.pick([1, 1, 1, 2, 3])
  for (let i = 0; i < count; i++) {
    const elements = syntax.deflated ? [] : walk(current, syntax, 5_000)
    for (let attempt = 0; attempt < 4; attempt++) {
      const [name, mutation] = pickMutation(rng)
      const done = mutation(current, syntax, rng, elements)
      if (done === undefined) continue
      current = done.dataset
      what.push(`${name}: ${done.what}`)
      break
    }
  }
  return { dataset: current, transferSyntaxUid, what }
}

export const hexTag = (tag: number): string =>
  `${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')}`.toUpperCase()

// ---------------------------------------------------------------------------------------------------
// Deflate bombs

const MIB = 1024 * 1024
/** A raw deflate fragment of 1 MiB of zeros, ending on a full flush: copies of it concatenate into one stream. */
let zeroMib: Buffer | undefined

/**
 * A Deflated Explicit VR Little Endian data set: `dataset` (explicit VR little endian) with a private OB element
 * of `inflatedMib` MiB of zeros inserted, deflated into a few KB per GB. Built from copies of one compressed
 * MiB, so even a 4 GiB bomb costs nothing to make.
 */
export function deflateBomb (dataset: Buffer, inflatedMib: number, rng: Rng): { dataset: Buffer, what: string } {
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
export function deflatedVariant (dataset: Buffer, rng: Rng): { dataset: Buffer, what: string } {
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

/** A Part 10 file: preamble, DICM, a meta group for the given UIDs, then the data set. */
export function part10File (dataset: Buffer, sopClassUid: string, sopInstanceUid: string,
  transferSyntaxUid: string): Buffer {
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
