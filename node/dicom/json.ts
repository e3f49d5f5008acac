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
 * - values are what json-values.ts makes of their VR: numbers as numbers, PN as component groups, AT as hex;
 * - Pixel Data (7FE0,0010) at any depth, and every other binary value (OB, OD, OF, OL, OV, OW, UN) longer than
 *   1024 bytes, is `{ vr, BulkDataURI }`; shorter binary values are `InlineBinary` (base64, little endian);
 *   a text or number value over 1 MiB is `{ vr, BulkDataURI }` too;
 * - text is decoded with the Specific Character Set (0008,0005), ISO 2022 code extensions included;
 * - a UN element whose tag the dictionary knows is decoded with its real VR; a UN element of undefined
 *   length is a sequence in implicit VR little endian (PS3.5 6.2.2) and comes out as SQ.
 */
import { latin1Text, type TextCodec, textCodec } from './charsets.ts'
import {
  BINARY_VRS,
  hex8,
  IMPLICIT_LITTLE,
  PIXEL_DATA,
  SPECIFIC_CHARACTER_SET,
  type Syntax,
  tag as tagOf,
  tagName,
  TRAILING_PADDING
} from './dictionary.ts'
import { InvalidDicomError } from './errors.ts'
import { Part10Reader } from './file.ts'
import { dictionaryVr, implicitVr, resolveVr, type VrContext } from './implicit-vr.ts'
import {
  BULK_DATA_THRESHOLD,
  type BulkDataUriFor,
  convertValue,
  type DicomJsonAttribute,
  type DicomJsonDataset,
  personName
} from './json-values.ts'
import { readDataset } from './reader.ts'
import type { DatasetVisitor, ElementHeader, ValueAction } from './visitor.ts'
import { elementHeader } from './writer.ts'

export { BULK_DATA_THRESHOLD, type BulkDataUriFor, type DicomJsonAttribute, type DicomJsonDataset, personName }

/** Text and number values longer than this become BulkDataURI (PS3.18 F.2.6 allows it for them too). */
const LONG_VALUE_THRESHOLD = 1024 * 1024
/** A bulk data value is read into memory whole to be served: at most this long. */
export const MAX_BULK_VALUE_BYTES = 64 * 1024 * 1024
/** A deflated data set may inflate to at most this many bytes. */
const MAX_INFLATED_BYTES = 2 ** 31 - 1
/** Sequences nest at most this deep (SR content trees go deep, but not this deep). */
const MAX_DEPTH = 64

/** What a data set level knows while it is read: inherited by its items unless they say otherwise. */
interface Scope extends VrContext {
  charset: TextCodec
}

/** A data set level being filled: the top level or an item. */
interface Level {
  kind: 'level'
  dataset: DicomJsonDataset
  scope: Scope
  path: string
}
/** A sequence being read, its items so far. */
interface Sequence {
  kind: 'sequence'
  key: string | undefined
  items: DicomJsonDataset[]
  path: string
  depth: number
}

/** An element being collected, with the VR to read it as (a known tag encoded as UN is read as what it is). */
interface Wanted {
  vr: string
  syntax: Syntax
}

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

  constructor(bulkDataUri: BulkDataUriFor, scope: Scope, path = '', depthOffset = 0, forceSequence?: number) {
    this.#bulkDataUri = bulkDataUri
    this.#stack = [{ kind: 'level', dataset: this.root, scope, path }]
    this.#depthOffset = depthOffset
    this.#forceSequence = forceSequence
  }

  #level(): Level {
    for (let i = this.#stack.length - 1; i >= 0; i--) {
      const entry = this.#stack[i] as Level | Sequence
      if (entry.kind === 'level') return entry
    }
    throw new Error('no data set level')
  }

  #path(tag: number): string {
    const { path } = this.#level()
    return path === '' ? hex8(tag) : `${path}/${hex8(tag)}`
  }

  implicitVr(el: ElementHeader): string | undefined {
    if (el.depth === 0 && el.tag === this.#forceSequence) return 'SQ'
    return implicitVr(el.tag, el.length, this.#level().scope)
  }

  element(el: ElementHeader): ValueAction {
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

  value(el: ElementHeader, value: Uint8Array): void {
    const wanted = this.#wanted.get(el.valueOffset) as Wanted
    this.#wanted.delete(el.valueOffset)
    const level = this.#level()
    const key = hex8(el.tag)
    if (wanted.vr === 'SQ') {
      level.dataset[key] = this.#unSequence(el, value, level)
      return
    }
    const { scope } = level
    const attribute = convertValue(
      el.tag,
      wanted.vr,
      value,
      wanted.syntax.little,
      scope.charset,
      this.#path(el.tag),
      this.#bulkDataUri
    )
    level.dataset[key] = attribute
    remember(el.tag, attribute, value, level.scope)
  }

  /** A sequence encoded as UN of defined length: its items are read on their own, in implicit VR little endian. */
  #unSequence(el: ElementHeader, value: Uint8Array, level: Level): DicomJsonAttribute {
    const depth = this.#depthOffset + el.depth + 1
    if (depth >= MAX_DEPTH)
      throw new InvalidDicomError('too-deep', `sequences nest deeper than ${MAX_DEPTH} levels at ${tagName(el.tag)}`)
    // Wrapped as the one element of a data set, read as a sequence whatever its tag.
    const wrapped = Buffer.concat([elementHeader(el.tag, 'UN', value.byteLength, IMPLICIT_LITTLE), value])
    const nested = new JsonVisitor(this.#bulkDataUri, level.scope, level.path, depth - 1, el.tag)
    readDataset(wrapped, IMPLICIT_LITTLE, nested, { maxDepth: MAX_DEPTH - depth + 1, ordered: false })
    return nested.root[hex8(el.tag)] ?? { vr: 'SQ' }
  }

  sequenceStart(el: ElementHeader): void {
    if (this.#depthOffset + el.depth + 1 > MAX_DEPTH)
      throw new InvalidDicomError('too-deep', `sequences nest deeper than ${MAX_DEPTH} levels at ${tagName(el.tag)}`)
    const kept = keep(el.tag >>> 16, el.tag & 0xffff)
    this.#stack.push({
      kind: 'sequence',
      key: kept ? hex8(el.tag) : undefined,
      items: [],
      path: this.#path(el.tag),
      depth: el.depth
    })
  }

  itemStart(): void {
    const sequence = this.#stack.at(-1) as Sequence
    const parent = this.#level().scope
    this.#stack.push({
      kind: 'level',
      dataset: {},
      path: `${sequence.path}/${sequence.items.length}`,
      scope: { charset: parent.charset, creators: new Map(), pixelRepresentation: parent.pixelRepresentation }
    })
  }

  itemEnd(): void {
    const level = this.#stack.pop() as Level
    ;(this.#stack.at(-1) as Sequence).items.push(level.dataset)
  }

  sequenceEnd(): void {
    const sequence = this.#stack.pop() as Sequence
    if (sequence.key === undefined) return
    this.#level().dataset[sequence.key] =
      sequence.items.length === 0 ? { vr: 'SQ' } : { vr: 'SQ', Value: sequence.items }
  }

  encapsulatedStart(el: ElementHeader): void {
    if (!keep(el.tag >>> 16, el.tag & 0xffff)) return
    // Encapsulated values are OB (PS3.5 A.4): say so when an implicit VR data set could not (an explicit VR is
    // kept as written).
    this.#level().dataset[hex8(el.tag)] = { vr: el.vr ?? 'OB', BulkDataURI: this.#bulkDataUri(this.#path(el.tag)) }
  }
}

const reader = (visitor: () => DatasetVisitor, inflate: 'sync' | 'async'): Part10Reader =>
  new Part10Reader({
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
export function instanceToDicomJson(part10: Uint8Array, bulkDataUri: BulkDataUriFor): DicomJsonDataset {
  const visitor = new JsonVisitor(bulkDataUri, newScope())
  const file = reader(() => visitor, 'sync')
  file.push(part10)
  file.endSync()
  return visitor.root
}

/**
 * A data set alone (no preamble, no File Meta Information) in `syntax`, held in memory, as DICOM JSON: a DIMSE
 * identifier. Throws InvalidDicomError when it cannot be read.
 */
export function datasetToDicomJson(bytes: Uint8Array, syntax: Syntax, bulkDataUri: BulkDataUriFor): DicomJsonDataset {
  const visitor = new JsonVisitor(bulkDataUri, newScope())
  readDataset(bytes, syntax, visitor, { maxDepth: MAX_DEPTH, maxValueBytes: MAX_BULK_VALUE_BYTES, ordered: false })
  return visitor.root
}

/**
 * A file in pieces: its bytes, or (a number) a count of bytes that lie inside one value the reader skips (the
 * pixel data), not read at all; the function given such a count reads them when it must (see `dicomJsonOf`).
 */
export type FilePiece = Uint8Array | { skip: number; read: () => Promise<Uint8Array> }

/**
 * The same for a file read in pieces (a stored instance, chunk by chunk), in bounded memory; a deflated data
 * set inflates off the event loop. A piece to skip is read only if the reader is not inside a skipped value there.
 */
export async function dicomJsonOf(
  pieces: AsyncIterable<FilePiece>,
  bulkDataUri: BulkDataUriFor
): Promise<DicomJsonDataset> {
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
export async function bulkDataOf(pieces: AsyncIterable<Uint8Array>, path: string): Promise<Uint8Array | undefined> {
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
    value: (_el, value) => {
      found = value
    },
    sequenceStart: el => {
      paths.push(hex8(el.tag))
      items.push(0)
    },
    itemStart: () => {
      paths.push(String(items.at(-1) as number))
    },
    itemEnd: () => {
      paths.pop()
      items[items.length - 1] = (items.at(-1) as number) + 1
    },
    sequenceEnd: () => {
      paths.pop()
      items.pop()
    }
  }
  const file = reader(() => visitor, 'async')
  for await (const piece of pieces) file.push(piece)
  await file.end()
  if (tooLarge > 0)
    throw new RangeError(`the value at ${path} is ${tooLarge} bytes, over the ${MAX_BULK_VALUE_BYTES} served at once`)
  return found
}

/** Elements the JSON model leaves out: meta information, group lengths, trailing padding. */
function keep(group: number, element: number): boolean {
  return group !== 0x0002 && element !== 0x0000 && tagOf(group, element) !== TRAILING_PADDING
}

/**
 * What a data set level must remember for the elements after it: character set, private creators, pixel
 * representation.
 */
function remember(tag: number, attribute: DicomJsonAttribute, raw: Uint8Array, scope: Scope): void {
  const group = tag >>> 16
  const element = tag & 0xffff
  if (tag === SPECIFIC_CHARACTER_SET) {
    scope.charset = textCodec((attribute.Value ?? []).map(v => (typeof v === 'string' ? v : '')))
  } else if (tag === 0x00280103) {
    const value = attribute.Value?.[0]
    if (typeof value === 'number') scope.pixelRepresentation = value
  } else if ((group & 1) === 1 && element >= 0x0010 && element <= 0x00ff) {
    scope.creators.set((group << 8) | element, latin1Text(raw).trim())
  }
}
