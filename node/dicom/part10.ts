/**
 * Reading and writing DICOM Part 10 files, strictly enough to trust what is stored.
 *
 * `parsePart10` walks the whole data set (sequences, items, encapsulated pixel data, every transfer syntax
 * radmesh accepts, deflate included) and checks that every declared length fits inside the file: a
 * parse that ends early is a truncated file and is refused, never indexed (ENGINEERING.md: dcmjs accepts
 * truncated files). On the way it collects the top-level attributes the index needs and where the pixel
 * data lies, so WADO-RS frames need no second parser.
 */
import { inflateRawSync } from 'node:zlib'
import { InvalidDicomError } from './errors.ts'
import { ENCAPSULATED_SYNTAXES, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, SUPPORTED_TRANSFER_SYNTAXES, TRANSFER_SYNTAX, uidProblem } from './uids.ts'

export const PREAMBLE_LENGTH = 128
const DICM = [0x44, 0x49, 0x43, 0x4d]
/** Nested sequences deeper than this are an attack, not an image. */
const MAX_DEPTH = 32
const UNDEFINED = 0xffffffff

/** VRs whose explicit-VR header has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'])
const KNOWN_VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US', ...LONG_VRS])

/**
 * Top-level attributes collected for the index and for rendering frames, with the VR used when the
 * transfer syntax is implicit (explicit files carry their own VR).
 */
export const COLLECTED_ATTRIBUTES: Record<string, string> = {
  '00080005': 'CS', // SpecificCharacterSet
  '00080016': 'UI', // SOPClassUID
  '00080018': 'UI', // SOPInstanceUID
  '00080020': 'DA', // StudyDate
  '00080030': 'TM', // StudyTime
  '00080050': 'SH', // AccessionNumber
  '00080060': 'CS', // Modality
  '00080090': 'PN', // ReferringPhysicianName
  '00081030': 'LO', // StudyDescription
  '0008103E': 'LO', // SeriesDescription
  '00100010': 'PN', // PatientName
  '00100020': 'LO', // PatientID
  '00100030': 'DA', // PatientBirthDate
  '00100040': 'CS', // PatientSex
  '00180015': 'CS', // BodyPartExamined
  '0020000D': 'UI', // StudyInstanceUID
  '0020000E': 'UI', // SeriesInstanceUID
  '00200010': 'SH', // StudyID
  '00200011': 'IS', // SeriesNumber
  '00200013': 'IS', // InstanceNumber
  '00280002': 'US', // SamplesPerPixel
  '00280004': 'CS', // PhotometricInterpretation
  '00280008': 'IS', // NumberOfFrames
  '00280010': 'US', // Rows
  '00280011': 'US', // Columns
  '00280100': 'US', // BitsAllocated
  '00280103': 'US', // PixelRepresentation
  '00400244': 'DA' // PerformedProcedureStepStartDate
}

export type AttributeValue = string | string[]

export type PixelDataLocation =
  | { encapsulated: false, offset: number, length: number }
  | { encapsulated: true, offsetTable: number[], fragments: Array<{ offset: number, length: number }> }

export interface DicomInstance {
  transferSyntaxUid: string
  sopClassUid: string
  sopInstanceUid: string
  studyInstanceUid: string
  seriesInstanceUid: string
  /** where the data set begins in the file (after the File Meta Information) */
  datasetOffset: number
  /** top-level attributes from COLLECTED_ATTRIBUTES, keyed by 8-hex tag */
  attributes: Record<string, AttributeValue>
  /** offsets are into `datasetOf(file, instance)` (the inflated data set for deflate) */
  pixelData?: PixelDataLocation
  /** the preamble starts like a Windows or ELF executable (CVE-2019-11687) */
  executablePreamble: boolean
}

interface Syntax { explicit: boolean, little: boolean }

const syntaxOf = (uid: string): Syntax => ({
  explicit: uid !== TRANSFER_SYNTAX.implicitLittle,
  little: uid !== TRANSFER_SYNTAX.explicitBig
})

const hex4 = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0')
const tagName = (group: number, element: number): string => `(${hex4(group)},${hex4(element)})`

class Reader {
  readonly bytes: Uint8Array
  readonly view: DataView
  readonly little: boolean
  constructor (bytes: Uint8Array, little: boolean) {
    this.bytes = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.little = little
  }

  need (offset: number, count: number, what: string): void {
    if (offset + count > this.bytes.byteLength) {
      throw new InvalidDicomError('truncated', `${what} runs past the end of the data (needs ${offset + count - this.bytes.byteLength} more bytes): the file is truncated`)
    }
  }

  u16 (offset: number): number { return this.view.getUint16(offset, this.little) }
  u32 (offset: number): number { return this.view.getUint32(offset, this.little) }
}

interface Element { group: number, element: number, vr: string | undefined, length: number, valueOffset: number }

function readElementHeader (reader: Reader, offset: number, syntax: Syntax): Element {
  reader.need(offset, 8, 'an element header')
  const group = reader.u16(offset)
  const element = reader.u16(offset + 2)
  // Item and delimitation tags have no VR in any syntax.
  if (group === 0xfffe) return { group, element, vr: undefined, length: reader.u32(offset + 4), valueOffset: offset + 8 }
  if (!syntax.explicit) return { group, element, vr: undefined, length: reader.u32(offset + 4), valueOffset: offset + 8 }
  const vr = String.fromCharCode(reader.bytes[offset + 4] as number, reader.bytes[offset + 5] as number)
  if (!KNOWN_VRS.has(vr)) {
    throw new InvalidDicomError('bad-vr', `element ${tagName(group, element)} has VR "${vr.replace(/[^\x20-\x7e]/g, '?')}", which is not a DICOM VR`)
  }
  if (LONG_VRS.has(vr)) {
    reader.need(offset, 12, `the header of ${tagName(group, element)}`)
    return { group, element, vr, length: reader.u32(offset + 8), valueOffset: offset + 12 }
  }
  return { group, element, vr, length: reader.u16(offset + 6), valueOffset: offset + 8 }
}

interface WalkResult { attributes: Record<string, AttributeValue>, pixelData?: PixelDataLocation, end: number }

/** Walks a data set from `start` to `end` (or to a delimiter when `untilDelimiter`), checking every length. */
function walk (reader: Reader, start: number, end: number, syntax: Syntax, depth: number, collect: boolean, characterSet: { utf8: boolean }): WalkResult {
  if (depth > MAX_DEPTH) throw new InvalidDicomError('too-deep', `sequences nested more than ${MAX_DEPTH} deep`)
  const attributes: Record<string, AttributeValue> = {}
  let pixelData: PixelDataLocation | undefined
  let offset = start
  let previousTag = -1
  while (offset < end) {
    const el = readElementHeader(reader, offset, syntax)
    const tag = el.group * 0x10000 + el.element
    if (el.group === 0xfffe && el.element === 0xe00d) return { attributes, ...(pixelData === undefined ? {} : { pixelData }), end: el.valueOffset }
    if (el.group === 0xfffe) throw new InvalidDicomError('bad-structure', `unexpected ${tagName(el.group, el.element)} inside a data set`)
    if (tag < previousTag && depth === 0) throw new InvalidDicomError('bad-structure', `element ${tagName(el.group, el.element)} is out of order: the data is damaged`)
    previousTag = tag
    const isSequence = el.vr === 'SQ' || (el.length === UNDEFINED && el.vr !== 'OB' && el.vr !== 'OW' && !(el.group === 0x7fe0 && el.element === 0x0010))
    if (el.group === 0x7fe0 && el.element === 0x0010 && depth === 0) {
      if (el.length === UNDEFINED) {
        const encapsulated = readFragments(reader, el.valueOffset)
        pixelData = { encapsulated: true, offsetTable: encapsulated.offsetTable, fragments: encapsulated.fragments }
        offset = encapsulated.end
      } else {
        reader.need(el.valueOffset, el.length, `Pixel Data ${tagName(el.group, el.element)} (${el.length} bytes)`)
        pixelData = { encapsulated: false, offset: el.valueOffset, length: el.length }
        offset = el.valueOffset + el.length
      }
      continue
    }
    if (isSequence) {
      // UN with undefined length holds implicit little endian items (PS3.5 6.2.2).
      const itemSyntax = el.vr === 'UN' ? { explicit: false, little: true } : syntax
      offset = readSequence(reader, el, itemSyntax, depth, characterSet)
      continue
    }
    if (el.length === UNDEFINED) {
      // OB/OW with undefined length outside Pixel Data: encapsulated too (e.g. in icon sequences).
      offset = readFragments(reader, el.valueOffset).end
      continue
    }
    reader.need(el.valueOffset, el.length, `element ${tagName(el.group, el.element)} (${el.length} bytes)`)
    if (collect) {
      const key = `${hex4(el.group)}${hex4(el.element)}`
      const vr = el.vr ?? COLLECTED_ATTRIBUTES[key]
      if (key === '00080005') {
        characterSet.utf8 = /ISO_IR 192/.test(Buffer.from(reader.bytes.subarray(el.valueOffset, el.valueOffset + el.length)).toString('latin1'))
      }
      if (key in COLLECTED_ATTRIBUTES && vr !== undefined) attributes[key] = decodeValue(reader, el.valueOffset, el.length, vr, characterSet.utf8)
    }
    offset = el.valueOffset + el.length
  }
  if (offset !== end && end !== Number.POSITIVE_INFINITY) {
    throw new InvalidDicomError('truncated', `the last element runs ${offset - end} bytes past the end of its container: the file is truncated or damaged`)
  }
  return { attributes, ...(pixelData === undefined ? {} : { pixelData }), end: offset }
}

function readSequence (reader: Reader, el: Element, syntax: Syntax, depth: number, characterSet: { utf8: boolean }): number {
  const defined = el.length !== UNDEFINED
  const end = defined ? el.valueOffset + el.length : reader.bytes.byteLength
  if (defined) reader.need(el.valueOffset, el.length, `sequence ${tagName(el.group, el.element)} (${el.length} bytes)`)
  let offset = el.valueOffset
  while (defined ? offset < end : true) {
    reader.need(offset, 8, `an item of ${tagName(el.group, el.element)}`)
    const group = reader.u16(offset)
    const element = reader.u16(offset + 2)
    const length = reader.u32(offset + 4)
    if (group === 0xfffe && element === 0xe0dd) return offset + 8
    if (group !== 0xfffe || element !== 0xe000) {
      throw new InvalidDicomError('bad-structure', `sequence ${tagName(el.group, el.element)} holds ${tagName(group, element)} where an item should be`)
    }
    if (length === UNDEFINED) {
      offset = walk(reader, offset + 8, Number.POSITIVE_INFINITY, syntax, depth + 1, false, characterSet).end
    } else {
      reader.need(offset + 8, length, `an item of ${tagName(el.group, el.element)} (${length} bytes)`)
      walk(reader, offset + 8, offset + 8 + length, syntax, depth + 1, false, characterSet)
      offset = offset + 8 + length
    }
  }
  if (offset !== end) throw new InvalidDicomError('bad-structure', `sequence ${tagName(el.group, el.element)}: its items overrun its length`)
  return offset
}

function readFragments (reader: Reader, start: number): { offsetTable: number[], fragments: Array<{ offset: number, length: number }>, end: number } {
  const fragments: Array<{ offset: number, length: number }> = []
  let offsetTable: number[] | undefined
  let offset = start
  while (true) {
    reader.need(offset, 8, 'a pixel data fragment header')
    const group = reader.u16(offset)
    const element = reader.u16(offset + 2)
    const length = reader.u32(offset + 4)
    if (group === 0xfffe && element === 0xe0dd) return { offsetTable: offsetTable ?? [], fragments, end: offset + 8 }
    if (group !== 0xfffe || element !== 0xe000) throw new InvalidDicomError('bad-structure', `encapsulated pixel data holds ${tagName(group, element)} where a fragment should be`)
    if (length === UNDEFINED) throw new InvalidDicomError('bad-structure', 'a pixel data fragment has undefined length')
    reader.need(offset + 8, length, `a pixel data fragment (${length} bytes)`)
    if (offsetTable === undefined) {
      offsetTable = []
      for (let i = 0; i + 4 <= length; i += 4) offsetTable.push(reader.u32(offset + 8 + i))
    } else {
      fragments.push({ offset: offset + 8, length })
    }
    offset += 8 + length
  }
}

const textDecoderUtf8 = new TextDecoder('utf-8')

function decodeValue (reader: Reader, offset: number, length: number, vr: string, utf8: boolean): AttributeValue {
  const raw = reader.bytes.subarray(offset, offset + length)
  if (vr === 'US') {
    const values: string[] = []
    for (let i = 0; i + 2 <= length; i += 2) values.push(String(reader.u16(offset + i)))
    return values.length === 1 ? values[0] as string : values
  }
  if (vr === 'UL') {
    const values: string[] = []
    for (let i = 0; i + 4 <= length; i += 4) values.push(String(reader.u32(offset + i)))
    return values.length === 1 ? values[0] as string : values
  }
  // Text VRs: trailing spaces (and NUL after UIDs) are padding; backslash separates values.
  const text = (utf8 && (vr === 'PN' || vr === 'LO' || vr === 'SH' || vr === 'LT' || vr === 'ST' || vr === 'UT'))
    ? textDecoderUtf8.decode(raw)
    : Buffer.from(raw).toString('latin1')
  const values = text.split('\\').map(v => v.replace(/[\0 ]+$/, '').replace(/^ +/, ''))
  return values.length === 1 ? values[0] as string : values
}

function isExecutable (file: Uint8Array): boolean {
  return (file[0] === 0x4d && file[1] === 0x5a) || // MZ: DOS/Windows PE
    (file[0] === 0x7f && file[1] === 0x45 && file[2] === 0x4c && file[3] === 0x46) || // ELF
    (file[0] === 0xcf && file[1] === 0xfa && file[2] === 0xed && file[3] === 0xfe) // Mach-O
}

interface FileMeta { transferSyntaxUid: string, end: number }

function readFileMeta (file: Uint8Array): FileMeta {
  if (file.byteLength < PREAMBLE_LENGTH + 4 || DICM.some((b, i) => file[PREAMBLE_LENGTH + i] !== b)) {
    throw new InvalidDicomError('not-part10', 'not a DICOM Part 10 file: no "DICM" after the 128-byte preamble')
  }
  const reader = new Reader(file, true)
  const explicit = { explicit: true, little: true }
  let offset = PREAMBLE_LENGTH + 4
  const meta: Record<string, string> = {}
  while (offset + 8 <= file.byteLength && reader.u16(offset) === 0x0002) {
    const el = readElementHeader(reader, offset, explicit)
    if (el.length === UNDEFINED) throw new InvalidDicomError('bad-meta', `File Meta Information element ${tagName(el.group, el.element)} has undefined length`)
    reader.need(el.valueOffset, el.length, `File Meta Information element ${tagName(el.group, el.element)}`)
    if (el.vr === 'UI') meta[hex4(el.element)] = Buffer.from(file.subarray(el.valueOffset, el.valueOffset + el.length)).toString('latin1').replace(/[\0 ]+$/, '')
    offset = el.valueOffset + el.length
  }
  const transferSyntaxUid = meta['0010']
  if (transferSyntaxUid === undefined || transferSyntaxUid === '') {
    throw new InvalidDicomError('bad-meta', 'the File Meta Information has no Transfer Syntax UID (0002,0010)')
  }
  return { transferSyntaxUid, end: offset }
}

/** The data set bytes the pixel data offsets refer to: inflated for deflate, else a view of the file. */
export function datasetOf (file: Uint8Array, instance: Pick<DicomInstance, 'transferSyntaxUid' | 'datasetOffset'>): Uint8Array {
  const raw = file.subarray(instance.datasetOffset)
  if (instance.transferSyntaxUid !== TRANSFER_SYNTAX.deflatedExplicitLittle) return raw
  try {
    return inflateRawSync(raw, { maxOutputLength: 4 * 1024 * 1024 * 1024 - 1 })
  } catch (error) {
    throw new InvalidDicomError('bad-deflate', `the deflated data set does not inflate: ${(error as Error).message}`)
  }
}

function requiredUid (attributes: Record<string, AttributeValue>, tag: string, name: string): string {
  const value = attributes[tag]
  if (value === undefined || value === '') throw new InvalidDicomError('missing-attribute', `${name} (${tag.slice(0, 4)},${tag.slice(4)}) is missing`)
  if (Array.isArray(value)) throw new InvalidDicomError('bad-uid', `${name} has ${value.length} values; it must have one`)
  const problem = uidProblem(value)
  if (problem !== undefined) throw new InvalidDicomError('bad-uid', `${name} "${value.slice(0, 80)}" ${problem}`)
  return value
}

/** Parses and validates a whole Part 10 file. Throws InvalidDicomError with a reason a person can act on. */
export function parsePart10 (file: Uint8Array): DicomInstance {
  const meta = readFileMeta(file)
  if (!SUPPORTED_TRANSFER_SYNTAXES.has(meta.transferSyntaxUid)) {
    throw new InvalidDicomError('unsupported-syntax', `transfer syntax ${meta.transferSyntaxUid} is not one radmesh stores`)
  }
  const instance = { transferSyntaxUid: meta.transferSyntaxUid, datasetOffset: meta.end }
  const dataset = datasetOf(file, instance)
  const syntax = syntaxOf(meta.transferSyntaxUid)
  const { attributes, pixelData } = walk(new Reader(dataset, syntax.little), 0, dataset.byteLength, syntax, 0, true, { utf8: false })
  if (pixelData?.encapsulated === true && !ENCAPSULATED_SYNTAXES.has(meta.transferSyntaxUid)) {
    throw new InvalidDicomError('bad-structure', `encapsulated pixel data in a native transfer syntax (${meta.transferSyntaxUid})`)
  }
  // The data set is authoritative: a File Meta Information that names other UIDs (seen in real files) is
  // kept as received, since the file must come back byte-identical, and the data set's UIDs are indexed.
  const sopInstanceUid = requiredUid(attributes, '00080018', 'SOP Instance UID')
  return {
    transferSyntaxUid: meta.transferSyntaxUid,
    sopClassUid: requiredUid(attributes, '00080016', 'SOP Class UID'),
    sopInstanceUid,
    studyInstanceUid: requiredUid(attributes, '0020000D', 'Study Instance UID'),
    seriesInstanceUid: requiredUid(attributes, '0020000E', 'Series Instance UID'),
    datasetOffset: meta.end,
    attributes,
    ...(pixelData === undefined ? {} : { pixelData }),
    executablePreamble: isExecutable(file)
  }
}

function metaElement (element: number, vr: string, value: Uint8Array): Uint8Array {
  const padded = value.byteLength % 2 === 0 ? value : Buffer.concat([value, Buffer.from([vr === 'UI' ? 0 : 0x20])])
  const long = LONG_VRS.has(vr)
  const header = Buffer.alloc(long ? 12 : 8)
  header.writeUInt16LE(0x0002, 0)
  header.writeUInt16LE(element, 2)
  header.write(vr, 4, 'latin1')
  if (long) header.writeUInt32LE(padded.byteLength, 8)
  else header.writeUInt16LE(padded.byteLength, 6)
  return Buffer.concat([header, padded])
}

export interface MetaFields {
  sopClassUid: string
  sopInstanceUid: string
  transferSyntaxUid: string
  sourceAeTitle?: string
}

/** A Part 10 file's start for a data set received over the network (C-STORE): zero preamble, DICM, a new File Meta Information. */
export function part10Header (meta: MetaFields): Uint8Array {
  const latin1 = (text: string): Uint8Array => Buffer.from(text, 'latin1')
  const elements = [
    metaElement(0x0001, 'OB', new Uint8Array([0, 1])),
    metaElement(0x0002, 'UI', latin1(meta.sopClassUid)),
    metaElement(0x0003, 'UI', latin1(meta.sopInstanceUid)),
    metaElement(0x0010, 'UI', latin1(meta.transferSyntaxUid)),
    metaElement(0x0012, 'UI', latin1(IMPLEMENTATION_CLASS_UID)),
    metaElement(0x0013, 'SH', latin1(IMPLEMENTATION_VERSION_NAME)),
    ...(meta.sourceAeTitle === undefined ? [] : [metaElement(0x0016, 'AE', latin1(meta.sourceAeTitle.trim()))])
  ]
  const groupLength = Buffer.alloc(4)
  groupLength.writeUInt32LE(elements.reduce((sum, e) => sum + e.byteLength, 0))
  return Buffer.concat([Buffer.alloc(PREAMBLE_LENGTH), Buffer.from(DICM), metaElement(0x0000, 'UL', groupLength), ...elements])
}

/** A copy of the file safe to hand to a user: an executable preamble (CVE-2019-11687) is zeroed. */
export function safeForDownload (file: Uint8Array): Uint8Array {
  if (!isExecutable(file)) return file
  const copy = Buffer.from(file)
  copy.fill(0, 0, PREAMBLE_LENGTH)
  return copy
}
