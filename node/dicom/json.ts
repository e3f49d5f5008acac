/**
 * The DICOM JSON model (PS3.18 F.2) of one stored instance: the metadata WADO-RS and QIDO-RS answer with.
 *
 * The Part 10 file is parsed here, with dcmjs's data dictionary for the VRs of implicit VR data sets, rather
 * than by dcmjs's `DicomMessage.readFile`: that reader copies every value (pixel data included), finds the end
 * of undefined-length items by scanning for delimiter bytes (which binary values may contain), cannot read a
 * private sequence encoded as UN with undefined length, nor a nested private sequence in implicit VR, nor a file
 * whose meta header lacks the transfer syntax, and misreads data sets whose encoding differs from the declared
 * transfer syntax. This parser only walks the bytes: bulk data is never copied, every read is bounds-checked,
 * and every step moves forward, so any input either converts or throws `InvalidDicomError` (./errors.ts).
 *
 * What differs from a naive dump, as PS3.18 F.2 asks:
 * - keys are 8-digit upper-case hex tags; the File Meta Information (group 0002), group lengths (gggg,0000)
 *   and Data Set Trailing Padding (FFFC,FFFC) are left out;
 * - PN values are `{ Alphabetic, Ideographic, Phonetic }` objects; IS, DS, US, SS, UL, SL, FL, FD, SV, UV values
 *   are numbers (an IS or DS that is not a number stays a string, as CP 1861 allows; FL/FD NaN and infinities
 *   become the strings "NaN", "Infinity", "-Infinity"; SV/UV beyond 2^53 become decimal strings);
 *   AT values are 8-digit hex strings; empty values are absent and empty items of a multi-valued one are null;
 * - Pixel Data (7FE0,0010) at any depth, and every other binary value (OB, OD, OF, OL, OV, OW, UN) longer than
 *   1024 bytes, is `{ vr, BulkDataURI }`; shorter binary values are `InlineBinary` (base64, little endian);
 * - text is decoded with the Specific Character Set (0008,0005), ISO 2022 code extensions included;
 * - a UN element whose tag the dictionary knows is decoded with its real VR; a UN element of undefined
 *   length is a sequence in implicit VR little endian (PS3.5 6.2.2) and comes out as SQ.
 */
import { createRequire } from 'node:module'
import { inflateRawSync } from 'node:zlib'
import { InvalidDicomError } from './errors.ts'

export interface DicomJsonAttribute {
  vr: string
  Value?: unknown[]
  BulkDataURI?: string
  InlineBinary?: string
}

export type DicomJsonDataset = Record<string, DicomJsonAttribute>

/**
 * Names the bulk data of one element for `BulkDataURI`. For a top-level element the argument is its tag
 * ("7FE00010"); for an element inside a sequence it is the path to it: sequence tag, item index (from 0),
 * tag, separated by "/" ("54000100/0/54001010"). A top-level path is therefore exactly the tag.
 * `value` is the element's bytes as stored (not given for encapsulated values): the bulk data route uses it.
 */
export type BulkDataUriFor = (tagHex: string, value?: Uint8Array) => string

/** Binary values longer than this many bytes become BulkDataURI; shorter ones InlineBinary. */
export const BULK_DATA_THRESHOLD = 1024
/** A deflated data set may inflate to at most this many bytes. */
const MAX_INFLATED_BYTES = 2 ** 31 - 1
/** Sequences nest at most this deep (SR content trees go deep, but not this deep). */
const MAX_DEPTH = 64

// dcmjs ships no typings: the one thing used from it, typed here. Its dictionary is a proxy keyed by
// "(GGGG,EEEE)", "GGGGEEEE" or, for private tags, '(GGGG,"CREATOR",EE)'; vr is a VR, or "ox" (OB or OW),
// "xs" (US or SS), "lt" (US, SS or OW).
interface DictionaryEntry { vr?: string }
interface Dcmjs { data: { DicomMetaDictionary: { dictionary: Record<string, DictionaryEntry | undefined> } } }
const dictionary = (createRequire(import.meta.url)('dcmjs') as Dcmjs).data.DicomMetaDictionary.dictionary

const IMPLICIT_LITTLE = '1.2.840.10008.1.2'
const EXPLICIT_BIG = '1.2.840.10008.1.2.2'
const DEFLATED = new Set(['1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.4.95'])

const PIXEL_DATA = 0x7fe00010
const ITEM = 0xfffee000
const ITEM_DELIMITER = 0xfffee00d
const SEQUENCE_DELIMITER = 0xfffee0dd
const TRAILING_PADDING = 0xfffcfffc
const UNDEFINED = 0xffffffff

/** VRs whose explicit encoding has a 2-byte reserved field and a 4-byte length. */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'])
const SHORT_VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US'])
const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN'])
/** Bytes per word of a binary VR, for byte-swapping big endian values to the little endian InlineBinary. */
const WORD_SIZE: Record<string, number> = { OW: 2, OF: 4, OL: 4, OD: 8, OV: 8 }
/** Text VRs that are one value, never split at backslashes; leading spaces are significant. */
const SINGLE_TEXT_VRS = new Set(['LT', 'ST', 'UT', 'UR'])
/** Text VRs decoded with the Specific Character Set; the others are in the default repertoire. */
const CHARSET_VRS = new Set(['SH', 'LO', 'ST', 'LT', 'UC', 'UT', 'PN'])

interface Syntax { implicit: boolean, little: boolean }
const IMPLICIT_LE: Syntax = { implicit: true, little: true }

/** What a data set level knows while it is read: inherited by its items unless they say otherwise. */
interface Scope {
  charset: TextCodec
  creators: Map<number, string>
  pixelRepresentation: number
}

interface Walk {
  bytes: Uint8Array
  view: DataView
  bulkDataUri: BulkDataUriFor
}

const hex8 = (tag: number): string => tag.toString(16).toUpperCase().padStart(8, '0')
const hex4 = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0')
const tagName = (tag: number): string => `(${hex4(tag >>> 16)},${hex4(tag & 0xffff)})`

function isVrByte (b: number | undefined): boolean {
  return b !== undefined && b >= 0x41 && b <= 0x5a
}

function need (walk: Walk, at: number, length: number, end: number, what: string): void {
  if (at + length > end) {
    if (end < walk.bytes.length) throw new InvalidDicomError('bad-structure', `${what} needs ${length} bytes at offset ${at} and runs past the end of its item or sequence`)
    throw new InvalidDicomError('truncated', `${what} needs ${length} bytes at offset ${at} and runs past the end of the data: the file is truncated`)
  }
}

/**
 * Converts a DICOM Part 10 file (128-byte preamble, "DICM", File Meta Information, data set) into the DICOM
 * JSON model of its data set. Throws InvalidDicomError, with what is wrong and where, when it cannot.
 */
export function instanceToDicomJson (part10: Uint8Array, bulkDataUri: BulkDataUriFor): DicomJsonDataset {
  if (part10.length < 132 || part10[128] !== 0x44 || part10[129] !== 0x49 || part10[130] !== 0x43 || part10[131] !== 0x4d) {
    throw new InvalidDicomError('not-part10', 'not a DICOM Part 10 file: no "DICM" after the 128-byte preamble (a bare data set without File Meta Information is not accepted)')
  }
  let walk: Walk = { bytes: part10, view: new DataView(part10.buffer, part10.byteOffset, part10.byteLength), bulkDataUri }
  const { transferSyntax, end: metaEnd } = readMeta(walk)
  let start = metaEnd

  let syntax: Syntax = transferSyntax === IMPLICIT_LITTLE
    ? { implicit: true, little: true }
    : { implicit: false, little: transferSyntax !== EXPLICIT_BIG }

  if (transferSyntax !== undefined && DEFLATED.has(transferSyntax)) {
    let inflated: Uint8Array
    try {
      inflated = inflateRawSync(part10.subarray(metaEnd), { maxOutputLength: MAX_INFLATED_BYTES })
    } catch (error) {
      throw new InvalidDicomError('bad-deflate', `the deflated data set cannot be inflated: ${(error as Error).message}`)
    }
    walk = { bytes: inflated, view: new DataView(inflated.buffer, inflated.byteOffset, inflated.byteLength), bulkDataUri }
    start = 0
  }

  // Trust the bytes over the meta header: some writers declare explicit VR and write implicit, or the reverse,
  // or leave the transfer syntax out. The first element of the data set shows which it is.
  if (walk.bytes.length - start >= 8) {
    const vr = String.fromCharCode(walk.bytes[start + 4] as number, walk.bytes[start + 5] as number)
    const looksExplicit = LONG_VRS.has(vr) || SHORT_VRS.has(vr)
    if (looksExplicit === syntax.implicit) syntax = { implicit: !looksExplicit, little: syntax.little || !looksExplicit }
  }

  const scope: Scope = { charset: textCodec([]), creators: new Map(), pixelRepresentation: 0 }
  return readDataset(walk, start, walk.bytes.length, syntax, scope, '', 0, 'top').dataset
}

/** Reads the File Meta Information (always explicit VR little endian; elements of group 0002, in order). */
function readMeta (walk: Walk): { transferSyntax: string | undefined, end: number } {
  const { bytes, view } = walk
  let at = 132
  let transferSyntax: string | undefined
  while (at + 8 <= bytes.length && view.getUint16(at, true) === 0x0002) {
    const element = view.getUint16(at + 2, true)
    let length: number
    let header: number
    if (isVrByte(bytes[at + 4]) && isVrByte(bytes[at + 5])) {
      const vr = String.fromCharCode(bytes[at + 4] as number, bytes[at + 5] as number)
      if (LONG_VRS.has(vr)) {
        need(walk, at, 12, bytes.length, 'a File Meta Information element')
        length = view.getUint32(at + 8, true)
        header = 12
      } else {
        length = view.getUint16(at + 6, true)
        header = 8
      }
    } else { // some writers put the meta header in implicit VR
      length = view.getUint32(at + 4, true)
      header = 8
    }
    if (length === UNDEFINED) throw new InvalidDicomError('bad-meta', `File Meta Information element (0002,${hex4(element)}) has an undefined length`)
    need(walk, at + header, length, bytes.length, `File Meta Information element (0002,${hex4(element)})`)
    if (element === 0x0010) transferSyntax = latin1Text(bytes.subarray(at + header, at + header + length)).replace(/[\0 ]+$/, '').trim()
    at += header + length
  }
  if (at === 132) throw new InvalidDicomError('not-part10', 'not a DICOM Part 10 file: no File Meta Information (group 0002) after "DICM"')
  return { transferSyntax: transferSyntax === '' ? undefined : transferSyntax, end: at }
}

/**
 * Reads data set elements from `at` up to `end`, or, for an item of undefined length (`until` 'item'), up to
 * and including its Item Delimitation Item. Returns the data set and where reading stopped.
 */
function readDataset (walk: Walk, at: number, end: number, syntax: Syntax, parent: Scope, path: string, depth: number, until: 'end' | 'item' | 'top'): { dataset: DicomJsonDataset, end: number } {
  const { bytes, view } = walk
  const little = syntax.little
  const dataset: DicomJsonDataset = {}
  const scope: Scope = { charset: parent.charset, creators: new Map(), pixelRepresentation: parent.pixelRepresentation }
  for (;;) {
    if (at >= end) {
      if (until === 'item') throw new InvalidDicomError('bad-structure', `an item of undefined length has no Item Delimitation Item before offset ${end}`)
      return { dataset, end: at }
    }
    if (until === 'top' && end - at < 8 && bytes.subarray(at, end).every(b => b === 0)) return { dataset, end } // zero padding
    need(walk, at, 8, end, 'an element header')
    const group = view.getUint16(at, little)
    const element = view.getUint16(at + 2, little)
    const tag = ((group << 16) | element) >>> 0

    if (tag === ITEM_DELIMITER) {
      if (until === 'item') return { dataset, end: at + 8 }
      throw new InvalidDicomError('bad-structure', `an Item Delimitation Item at offset ${at} is outside any item of undefined length`)
    }
    if (tag === ITEM || tag === SEQUENCE_DELIMITER) throw new InvalidDicomError('bad-structure', `an item tag ${tagName(tag)} at offset ${at} is not inside a sequence`)

    // Element header: the VR (explicit, or from the dictionary) and the value length.
    let vr: string
    let length: number
    let header: number
    if (syntax.implicit) {
      length = view.getUint32(at + 4, little)
      header = 8
      vr = implicitVr(tag, length, scope)
    } else {
      const b0 = bytes[at + 4]
      const b1 = bytes[at + 5]
      if (!isVrByte(b0) || !isVrByte(b1)) throw new InvalidDicomError('bad-vr', `element ${tagName(tag)} at offset ${at} has no valid VR in an explicit VR data set`)
      vr = String.fromCharCode(b0 as number, b1 as number)
      if (SHORT_VRS.has(vr)) {
        length = view.getUint16(at + 6, little)
        header = 8
      } else { // the long VRs, and unknown VRs, which PS3.5 7.1.2 gives the long form and which are read as UN
        need(walk, at, 12, end, `element ${tagName(tag)}`)
        length = view.getUint32(at + 8, little)
        header = 12
        if (!LONG_VRS.has(vr)) vr = 'UN'
      }
    }
    const valueAt = at + header
    const elementPath = path === '' ? hex8(tag) : `${path}/${hex8(tag)}`

    // Sequences, and what is read like one.
    if (vr === 'SQ' || (vr === 'UN' && length === UNDEFINED)) {
      const itemSyntax = vr === 'UN' ? IMPLICIT_LE : syntax
      if (depth >= MAX_DEPTH) throw new InvalidDicomError('too-deep', `sequences nest deeper than ${MAX_DEPTH} levels at ${tagName(tag)}`)
      const read = readSequence(walk, valueAt, length, end, itemSyntax, scope, elementPath, depth + 1, tag)
      if (keep(group, element)) dataset[hex8(tag)] = read.items.length === 0 ? { vr: 'SQ' } : { vr: 'SQ', Value: read.items }
      at = read.end
      continue
    }

    if (length === UNDEFINED) { // encapsulated pixel data (or another encapsulated OB/OW value): skip its fragments
      if (vr !== 'OB' && vr !== 'OW') throw new InvalidDicomError('bad-structure', `element ${tagName(tag)} (${vr}) at offset ${at} has an undefined length`)
      const fragmentsEnd = skipFragments(walk, valueAt, end, little, tag)
      // Encapsulated values are OB (PS3.5 A.4): say so when an implicit VR data set could not (an explicit VR is kept as written).
      if (keep(group, element)) dataset[hex8(tag)] = { vr: syntax.implicit ? 'OB' : vr, BulkDataURI: walk.bulkDataUri(elementPath) }
      at = fragmentsEnd
      continue
    }

    need(walk, valueAt, length, end, `the value of ${tagName(tag)}`)
    const value = bytes.subarray(valueAt, valueAt + length)
    at = valueAt + length
    if (!keep(group, element)) continue

    // A UN value of a tag the dictionary knows is encoded as implicit VR little endian: read it as what it is.
    let valueVr = vr
    let valueSyntax = syntax
    if (vr === 'UN') {
      const known = resolveVr(dictionaryVr(tag, scope), scope)
      if (known !== undefined && known !== 'UN') {
        valueVr = known
        valueSyntax = IMPLICIT_LE
        if (known === 'SQ') {
          if (depth >= MAX_DEPTH) throw new InvalidDicomError('too-deep', `sequences nest deeper than ${MAX_DEPTH} levels at ${tagName(tag)}`)
          const read = readSequence(walk, valueAt, length, valueAt + length, IMPLICIT_LE, scope, elementPath, depth + 1, tag)
          dataset[hex8(tag)] = read.items.length === 0 ? { vr: 'SQ' } : { vr: 'SQ', Value: read.items }
          continue
        }
      }
    }

    const attribute = convertValue(walk, tag, valueVr, value, valueSyntax.little, scope, elementPath)
    dataset[hex8(tag)] = attribute
    remember(tag, attribute, value, scope)
  }
}

/** Elements the JSON model leaves out: meta information, group lengths, trailing padding. */
function keep (group: number, element: number): boolean {
  return group !== 0x0002 && element !== 0x0000 && ((group << 16) | element) >>> 0 !== TRAILING_PADDING
}

/** What a data set level must remember for the elements after it: character set, private creators, pixel representation. */
function remember (tag: number, attribute: DicomJsonAttribute, raw: Uint8Array, scope: Scope): void {
  const group = tag >>> 16
  const element = tag & 0xffff
  if (tag === 0x00080005) {
    scope.charset = textCodec((attribute.Value ?? []).map(v => (typeof v === 'string' ? v : '')))
  } else if (tag === 0x00280103) {
    const value = attribute.Value?.[0]
    if (typeof value === 'number') scope.pixelRepresentation = value
  } else if ((group & 1) === 1 && element >= 0x0010 && element <= 0x00ff) {
    scope.creators.set((group << 8) | element, latin1Text(raw).trim())
  }
}

/** The dictionary's VR for a tag (private tags through their creator), or undefined. */
function dictionaryVr (tag: number, scope: Scope): string | undefined {
  const group = tag >>> 16
  const element = tag & 0xffff
  if ((group & 1) === 0) return dictionary[hex8(tag)]?.vr
  if (element === 0x0000) return 'UL'
  if (element >= 0x0010 && element <= 0x00ff) return 'LO'
  const creator = scope.creators.get((group << 8) | (element >>> 8))
  if (creator === undefined) return undefined
  const low = (element & 0xff).toString(16).padStart(2, '0')
  return (dictionary[`(${hex4(group)},"${creator}",${low.toUpperCase()})`] ?? dictionary[`(${hex4(group)},"${creator}",${low})`])?.vr
}

/** Resolves the dictionary's "either" VRs as PS3.5 Annex A does for implicit VR data sets. */
function resolveVr (vr: string | undefined, scope: Scope): string | undefined {
  if (vr === undefined) return undefined
  if (vr === 'ox' || vr === 'lt') return 'OW'
  if (vr === 'xs') return scope.pixelRepresentation === 1 ? 'SS' : 'US'
  if (LONG_VRS.has(vr) || SHORT_VRS.has(vr)) return vr
  return 'UN'
}

function implicitVr (tag: number, length: number, scope: Scope): string {
  if ((tag & 0xffff) === 0x0000) return 'UL'
  const vr = resolveVr(dictionaryVr(tag, scope), scope)
  if (vr !== undefined) return vr
  if (length === UNDEFINED) return 'SQ'
  return 'UN'
}

/** Reads the items of a sequence; returns them and where the sequence ends. */
function readSequence (walk: Walk, at: number, length: number, end: number, syntax: Syntax, scope: Scope, path: string, depth: number, tag: number): { items: DicomJsonDataset[], end: number } {
  const { view } = walk
  const items: DicomJsonDataset[] = []
  const undefinedLength = length === UNDEFINED
  let sequenceEnd = end
  if (!undefinedLength) {
    need(walk, at, length, end, `sequence ${tagName(tag)}`)
    sequenceEnd = at + length
  }
  for (;;) {
    if (!undefinedLength && at === sequenceEnd) return { items, end: at }
    need(walk, at, 8, sequenceEnd, `an item of sequence ${tagName(tag)}`)
    const itemTag = ((view.getUint16(at, syntax.little) << 16) | view.getUint16(at + 2, syntax.little)) >>> 0
    const itemLength = view.getUint32(at + 4, syntax.little)
    if (itemTag === SEQUENCE_DELIMITER) {
      if (undefinedLength) return { items, end: at + 8 }
      throw new InvalidDicomError('bad-structure', `sequence ${tagName(tag)} of defined length has a Sequence Delimitation Item at offset ${at}`)
    }
    if (itemTag !== ITEM) throw new InvalidDicomError('bad-structure', `sequence ${tagName(tag)} has ${tagName(itemTag)} at offset ${at} where an item should be`)
    const itemPath = `${path}/${items.length}`
    if (itemLength === UNDEFINED) {
      const read = readDataset(walk, at + 8, sequenceEnd, syntax, scope, itemPath, depth, 'item')
      items.push(read.dataset)
      at = read.end
    } else {
      need(walk, at + 8, itemLength, sequenceEnd, `an item of sequence ${tagName(tag)}`)
      const read = readDataset(walk, at + 8, at + 8 + itemLength, syntax, scope, itemPath, depth, 'end')
      items.push(read.dataset)
      at = at + 8 + itemLength
    }
  }
}

/** Skips the fragments of an encapsulated value (Basic Offset Table, fragments, Sequence Delimitation Item). */
function skipFragments (walk: Walk, at: number, end: number, little: boolean, tag: number): number {
  const { view } = walk
  for (;;) {
    need(walk, at, 8, end, `a fragment of encapsulated ${tagName(tag)}`)
    const itemTag = ((view.getUint16(at, little) << 16) | view.getUint16(at + 2, little)) >>> 0
    const length = view.getUint32(at + 4, little)
    if (itemTag === SEQUENCE_DELIMITER) return at + 8
    if (itemTag !== ITEM || length === UNDEFINED) throw new InvalidDicomError('bad-structure', `encapsulated ${tagName(tag)} has ${tagName(itemTag)} at offset ${at} where a fragment should be`)
    need(walk, at + 8, length, end, `a fragment of encapsulated ${tagName(tag)}`)
    at += 8 + length
  }
}

function convertValue (walk: Walk, tag: number, vr: string, value: Uint8Array, little: boolean, scope: Scope, path: string): DicomJsonAttribute {
  if (value.length === 0) return { vr }
  if (BINARY_VRS.has(vr) || tag === PIXEL_DATA) {
    if (tag === PIXEL_DATA || value.length > BULK_DATA_THRESHOLD) return { vr, BulkDataURI: walk.bulkDataUri(path, value) }
    return { vr, InlineBinary: base64(little ? value : swapWords(value, WORD_SIZE[vr] ?? 1)) }
  }
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength)
  switch (vr) {
    case 'US': return numbers(vr, value, 2, i => view.getUint16(i, little))
    case 'SS': return numbers(vr, value, 2, i => view.getInt16(i, little))
    case 'UL': return numbers(vr, value, 4, i => view.getUint32(i, little))
    case 'SL': return numbers(vr, value, 4, i => view.getInt32(i, little))
    case 'FL': return numbers(vr, value, 4, i => finite(view.getFloat32(i, little)))
    case 'FD': return numbers(vr, value, 8, i => finite(view.getFloat64(i, little)))
    case 'SV': return numbers(vr, value, 8, i => bigNumber(view.getBigInt64(i, little)))
    case 'UV': return numbers(vr, value, 8, i => bigNumber(view.getBigUint64(i, little)))
    case 'AT': return numbers(vr, value, 4, i => hex4(view.getUint16(i, little)) + hex4(view.getUint16(i + 2, little)))
  }
  const text = CHARSET_VRS.has(vr) ? scope.charset.decode(value) : latin1Text(value)
  if (SINGLE_TEXT_VRS.has(vr)) {
    const single = text.replace(/[\0 ]+$/, '')
    return single === '' ? { vr } : { vr, Value: [single] }
  }
  const parts = text.split('\\').map(part => (vr === 'PN' || vr === 'UC') ? part.replace(/[\0 ]+$/, '') : part.replace(/[\0 ]+$/, '').replace(/^ +/, ''))
  if (parts.every(part => part === '')) return { vr }
  const values = parts.map(part => {
    if (part === '') return null
    if (vr === 'PN') return personName(part)
    if (vr === 'IS') return /^[+-]?\d+$/.test(part) && Number.isSafeInteger(Number(part)) ? Number(part) : part
    if (vr === 'DS') return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(part) && Number.isFinite(Number(part)) ? Number(part) : part
    return part
  })
  return { vr, Value: values }
}

function numbers (vr: string, value: Uint8Array, size: number, read: (offset: number) => unknown): DicomJsonAttribute {
  const count = Math.floor(value.length / size)
  if (count === 0) return { vr }
  const values: unknown[] = []
  for (let i = 0; i < count; i++) values.push(read(i * size))
  return { vr, Value: values }
}

function finite (n: number): number | string {
  return Number.isFinite(n) ? n : String(n)
}

function bigNumber (n: bigint): number | string {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString()
}

/** A PN value as the DICOM JSON model's object of its three component groups (PS3.18 F.2.2). */
export function personName (value: string): Record<string, string> {
  const [alphabetic = '', ideographic = '', phonetic = ''] = value.split('=')
  const name: Record<string, string> = {}
  if (alphabetic !== '') name['Alphabetic'] = alphabetic
  if (ideographic !== '') name['Ideographic'] = ideographic
  if (phonetic !== '') name['Phonetic'] = phonetic
  return name
}

function swapWords (value: Uint8Array, size: number): Uint8Array {
  if (size === 1) return value
  const out = new Uint8Array(value.length)
  const whole = value.length - (value.length % size)
  for (let i = 0; i < whole; i += size) {
    for (let j = 0; j < size; j++) out[i + j] = value[i + size - 1 - j] as number
  }
  out.set(value.subarray(whole), whole)
  return out
}

function base64 (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

const latin1Decoder = new TextDecoder('latin1')
const latin1Text = (bytes: Uint8Array): string => latin1Decoder.decode(bytes)

// ---- Character sets (PS3.3 C.12.1.1.2, PS3.5 6.1) ----

interface TextCodec { decode (bytes: Uint8Array): string }

/** Single-byte and multi-byte character sets without code extensions, by defined term. */
const CHARSETS: Record<string, string> = {
  '': 'windows-1252',
  'ISO_IR 6': 'windows-1252',
  'ISO_IR 100': 'windows-1252',
  'ISO_IR 101': 'iso-8859-2',
  'ISO_IR 109': 'iso-8859-3',
  'ISO_IR 110': 'iso-8859-4',
  'ISO_IR 144': 'iso-8859-5',
  'ISO_IR 127': 'iso-8859-6',
  'ISO_IR 126': 'iso-8859-7',
  'ISO_IR 138': 'iso-8859-8',
  'ISO_IR 148': 'iso-8859-9',
  'ISO_IR 203': 'iso-8859-15',
  'ISO_IR 13': 'shift_jis',
  'ISO_IR 166': 'windows-874',
  'ISO_IR 192': 'utf-8',
  GB18030: 'gb18030',
  GBK: 'gbk'
}

type G0 = 'ascii' | 'jisx0208' | 'jisx0212'

/** ISO 2022 defined terms: what each sets up as its initial G0 and G1. */
const ISO2022_TERMS: Record<string, { g0: G0, g1?: string }> = {
  'ISO 2022 IR 6': { g0: 'ascii' },
  'ISO 2022 IR 100': { g0: 'ascii', g1: 'windows-1252' },
  'ISO 2022 IR 101': { g0: 'ascii', g1: 'iso-8859-2' },
  'ISO 2022 IR 109': { g0: 'ascii', g1: 'iso-8859-3' },
  'ISO 2022 IR 110': { g0: 'ascii', g1: 'iso-8859-4' },
  'ISO 2022 IR 144': { g0: 'ascii', g1: 'iso-8859-5' },
  'ISO 2022 IR 127': { g0: 'ascii', g1: 'iso-8859-6' },
  'ISO 2022 IR 126': { g0: 'ascii', g1: 'iso-8859-7' },
  'ISO 2022 IR 138': { g0: 'ascii', g1: 'iso-8859-8' },
  'ISO 2022 IR 148': { g0: 'ascii', g1: 'iso-8859-9' },
  'ISO 2022 IR 203': { g0: 'ascii', g1: 'iso-8859-15' },
  'ISO 2022 IR 13': { g0: 'ascii', g1: 'shift_jis' },
  'ISO 2022 IR 166': { g0: 'ascii', g1: 'windows-874' },
  'ISO 2022 IR 87': { g0: 'jisx0208' },
  'ISO 2022 IR 159': { g0: 'jisx0212' },
  'ISO 2022 IR 149': { g0: 'ascii', g1: 'euc-kr' },
  'ISO 2022 IR 58': { g0: 'ascii', g1: 'gbk' }
}

/** Escape sequences (after ESC) and the G0 or G1 set each one designates. */
const ESCAPES: Array<{ sequence: number[], g0?: G0, g1?: string }> = [
  { sequence: [0x28, 0x42], g0: 'ascii' }, // ( B   ISO-IR 6
  { sequence: [0x28, 0x4a], g0: 'ascii' }, // ( J   JIS X 0201 romaji
  { sequence: [0x24, 0x42], g0: 'jisx0208' }, // $ B   ISO-IR 87
  { sequence: [0x24, 0x40], g0: 'jisx0208' }, // $ @   JIS C 6226-1978
  { sequence: [0x24, 0x28, 0x44], g0: 'jisx0212' }, // $ ( D ISO-IR 159
  { sequence: [0x29, 0x49], g1: 'shift_jis' }, // ) I   ISO-IR 13 katakana
  { sequence: [0x24, 0x29, 0x43], g1: 'euc-kr' }, // $ ) C ISO-IR 149
  { sequence: [0x24, 0x29, 0x41], g1: 'gbk' }, // $ ) A ISO-IR 58
  { sequence: [0x2d, 0x41], g1: 'windows-1252' },
  { sequence: [0x2d, 0x42], g1: 'iso-8859-2' },
  { sequence: [0x2d, 0x43], g1: 'iso-8859-3' },
  { sequence: [0x2d, 0x44], g1: 'iso-8859-4' },
  { sequence: [0x2d, 0x4c], g1: 'iso-8859-5' },
  { sequence: [0x2d, 0x47], g1: 'iso-8859-6' },
  { sequence: [0x2d, 0x46], g1: 'iso-8859-7' },
  { sequence: [0x2d, 0x48], g1: 'iso-8859-8' },
  { sequence: [0x2d, 0x4d], g1: 'iso-8859-9' },
  { sequence: [0x2d, 0x62], g1: 'iso-8859-15' },
  { sequence: [0x2d, 0x54], g1: 'windows-874' }
]

const decoders = new Map<string, TextDecoder>()
function decoder (label: string): TextDecoder {
  let found = decoders.get(label)
  if (found === undefined) {
    found = new TextDecoder(label)
    decoders.set(label, found)
  }
  return found
}

/** The codec for a Specific Character Set value list; unknown terms fall back to the default repertoire. */
function textCodec (terms: string[]): TextCodec {
  const normalized = terms.map(term => term.trim().toUpperCase().replace(/^ISO[_ ]IR[_ ](\d+)$/, 'ISO_IR $1').replace(/^ISO[_ ]2022[_ ]IR[_ ](\d+)$/, 'ISO 2022 IR $1'))
  const extended = normalized.some(term => term.startsWith('ISO 2022'))
  if (!extended) return decoder(CHARSETS[normalized[0] ?? ''] ?? 'windows-1252')
  const first = ISO2022_TERMS[normalized[0] ?? ''] ?? { g0: 'ascii' as G0 }
  return { decode: bytes => decodeIso2022(bytes, first.g0, first.g1 ?? 'windows-1252') }
}

/** Decodes text with ISO 2022 escape sequences switching G0 (bytes below 0x80) and G1 (0x80 and above). */
function decodeIso2022 (bytes: Uint8Array, initialG0: G0, initialG1: string): string {
  let g0 = initialG0
  let g1 = initialG1
  let out = ''
  let i = 0
  while (i < bytes.length) {
    if (bytes[i] === 0x1b) {
      const designation = ESCAPES.find(e => e.sequence.every((b, k) => bytes[i + 1 + k] === b))
      if (designation === undefined) {
        i++
        continue
      }
      if (designation.g0 !== undefined) g0 = designation.g0
      if (designation.g1 !== undefined) g1 = designation.g1
      i += 1 + designation.sequence.length
      continue
    }
    let j = i
    while (j < bytes.length && bytes[j] !== 0x1b) j++
    out += decodeRun(bytes.subarray(i, j), g0, g1)
    i = j
  }
  return out
}

function decodeRun (run: Uint8Array, g0: G0, g1: string): string {
  let out = ''
  let i = 0
  while (i < run.length) {
    let j = i
    const high = (run[i] as number) >= 0x80
    while (j < run.length && ((run[j] as number) >= 0x80) === high) j++
    const part = run.subarray(i, j)
    out += high ? decoder(g1).decode(part) : g0 === 'ascii' ? latin1Text(part) : decodeJis(part, g0)
    i = j
  }
  return out
}

/** JIS X 0208 / 0212 two-byte text in G0, decoded through its EUC-JP form. */
function decodeJis (part: Uint8Array, g0: 'jisx0208' | 'jisx0212'): string {
  const euc: number[] = []
  for (let i = 0; i < part.length; i++) {
    const b = part[i] as number
    const next = part[i + 1]
    if (b >= 0x21 && b <= 0x7e && next !== undefined && next >= 0x21 && next <= 0x7e) {
      if (g0 === 'jisx0212') euc.push(0x8f)
      euc.push(b | 0x80, next | 0x80)
      i++
    } else {
      euc.push(b)
    }
  }
  return decoder('euc-jp').decode(new Uint8Array(euc))
}
