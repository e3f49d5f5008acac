/**
 * A Part 10 file as a tree the de-identifier can change, read through the one data set reader and written
 * back through the one writer (node/dicom). Every value is kept as the bytes it was read as (little endian:
 * the same bytes in explicit and implicit VR), so what the profile keeps goes out unchanged; only element
 * headers are made anew. Pixel Data is carried through untouched: native, or encapsulated fragment by fragment.
 *
 * Private attributes are not read at all: the Basic Profile removes them, and radmesh offers no safe-private
 * rule. Big endian files are refused (the writer writes little endian only, and the pixel data must not be
 * converted); a deflated file comes out in explicit VR little endian, which is what it inflates to.
 */
import {
  ENCAPSULATED_SYNTAXES,
  EXPLICIT_LITTLE,
  IMPLICIT_LITTLE,
  ITEM,
  PIXEL_DATA,
  SEQUENCE_DELIMITER,
  SPECIFIC_CHARACTER_SET,
  type Syntax,
  syntaxOf,
  TRANSFER_SYNTAX,
  tagName,
  UNDEFINED_LENGTH
} from '../dicom/dictionary.ts'
import { InvalidDicomError } from '../dicom/errors.ts'
import { type FileMeta, Part10Reader } from '../dicom/file.ts'
import { dictionaryVr, implicitVr, resolveVr, type VrContext } from '../dicom/implicit-vr.ts'
import type { DatasetVisitor, ElementHeader, ValueAction } from '../dicom/visitor.ts'
import { type Dataset, type Element, elementHeader, part10Header, writeDataset } from '../dicom/writer.ts'
import { DeidentificationError } from './errors.ts'

export type Node =
  | { kind: 'value'; tag: number; vr: string; bytes: Uint8Array }
  | { kind: 'sequence'; tag: number; vr: 'SQ'; items: Node[][] }
  /** native Pixel Data, as the pieces it was read in */
  | { kind: 'pixels'; tag: number; vr: string; pieces: Uint8Array[] }
  /** encapsulated Pixel Data: the Basic Offset Table, then the fragments, each as the pieces it was read in */
  | { kind: 'encapsulated'; tag: number; vr: string; fragments: Uint8Array[][] }

export interface DicomFile {
  /** the transfer syntax the copy is written in */
  transferSyntaxUid: string
  dataset: Node[]
}

/** A deflated data set may inflate to at most this many bytes. */
const MAX_INFLATED_BYTES = 1024 * 1024 * 1024

interface Level {
  kind: 'level'
  nodes: Node[]
  context: VrContext
}
interface Open {
  kind: 'open'
  /** undefined: a private sequence, read and dropped */
  node: (Node & { kind: 'sequence' }) | undefined
}

const isPrivate = (tag: number): boolean => ((tag >>> 16) & 1) === 1

/** Builds the tree from the reader's events. */
class TreeVisitor implements DatasetVisitor {
  readonly root: Node[] = []
  readonly #stack: Array<Level | Open> = [
    { kind: 'level', nodes: this.root, context: { creators: new Map(), pixelRepresentation: 0 } }
  ]
  #vr = 'UN'
  /** where streamed pieces go: native pixel data, or the current fragment */
  #pieces: Uint8Array[] | undefined
  #encapsulated: (Node & { kind: 'encapsulated' }) | undefined

  #level(): Level {
    const top = this.#stack.at(-1)
    if (top?.kind !== 'level') throw new Error('no data set level')
    return top
  }

  implicitVr(el: ElementHeader): string | undefined {
    return implicitVr(el.tag, el.length, this.#level().context)
  }

  element(el: ElementHeader): ValueAction {
    if (isPrivate(el.tag)) return 'skip'
    const context = this.#level().context
    let vr = el.vr ?? implicitVr(el.tag, el.length, context)
    // A standard attribute sent as UN is handled as what it is: a UID in UN is still a UID to replace.
    if (vr === 'UN') vr = resolveVr(dictionaryVr(el.tag, context), context) ?? 'UN'
    this.#vr = vr
    if (el.tag === PIXEL_DATA && el.depth === 0) {
      this.#pieces = []
      this.#level().nodes.push({ kind: 'pixels', tag: el.tag, vr, pieces: this.#pieces })
      return 'stream'
    }
    return 'collect'
  }

  value(el: ElementHeader, bytes: Uint8Array): void {
    if (el.tag === ITEM) return
    if (el.tag === 0x00280103) this.#level().context.pixelRepresentation = bytes[0] ?? 0
    this.#level().nodes.push({ kind: 'value', tag: el.tag, vr: this.#vr, bytes })
  }

  valuePiece(_el: ElementHeader, piece: Uint8Array): void {
    this.#pieces?.push(piece)
  }

  sequenceStart(el: ElementHeader): void {
    if (isPrivate(el.tag)) {
      this.#stack.push({ kind: 'open', node: undefined })
      return
    }
    const node: Node & { kind: 'sequence' } = { kind: 'sequence', tag: el.tag, vr: 'SQ', items: [] }
    this.#level().nodes.push(node)
    this.#stack.push({ kind: 'open', node })
  }

  sequenceEnd(): void {
    this.#stack.pop()
  }

  itemStart(): void {
    const top = this.#stack.at(-1)
    const parent = this.#stack.at(-2)
    if (top?.kind !== 'open' || parent?.kind !== 'level') throw new Error('an item outside a sequence')
    const nodes: Node[] = []
    top.node?.items.push(nodes)
    const context = { creators: new Map(), pixelRepresentation: parent.context.pixelRepresentation }
    this.#stack.push({ kind: 'level', nodes, context })
  }

  itemEnd(): void {
    this.#stack.pop()
  }

  encapsulatedStart(el: ElementHeader): void {
    if (isPrivate(el.tag)) return
    if (el.tag !== PIXEL_DATA || el.depth !== 0) {
      // Only an icon image does this, and the profile removes icon images; anything else is not carried.
      throw new DeidentificationError(
        'unsupported',
        `encapsulated ${tagName(el.tag)} inside a sequence: radmesh de-identifies encapsulated Pixel Data ` +
          'at the top level only'
      )
    }
    this.#encapsulated = { kind: 'encapsulated', tag: el.tag, vr: el.vr ?? 'OB', fragments: [] }
    this.#level().nodes.push(this.#encapsulated)
  }

  fragment(): ValueAction {
    if (this.#encapsulated === undefined) return 'skip'
    this.#pieces = []
    this.#encapsulated.fragments.push(this.#pieces)
    return 'stream'
  }

  encapsulatedEnd(): void {
    this.#encapsulated = undefined
  }
}

/** Reads a Part 10 file into a tree. InvalidDicomError when it is not one; DeidentificationError when unsupported. */
export function readDicomFile(bytes: Uint8Array): DicomFile {
  let visitor: TreeVisitor | undefined
  const reader = new Part10Reader({
    inflate: 'sync',
    maxInflatedBytes: MAX_INFLATED_BYTES,
    dataset: (meta: FileMeta) => {
      if (!syntaxOf(meta.transferSyntaxUid).little) {
        throw new DeidentificationError(
          'unsupported',
          `transfer syntax ${meta.transferSyntaxUid} (big endian) is not de-identified: convert it first`
        )
      }
      visitor = new TreeVisitor()
      return visitor
    }
  })
  reader.push(bytes)
  reader.endSync()
  const declared = (reader.meta as FileMeta).transferSyntaxUid
  if (visitor === undefined) throw new InvalidDicomError('truncated', 'the file holds no data set')
  const transferSyntaxUid =
    declared === TRANSFER_SYNTAX.deflatedExplicitLittle ? TRANSFER_SYNTAX.explicitLittle : declared
  return { transferSyntaxUid, dataset: visitor.root }
}

const concat = (pieces: Uint8Array[]): Uint8Array =>
  pieces.length === 1 ? (pieces[0] as Uint8Array) : Buffer.concat(pieces)

function toElements(nodes: Node[]): Dataset {
  return nodes.map((node): Element => {
    if (node.kind === 'value') return { tag: node.tag, vr: node.vr, value: node.bytes }
    if (node.kind === 'sequence') return { tag: node.tag, vr: 'SQ', value: node.items.map(toElements) }
    if (node.kind === 'pixels') return { tag: node.tag, vr: node.vr, value: concat(node.pieces) }
    throw new Error('encapsulated pixel data is written by writeDicomFile')
  })
}

const itemHeader = (tag: number, length: number): Buffer => {
  const out = Buffer.alloc(8)
  out.writeUInt16LE(tag >>> 16, 0)
  out.writeUInt16LE(tag & 0xffff, 2)
  out.writeUInt32LE(length, 4)
  return out
}

/** Encapsulated Pixel Data as PS3.5 A.4 lays it out: undefined length, items, a Sequence Delimitation Item. */
function encapsulatedBytes(node: Node & { kind: 'encapsulated' }, syntax: Syntax): Buffer {
  const parts: Uint8Array[] = [elementHeader(node.tag, node.vr, UNDEFINED_LENGTH, syntax)]
  for (const fragment of node.fragments) {
    const body = concat(fragment)
    parts.push(itemHeader(ITEM, body.byteLength), body)
  }
  parts.push(itemHeader(SEQUENCE_DELIMITER, 0))
  return Buffer.concat(parts)
}

/** Part 10 bytes for a tree: a new File Meta Information for `sopClassUid` and `sopInstanceUid`, then the data set. */
export function writeDicomFile(file: DicomFile, sopClassUid: string, sopInstanceUid: string): Buffer {
  const { transferSyntaxUid, dataset } = file
  const syntax = transferSyntaxUid === TRANSFER_SYNTAX.implicitLittle ? IMPLICIT_LITTLE : EXPLICIT_LITTLE
  const charset = dataset.find(node => node.tag === SPECIFIC_CHARACTER_SET)
  const utf8 = charset?.kind === 'value' && Buffer.from(charset.bytes).toString('latin1').includes('ISO_IR 192')
  const encapsulated = dataset.find(node => node.kind === 'encapsulated')
  if (encapsulated !== undefined && !ENCAPSULATED_SYNTAXES.has(transferSyntaxUid))
    throw new InvalidDicomError(
      'bad-structure',
      `encapsulated pixel data in a native transfer syntax (${transferSyntaxUid})`
    )
  const before = dataset.filter(node => node.kind !== 'encapsulated' && node.tag < PIXEL_DATA)
  const after = dataset.filter(node => node.kind !== 'encapsulated' && node.tag > PIXEL_DATA)
  const native = dataset.filter(node => node.kind !== 'encapsulated' && node.tag === PIXEL_DATA)
  return Buffer.concat([
    part10Header({ sopClassUid, sopInstanceUid, transferSyntaxUid }),
    writeDataset(toElements([...before, ...native]), utf8, syntax),
    encapsulated === undefined ? Buffer.alloc(0) : encapsulatedBytes(encapsulated, syntax),
    writeDataset(toElements(after), utf8, syntax)
  ])
}
