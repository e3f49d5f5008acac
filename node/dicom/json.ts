/**
 * The DICOM JSON model (PS3.18 F.2) of one stored instance: the metadata WADO-RS and QIDO-RS answer with.
 *
 * The file is read through the one data set reader (reader.ts, file.ts), with dcmjs's data dictionary for
 * the VRs of implicit VR data sets, rather than by dcmjs's `DicomMessage.readFile`: that reader copies every
 * value (pixel data included), finds the end of undefined-length items by scanning for delimiter bytes (which
 * binary values may contain), cannot read a private sequence encoded as UN with undefined length, nor a nested
 * private sequence in implicit VR, nor a file whose meta header lacks the transfer syntax, and misreads data
 * sets whose encoding differs from the declared transfer syntax. Here bulk data is never read into memory,
 * every length is bounds-checked, and the file can come in chunks (`dicomJsonOf`): an instance of any size is
 * converted in bounded memory. Any input either converts or throws `InvalidDicomError` (./errors.ts).
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
 *   a text or number value over 1 MiB is `{ vr, BulkDataURI }` too;
 * - text is decoded with the Specific Character Set (0008,0005), ISO 2022 code extensions included;
 * - a UN element whose tag the dictionary knows is decoded with its real VR; a UN element of undefined
 *   length is a sequence in implicit VR little endian (PS3.5 6.2.2) and comes out as SQ.
 */
import { createRequire } from 'node:module'
import { InvalidDicomError } from './errors.ts'
import { Part10Reader } from './file.ts'
import { withoutTrailingPadding } from './padding.ts'
import {
  type DatasetVisitor, type ElementHeader, hex4, hex8, IMPLICIT_LITTLE, LONG_VRS, PIXEL_DATA, readDataset, SHORT_VRS, type Syntax, tagName,
  UNDEFINED_LENGTH, type ValueAction
} from './reader.ts'

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
 */
export type BulkDataUriFor = (path: string) => string

/** Binary values longer than this many bytes become BulkDataURI; shorter ones InlineBinary. */
export const BULK_DATA_THRESHOLD = 1024
/** Text and number values longer than this become BulkDataURI (PS3.18 F.2.6 allows it for them too). */
const LONG_VALUE_THRESHOLD = 1024 * 1024
/** A bulk data value is read into memory whole to be served: at most this long. */
export const MAX_BULK_VALUE_BYTES = 64 * 1024 * 1024
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

const TRAILING_PADDING = 0xfffcfffc

const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN'])
/** Bytes per word of a binary VR, for byte-swapping big endian values to the little endian InlineBinary. */
const WORD_SIZE: Record<string, number> = { OW: 2, OF: 4, OL: 4, OD: 8, OV: 8 }
/** Text VRs that are one value, never split at backslashes; leading spaces are significant. */
const SINGLE_TEXT_VRS = new Set(['LT', 'ST', 'UT', 'UR'])
/** Text VRs decoded with the Specific Character Set; the others are in the default repertoire. */
const CHARSET_VRS = new Set(['SH', 'LO', 'ST', 'LT', 'UC', 'UT', 'PN'])

/** What a data set level knows while it is read: inherited by its items unless they say otherwise. */
interface Scope {
  charset: TextCodec
  creators: Map<number, string>
  pixelRepresentation: number
}

/** A data set level being filled: the top level or an item. */
interface Level { kind: 'level', dataset: DicomJsonDataset, scope: Scope, path: string }
/** A sequence being read, its items so far. */
interface Sequence { kind: 'sequence', key: string | undefined, items: DicomJsonDataset[], path: string, depth: number }

/** An element being collected, with the VR to read it as (a known tag encoded as UN is read as what it is). */
interface Wanted { vr: string, syntax: Syntax }

/**
 * Builds the DICOM JSON model of a data set from the reader's events: every element, its values collected
 * unless they are bulk data, sequences and items nested as they come.
 */
class JsonVisitor implements DatasetVisitor {
  readonly root: DicomJsonDataset = {}
  readonly #stack: Array<Level | Sequence>
  readonly #bulkDataUri: BulkDataUriFor
  /** how deep this visitor's top level is (a UN sequence is read by a visitor of its own) */
  readonly #depthOffset: number
  readonly #wanted = new Map<number, Wanted>()
  /** a tag to be read as a sequence whatever the dictionary says (the element a UN sequence is wrapped in) */
  readonly #forceSequence: number | undefined

  constructor (bulkDataUri: BulkDataUriFor, scope: Scope, path = '', depthOffset = 0, forceSequence?: number) {
    this.#bulkDataUri = bulkDataUri
    this.#stack = [{ kind: 'level', dataset: this.root, scope, path }]
    this.#depthOffset = depthOffset
    this.#forceSequence = forceSequence
  }

  #level (): Level {
    for (let i = this.#stack.length - 1; i >= 0; i--) {
      const entry = this.#stack[i] as Level | Sequence
      if (entry.kind === 'level') return entry
    }
    throw new Error('no data set level')
  }

  #path (tag: number): string {
    const { path } = this.#level()
    return path === '' ? hex8(tag) : `${path}/${hex8(tag)}`
  }

  implicitVr (el: ElementHeader): string | undefined {
    if (el.depth === 0 && el.tag === this.#forceSequence) return 'SQ'
    return implicitVr(el.tag, el.length, this.#level().scope)
  }

  element (el: ElementHeader): ValueAction {
    const group = el.tag >>> 16
    if (!keep(group, el.tag & 0xffff)) return 'skip'
    const level = this.#level()
    const vr = el.vr ?? this.implicitVr(el) ?? 'UN'
    const key = hex8(el.tag)
    if (el.tag === PIXEL_DATA) {
      level.dataset[key] = { vr, BulkDataURI: this.#bulkDataUri(this.#path(el.tag)) }
      return 'skip'
    }
    if (el.length === 0) {
      level.dataset[key] = { vr }
      return 'skip'
    }
    // A UN value of a tag the dictionary knows is encoded as implicit VR little endian: read it as what it is.
    if (vr === 'UN') {
      const known = resolveVr(dictionaryVr(el.tag, level.scope), level.scope)
      if (known !== undefined && known !== 'UN' && el.length <= LONG_VALUE_THRESHOLD) {
        this.#wanted.set(el.valueOffset, { vr: known, syntax: IMPLICIT_LITTLE })
        return 'collect'
      }
    }
    const binary = BINARY_VRS.has(vr)
    if (el.length > (binary ? BULK_DATA_THRESHOLD : LONG_VALUE_THRESHOLD)) {
      level.dataset[key] = { vr, BulkDataURI: this.#bulkDataUri(this.#path(el.tag)) }
      return 'skip'
    }
    this.#wanted.set(el.valueOffset, { vr, syntax: el.syntax })
    return 'collect'
  }

  value (el: ElementHeader, value: Uint8Array): void {
    const wanted = this.#wanted.get(el.valueOffset) as Wanted
    this.#wanted.delete(el.valueOffset)
    const level = this.#level()
    const key = hex8(el.tag)
    if (wanted.vr === 'SQ') {
      level.dataset[key] = this.#unSequence(el, value, level)
      return
    }
    const attribute = convertValue(el.tag, wanted.vr, value, wanted.syntax.little, level.scope, this.#path(el.tag), this.#bulkDataUri)
    level.dataset[key] = attribute
    remember(el.tag, attribute, value, level.scope)
  }

  /** A sequence encoded as UN of defined length: its items are read on their own, in implicit VR little endian. */
  #unSequence (el: ElementHeader, value: Uint8Array, level: Level): DicomJsonAttribute {
    const depth = this.#depthOffset + el.depth + 1
    if (depth >= MAX_DEPTH) throw new InvalidDicomError('too-deep', `sequences nest deeper than ${MAX_DEPTH} levels at ${tagName(el.tag)}`)
    // Wrapped as the one element of a data set, read as a sequence whatever its tag.
    const wrapped = Buffer.alloc(8 + value.byteLength)
    wrapped.writeUInt16LE(el.tag >>> 16, 0)
    wrapped.writeUInt16LE(el.tag & 0xffff, 2)
    wrapped.writeUInt32LE(value.byteLength, 4)
    wrapped.set(value, 8)
    const nested = new JsonVisitor(this.#bulkDataUri, level.scope, level.path, depth - 1, el.tag)
    readDataset(wrapped, IMPLICIT_LITTLE, nested, { maxDepth: MAX_DEPTH - depth + 1, ordered: false })
    return nested.root[hex8(el.tag)] ?? { vr: 'SQ' }
  }

  sequenceStart (el: ElementHeader): void {
    if (this.#depthOffset + el.depth + 1 > MAX_DEPTH) throw new InvalidDicomError('too-deep', `sequences nest deeper than ${MAX_DEPTH} levels at ${tagName(el.tag)}`)
    const kept = keep(el.tag >>> 16, el.tag & 0xffff)
    this.#stack.push({ kind: 'sequence', key: kept ? hex8(el.tag) : undefined, items: [], path: this.#path(el.tag), depth: el.depth })
  }

  itemStart (): void {
    const sequence = this.#stack.at(-1) as Sequence
    const parent = this.#level().scope
    this.#stack.push({
      kind: 'level', dataset: {}, path: `${sequence.path}/${sequence.items.length}`,
      scope: { charset: parent.charset, creators: new Map(), pixelRepresentation: parent.pixelRepresentation }
    })
  }

  itemEnd (): void {
    const level = this.#stack.pop() as Level
    ;(this.#stack.at(-1) as Sequence).items.push(level.dataset)
  }

  sequenceEnd (): void {
    const sequence = this.#stack.pop() as Sequence
    if (sequence.key === undefined) return
    this.#level().dataset[sequence.key] = sequence.items.length === 0 ? { vr: 'SQ' } : { vr: 'SQ', Value: sequence.items }
  }

  encapsulatedStart (el: ElementHeader): void {
    if (!keep(el.tag >>> 16, el.tag & 0xffff)) return
    // Encapsulated values are OB (PS3.5 A.4): say so when an implicit VR data set could not (an explicit VR is kept as written).
    this.#level().dataset[hex8(el.tag)] = { vr: el.vr ?? 'OB', BulkDataURI: this.#bulkDataUri(this.#path(el.tag)) }
  }
}

const reader = (visitor: () => DatasetVisitor, inflate: 'sync' | 'async'): Part10Reader => new Part10Reader({
  dataset: () => visitor(),
  inflate,
  maxInflatedBytes: MAX_INFLATED_BYTES,
  limits: { maxDepth: MAX_DEPTH, maxValueBytes: MAX_BULK_VALUE_BYTES, ordered: false },
  lenient: true
})

const newScope = (): Scope => ({ charset: textCodec([]), creators: new Map(), pixelRepresentation: 0 })

/**
 * Converts a DICOM Part 10 file (128-byte preamble, "DICM", File Meta Information, data set) held in memory
 * into the DICOM JSON model of its data set. Throws InvalidDicomError, with what is wrong and where, when it cannot.
 */
export function instanceToDicomJson (part10: Uint8Array, bulkDataUri: BulkDataUriFor): DicomJsonDataset {
  const visitor = new JsonVisitor(bulkDataUri, newScope())
  const file = reader(() => visitor, 'sync')
  file.push(part10)
  file.endSync()
  return visitor.root
}

/**
 * A file in pieces: its bytes, or (a number) a count of bytes that lie inside one value the reader skips (the
 * pixel data), not read at all; the function given such a count reads them when it must (see `dicomJsonOf`).
 */
export type FilePiece = Uint8Array | { skip: number, read: () => Promise<Uint8Array> }

/**
 * The same for a file read in pieces (a stored instance, chunk by chunk), in bounded memory; a deflated data
 * set inflates off the event loop. A piece to skip is read only if the reader is not inside a skipped value there.
 */
export async function dicomJsonOf (pieces: AsyncIterable<FilePiece>, bulkDataUri: BulkDataUriFor): Promise<DicomJsonDataset> {
  const visitor = new JsonVisitor(bulkDataUri, newScope())
  const file = reader(() => visitor, 'async')
  for await (const piece of pieces) {
    if (piece instanceof Uint8Array) file.push(piece)
    else if (!file.skip(piece.skip)) file.push(await piece.read())
  }
  await file.end()
  return visitor.root
}

/**
 * The bytes of the bulk data value at `path` (as BulkDataURIs name it), read from a file in pieces; undefined
 * when there is none. At most MAX_BULK_VALUE_BYTES (RangeError past that).
 */
export async function bulkDataOf (pieces: AsyncIterable<Uint8Array>, path: string): Promise<Uint8Array | undefined> {
  let found: Uint8Array | undefined
  let tooLarge = 0
  const paths: string[] = []
  const items: number[] = []
  const here = (tag: number): string => [...paths, hex8(tag)].join('/')
  const visitor: DatasetVisitor = {
    element: el => {
      if (here(el.tag) !== path) return 'skip'
      if (el.length > MAX_BULK_VALUE_BYTES) {
        tooLarge = el.length
        return 'skip'
      }
      return 'collect'
    },
    value: (_el, value) => { found = value },
    sequenceStart: el => { paths.push(hex8(el.tag)); items.push(0) },
    itemStart: () => { paths.push(String((items.at(-1) as number))) },
    itemEnd: () => { paths.pop(); items[items.length - 1] = (items.at(-1) as number) + 1 },
    sequenceEnd: () => { paths.pop(); items.pop() }
  }
  const file = reader(() => visitor, 'async')
  for await (const piece of pieces) file.push(piece)
  await file.end()
  if (tooLarge > 0) throw new RangeError(`the value at ${path} is ${tooLarge} bytes, over the ${MAX_BULK_VALUE_BYTES} served at once`)
  return found
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
  if (length === UNDEFINED_LENGTH) return 'SQ'
  return 'UN'
}

function convertValue (tag: number, vr: string, value: Uint8Array, little: boolean, scope: Scope, path: string, bulkDataUri: BulkDataUriFor): DicomJsonAttribute {
  if (value.length === 0) return { vr }
  if (BINARY_VRS.has(vr) || tag === PIXEL_DATA) {
    if (tag === PIXEL_DATA || value.length > BULK_DATA_THRESHOLD) return { vr, BulkDataURI: bulkDataUri(path) }
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
    const single = withoutTrailingPadding(text)
    return single === '' ? { vr } : { vr, Value: [single] }
  }
  const keepsLeadingSpaces = vr === 'PN' || vr === 'UC'
  const parts = text.split('\\').map(part => {
    const value = withoutTrailingPadding(part)
    return keepsLeadingSpaces ? value : value.replace(/^ +/, '')
  })
  if (parts.every(part => part === '')) return { vr }
  const values = parts.map(part => {
    if (part === '') return null
    if (vr === 'PN') return personName(part)
    if (vr === 'IS') return /^[+-]?\d+$/.test(part) && Number.isSafeInteger(Number(part)) ? Number(part) : part
    if (vr === 'DS') return DECIMAL_STRING.test(part) && Number.isFinite(Number(part)) ? Number(part) : part
    return part
  })
  return { vr, Value: values }
}

/** A DS value (PS3.5 6.2). `\d+(\.\d*)?`, not `\d+\.?\d*`: that backtracks quadratically on a run of digits. */
const DECIMAL_STRING = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

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
