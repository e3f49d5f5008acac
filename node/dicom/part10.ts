/**
 * Reading DICOM Part 10 files strictly enough to trust what is stored.
 *
 * `InstanceParser` reads a file as it arrives (through `Part10Reader` and the one data set reader,
 * reader.ts): every element, sequence, item and fragment, every declared length checked against its
 * container and the data (an object that stops early is truncated and refused, never indexed: dcmjs would
 * accept it), the deflated syntax inflated off the event loop within the object size limit. On the way it
 * collects the top-level attributes the index needs and where the pixel data lies, so WADO-RS frames need no
 * second parse; and it checks the declared frame geometry against the pixel data (geometry.ts).
 */
import { CHARSET_VRS, namesUtf8 } from './charsets.ts'
import {
  COLLECTED_ATTRIBUTES,
  ENCAPSULATED_SYNTAXES,
  hex8,
  INDEXED_SEQUENCES,
  MAX_SEQUENCE_ITEMS,
  PIXEL_DATA,
  PREAMBLE_LENGTH,
  SPECIFIC_CHARACTER_SET,
  SUPPORTED_TRANSFER_SYNTAXES,
  syntaxOf,
  tagName
} from './dictionary.ts'
import { InvalidDicomError } from './errors.ts'
import { type FileMeta, isExecutable, Part10Reader } from './file.ts'
import { frameGeometry } from './geometry.ts'
import type { AttributeValue, DicomInstance, PixelDataLocation, SequenceItems } from './instance.ts'
import { withoutTrailingPadding } from './padding.ts'
import { uidProblem } from './uids.ts'
import type { DatasetVisitor, ElementHeader } from './visitor.ts'

/** What a parse gives (instance.ts). */
export type { AttributeValue, DicomInstance, PixelDataLocation, SequenceItems }
/** Its callers in node/archive and test/ import it from here until they take it from writer.ts. */
export { part10Header } from './writer.ts'

/** The collected attributes are short; one over this is not what it says it is. */
const MAX_COLLECTED_BYTES = 64 * 1024

/** The item attributes kept of each indexed sequence, with their VRs, by the sequence's 8-hex tag. */
const SEQUENCE_ITEM_VRS: ReadonlyMap<string, ReadonlyMap<string, string>> = new Map(
  INDEXED_SEQUENCES.map(sequence => [sequence.tag, new Map(sequence.items.map(item => [item.tag, item.vr]))])
)

function tooLong(el: ElementHeader): InvalidDicomError {
  return new InvalidDicomError(
    'bad-structure',
    `element ${tagName(el.tag)} declares ${el.length} bytes, far more than such an attribute holds: ` +
      'the data is damaged'
  )
}

/**
 * Reads the top level into attributes and a pixel data location, and the items of the indexed sequences
 * (see DicomInstance).
 */
class IndexVisitor implements DatasetVisitor {
  readonly attributes: Record<string, AttributeValue> = {}
  readonly sequences: Record<string, SequenceItems> = {}
  pixelData: PixelDataLocation | undefined
  /** the indexed sequence being read, and its item being read (undefined past MAX_SEQUENCE_ITEMS) */
  #sequence: { items: SequenceItems; vrs: ReadonlyMap<string, string> } | undefined
  #item: Record<string, AttributeValue> | undefined
  #utf8 = false
  #encapsulated: { offsetTable: number[]; fragments: Array<{ offset: number; length: number }> } | undefined
  readonly #little: boolean

  constructor(little: boolean) {
    this.#little = little
  }

  /** In implicit VR, an indexed sequence of defined length is read as one only if the reader is told. */
  implicitVr(el: ElementHeader): string | undefined {
    return el.depth === 0 && SEQUENCE_ITEM_VRS.has(hex8(el.tag)) ? 'SQ' : undefined
  }

  sequenceStart(el: ElementHeader): void {
    if (el.depth !== 0) return
    const vrs = SEQUENCE_ITEM_VRS.get(hex8(el.tag))
    if (vrs === undefined) return
    const items: SequenceItems = []
    this.sequences[hex8(el.tag)] = items
    this.#sequence = { items, vrs }
  }

  sequenceEnd(el: ElementHeader): void {
    if (el.depth !== 0) return
    this.#sequence = undefined
    this.#item = undefined
  }

  itemStart(_offset: number, _length: number, depth: number): void {
    const sequence = this.#sequence
    if (depth !== 1 || sequence === undefined) return
    this.#item = undefined
    if (sequence.items.length === MAX_SEQUENCE_ITEMS) return
    this.#item = {}
    sequence.items.push(this.#item)
  }

  element(el: ElementHeader): 'skip' | 'collect' {
    if (el.depth === 1 && this.#item !== undefined && this.#sequence?.vrs.has(hex8(el.tag)) === true) {
      if (el.length > MAX_COLLECTED_BYTES) throw tooLong(el)
      return 'collect'
    }
    if (el.depth !== 0) return 'skip'
    if (el.tag === PIXEL_DATA) {
      this.pixelData = { encapsulated: false, offset: el.valueOffset, length: el.length }
      return 'skip'
    }
    if (!(hex8(el.tag) in COLLECTED_ATTRIBUTES)) return 'skip'
    if (el.length > MAX_COLLECTED_BYTES) throw tooLong(el)
    return 'collect'
  }

  value(el: ElementHeader, value: Uint8Array): void {
    if (el.depth === -1) {
      this.#fragment(el, value)
      return
    }
    const key = hex8(el.tag)
    if (el.depth === 1) {
      const vr = el.vr ?? (this.#sequence?.vrs.get(key) as string)
      if (this.#item !== undefined) this.#item[key] = decodeValue(value, vr, this.#utf8, this.#little)
      return
    }
    const vr = el.vr ?? (COLLECTED_ATTRIBUTES[key] as string)
    if (el.tag === SPECIFIC_CHARACTER_SET) this.#utf8 = namesUtf8(value)
    this.attributes[key] = decodeValue(value, vr, this.#utf8, this.#little)
  }

  encapsulatedStart(el: ElementHeader): void {
    if (el.depth === 0 && el.tag === PIXEL_DATA) this.#encapsulated = { offsetTable: [], fragments: [] }
  }

  fragment(index: number, el: ElementHeader): 'skip' | 'collect' {
    const encapsulated = this.#encapsulated
    if (encapsulated === undefined) return 'skip'
    if (index === 0) return 'collect' // the Basic Offset Table: at most 4 bytes per fragment, bounded by the reader
    encapsulated.fragments.push({ offset: el.valueOffset, length: el.length })
    return 'skip'
  }

  #fragment(el: ElementHeader, table: Uint8Array): void {
    const view = new DataView(table.buffer, table.byteOffset, table.byteLength)
    const offsets = (this.#encapsulated as { offsetTable: number[] }).offsetTable
    for (let i = 0; i + 4 <= el.length; i += 4) offsets.push(view.getUint32(i, this.#little))
  }

  encapsulatedEnd(el: ElementHeader): void {
    if (this.#encapsulated === undefined || el.depth !== 0 || el.tag !== PIXEL_DATA) return
    this.pixelData = { encapsulated: true, ...this.#encapsulated }
    this.#encapsulated = undefined
  }
}

const textDecoderUtf8 = new TextDecoder('utf-8')

function decodeValue(raw: Uint8Array, vr: string, utf8: boolean, little: boolean): AttributeValue {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
  if (vr === 'US') {
    const values: string[] = []
    for (let i = 0; i + 2 <= raw.byteLength; i += 2) values.push(String(view.getUint16(i, little)))
    return values.length === 1 ? (values[0] as string) : values
  }
  if (vr === 'UL') {
    const values: string[] = []
    for (let i = 0; i + 4 <= raw.byteLength; i += 4) values.push(String(view.getUint32(i, little)))
    return values.length === 1 ? (values[0] as string) : values
  }
  // Text VRs: trailing spaces (and NUL after UIDs) are padding; backslash separates values.
  const text = utf8 && CHARSET_VRS.has(vr) ? textDecoderUtf8.decode(raw) : Buffer.from(raw).toString('latin1')
  const values = text.split('\\').map(v => withoutTrailingPadding(v).replace(/^ +/, ''))
  return values.length === 1 ? (values[0] as string) : values
}

function requiredUid(attributes: Record<string, AttributeValue>, tag: string, name: string): string {
  const value = attributes[tag]
  if (value === undefined || value === '')
    throw new InvalidDicomError('missing-attribute', `${name} (${tag.slice(0, 4)},${tag.slice(4)}) is missing`)
  if (Array.isArray(value))
    throw new InvalidDicomError('bad-uid', `${name} has ${value.length} values; it must have one`)
  const problem = uidProblem(value)
  if (problem !== undefined) throw new InvalidDicomError('bad-uid', `${name} "${value.slice(0, 80)}" ${problem}`)
  return value
}

export interface ParserOptions {
  /** 'async' (the archive): deflate inflates on the thread pool as the bytes come; 'sync': at the end, in one go */
  inflate?: 'sync' | 'async'
  /** a deflated data set inflates to at most this many bytes */
  maxInflatedBytes?: number
}

/** The default bound on a deflated data set once inflated, for objects parsed in memory. */
const DEFAULT_MAX_INFLATED_BYTES = 256 * 1024 * 1024

/**
 * Parses and validates a Part 10 file given in pieces as it arrives: `write` each piece (InvalidDicomError
 * as soon as something is wrong), then `finish`. Holds no more of the file than the reader does.
 */
export class InstanceParser {
  readonly #reader: Part10Reader
  #visitor: IndexVisitor | undefined

  constructor(options: ParserOptions = {}) {
    this.#reader = new Part10Reader({
      inflate: options.inflate ?? 'sync',
      maxInflatedBytes: options.maxInflatedBytes ?? DEFAULT_MAX_INFLATED_BYTES,
      dataset: (meta: FileMeta) => {
        if (!SUPPORTED_TRANSFER_SYNTAXES.has(meta.transferSyntaxUid)) {
          throw new InvalidDicomError(
            'unsupported-syntax',
            `transfer syntax ${meta.transferSyntaxUid.slice(0, 64)} is not one radmesh stores`
          )
        }
        this.#visitor = new IndexVisitor(syntaxOf(meta.transferSyntaxUid).little)
        return this.#visitor
      }
    })
  }

  write(piece: Uint8Array): void {
    this.#reader.push(piece)
  }

  async finish(): Promise<DicomInstance> {
    await this.#reader.end()
    return this.#result()
  }

  /** `finish` for a parser made with `inflate: 'sync'`: nothing is left to wait for. */
  finishSync(): DicomInstance {
    this.#reader.endSync()
    return this.#result()
  }

  #result(): DicomInstance {
    const meta = this.#reader.meta as FileMeta
    const { attributes, sequences, pixelData } = this.#visitor as IndexVisitor
    if (pixelData?.encapsulated === true && !ENCAPSULATED_SYNTAXES.has(meta.transferSyntaxUid)) {
      throw new InvalidDicomError(
        'bad-structure',
        `encapsulated pixel data in a native transfer syntax (${meta.transferSyntaxUid})`
      )
    }
    if (pixelData?.encapsulated === false && ENCAPSULATED_SYNTAXES.has(meta.transferSyntaxUid)) {
      throw new InvalidDicomError(
        'bad-structure',
        `native pixel data in an encapsulated transfer syntax (${meta.transferSyntaxUid})`
      )
    }
    // The data set is authoritative: a File Meta Information that names other UIDs (seen in real files) is
    // kept as received, since the file must come back byte-identical, and the data set's UIDs are indexed.
    const sopInstanceUid = requiredUid(attributes, '00080018', 'SOP Instance UID')
    const instance: DicomInstance = {
      transferSyntaxUid: meta.transferSyntaxUid,
      sopClassUid: requiredUid(attributes, '00080016', 'SOP Class UID'),
      sopInstanceUid,
      studyInstanceUid: requiredUid(attributes, '0020000D', 'Study Instance UID'),
      seriesInstanceUid: requiredUid(attributes, '0020000E', 'Series Instance UID'),
      datasetOffset: meta.datasetOffset,
      attributes,
      sequences,
      ...(pixelData === undefined ? {} : { pixelData }),
      executablePreamble: meta.executablePreamble
    }
    const geometry = frameGeometry(attributes, pixelData)
    if (geometry.problem !== undefined)
      throw new InvalidDicomError('bad-pixel-data', `${geometry.problem}: the object does not hold what it declares`)
    return instance
  }
}

/** Parses and validates a whole Part 10 file in memory. Throws InvalidDicomError with a reason a person can act on. */
export function parsePart10(file: Uint8Array, options: { maxInflatedBytes?: number } = {}): DicomInstance {
  const parser = new InstanceParser({ inflate: 'sync', ...options })
  parser.write(file)
  return parser.finishSync()
}

/** A copy of the file safe to hand to a user: an executable preamble (CVE-2019-11687) is zeroed. */
export function safeForDownload(file: Uint8Array): Uint8Array {
  if (!isExecutable(file)) return file
  const copy = Buffer.from(file)
  copy.fill(0, 0, PREAMBLE_LENGTH)
  return copy
}
