/**
 * The one DICOM data set reader: a push parser, fed the bytes of a data set in pieces of any size as they
 * arrive (a C-STORE's PDVs, a STOW-RS part, the chunks of a stored instance), that walks every element,
 * sequence, item and fragment and tells a visitor (visitor.ts) what it finds. It keeps at most a 12-byte
 * element header and the values its visitor asks for, so a 2 GiB multi-frame object goes through it in
 * bounded memory.
 *
 * What it checks, for whoever reads through it: every declared length against its container (an item, a
 * sequence of defined length) and against the end of the data; VRs in explicit VR data sets; item and
 * delimiter tags where they belong; top-level elements in ascending order; nesting depth; the number of
 * fragments of an encapsulated value. A declared length never sizes an allocation beyond what the visitor
 * asked to collect, and a value collected is at most `maxValueBytes`. Any input either passes or throws
 * `InvalidDicomError` with the reason, from `push` or from `end` (data that stops early is truncated).
 *
 * The containers it is inside (items, sequences, encapsulated values) and what bounds each are in
 * containers.ts. Visitors decide what is kept: the archive's index (part10.ts), the DICOM JSON model and bulk data
 * (json.ts) and DIMSE command sets (dimse/command.ts) all read through this.
 */
import {
  checkFits,
  closeEnded,
  type DatasetFrame,
  describeOpen,
  type FragmentsFrame,
  type Frame,
  fragmentSyntax,
  headerLength,
  type SequenceFrame
} from './containers.ts'
import {
  IMPLICIT_LITTLE,
  ITEM,
  ITEM_DELIMITER,
  LONG_VRS,
  PIXEL_DATA,
  SEQUENCE_DELIMITER,
  SHORT_VRS,
  type Syntax,
  tagName,
  UNDEFINED_LENGTH
} from './dictionary.ts'
import { InvalidDicomError } from './errors.ts'
import {
  DEFAULT_MAX_DEPTH,
  DEFAULT_MAX_FRAGMENTS,
  DEFAULT_MAX_VALUE_BYTES,
  type DatasetVisitor,
  type ElementHeader,
  type ReaderLimits,
  type ValueAction
} from './visitor.ts'

/** A value being read: collected into `buffer`, streamed, or skipped. */
interface PendingValue {
  el: ElementHeader
  action: ValueAction
  remaining: number
  buffer: Uint8Array | undefined
  filled: number
  fragment: boolean
}

export class DatasetReader {
  readonly #visitor: DatasetVisitor
  readonly #maxDepth: number
  readonly #maxValueBytes: number
  readonly #maxFragments: number
  readonly #ordered: boolean
  readonly #stack: Frame[]
  /** bytes consumed so far: the offset of the next byte */
  #offset = 0
  /** an element header cut by the end of a piece (at most 12 bytes) */
  readonly #carry = new Uint8Array(12)
  #carried = 0
  #value: PendingValue | undefined
  #ended = false

  constructor(syntax: Syntax, visitor: DatasetVisitor, limits: ReaderLimits = {}) {
    this.#visitor = visitor
    this.#maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH
    this.#maxValueBytes = limits.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
    this.#maxFragments = limits.maxFragments ?? DEFAULT_MAX_FRAGMENTS
    this.#ordered = limits.ordered ?? true
    this.#stack = [{ kind: 'dataset', end: undefined, delimited: false, depth: 0, syntax, lastTag: -1 }]
  }

  /** Bytes read so far. */
  get offset(): number {
    return this.#offset
  }

  /** Reads the next bytes of the data set. Throws InvalidDicomError at the first thing that is wrong. */
  push(piece: Uint8Array): void {
    if (this.#ended) throw new Error('push after end')
    let pos = 0
    while (pos < piece.byteLength) {
      const value = this.#value
      if (value !== undefined) {
        const take = Math.min(value.remaining, piece.byteLength - pos)
        this.#consumeValue(value, piece.subarray(pos, pos + take))
        pos += take
        continue
      }
      this.#closeEnded()
      // A header: from the carry (it was cut by the end of the last piece), or straight from this piece.
      const needed = this.#headerLength(piece, pos)
      if (needed === undefined || this.#carried + piece.byteLength - pos < needed) {
        const take = Math.min(piece.byteLength - pos, (needed ?? 8) - this.#carried)
        this.#carry.set(piece.subarray(pos, pos + take), this.#carried)
        this.#carried += take
        pos += take
        continue
      }
      let header: Uint8Array
      if (this.#carried > 0) {
        const take = needed - this.#carried
        this.#carry.set(piece.subarray(pos, pos + take), this.#carried)
        pos += take
        header = this.#carry.subarray(0, needed)
        this.#carried = 0
      } else {
        header = piece.subarray(pos, pos + needed)
        pos += needed
      }
      this.#header(header)
    }
  }

  /**
   * Passes over the next `count` bytes without reading them: only inside a value the visitor skips (the pixel
   * data, say), and only as far as it goes. Returns false (and skips nothing) when that is not where the
   * reader is.
   */
  skip(count: number): boolean {
    const value = this.#value
    if (value === undefined || value.action !== 'skip' || value.remaining < count || count <= 0) return false
    value.remaining -= count
    value.filled += count
    this.#offset += count
    if (value.remaining === 0) {
      this.#value = undefined
      this.#finishValue(value)
    }
    return true
  }

  /**
   * The data set ends here: throws InvalidDicomError if anything was left unfinished (a truncated object).
   * `zeroTail`: fewer than 8 zero bytes after the last top-level element are padding, not a cut header.
   */
  end(options: { zeroTail?: boolean } = {}): void {
    if (this.#ended) return
    this.#ended = true
    if (this.#value === undefined) this.#closeEnded()
    if (
      options.zeroTail === true &&
      this.#stack.length === 1 &&
      this.#value === undefined &&
      this.#carry.subarray(0, this.#carried).every(b => b === 0)
    ) {
      this.#carried = 0
    }
    const value = this.#value
    if (value !== undefined) {
      const what = value.fragment ? 'a fragment of encapsulated pixel data' : `element ${tagName(value.el.tag)}`
      throw new InvalidDicomError(
        'truncated',
        `${what} (${value.el.length} bytes) runs past the end of the data (needs ${value.remaining} more bytes): ` +
          'the file is truncated'
      )
    }
    if (this.#carried > 0) {
      throw new InvalidDicomError(
        'truncated',
        `an element header runs past the end of the data (${this.#carried} of its bytes are there): ` +
          'the file is truncated'
      )
    }
    if (this.#stack.length > 1) {
      const what = describeOpen(this.#stack.at(-1) as Frame)
      throw new InvalidDicomError('truncated', `the data ends inside ${what}: the file is truncated`)
    }
  }

  /** How long the header at `pos` (after what is carried) is; undefined when its VR bytes are not there yet. */
  #headerLength(piece: Uint8Array, pos: number): number | undefined {
    return headerLength(this.#stack.at(-1) as Frame, i =>
      i < this.#carried ? this.#carry[i] : piece[pos + i - this.#carried]
    )
  }

  #closeEnded(): void {
    closeEnded(this.#stack, this.#offset, this.#visitor)
  }

  #fits(from: number, length: number, what: string): void {
    checkFits(this.#stack, from, length, what)
  }

  #header(header: Uint8Array): void {
    const top = this.#stack.at(-1) as Frame
    const syntax = top.kind === 'fragments' ? fragmentSyntax(this.#stack) : top.syntax
    const view = new DataView(header.buffer, header.byteOffset, header.byteLength)
    const little = syntax.little
    const tag = ((view.getUint16(0, little) << 16) | view.getUint16(2, little)) >>> 0
    const offset = this.#offset
    this.#offset += header.byteLength
    this.#fits(offset, header.byteLength, `the header of ${tagName(tag)}`)
    if (top.kind === 'sequence') {
      this.#sequenceItem(top, tag, view.getUint32(4, little), offset)
    } else if (top.kind === 'fragments') {
      this.#fragment(top, tag, view.getUint32(4, little), offset, syntax)
    } else {
      this.#element(top, tag, header, view, offset)
    }
  }

  #element(top: DatasetFrame, tag: number, header: Uint8Array, view: DataView, offset: number): void {
    const { syntax } = top
    if (tag === ITEM_DELIMITER) {
      if (!top.delimited)
        throw new InvalidDicomError(
          'bad-structure',
          `an Item Delimitation Item at offset ${offset} is outside any item of undefined length`
        )
      this.#stack.pop()
      this.#visitor.itemEnd?.()
      return
    }
    if (tag >>> 16 === 0xfffe)
      throw new InvalidDicomError('bad-structure', `unexpected ${tagName(tag)} at offset ${offset}, inside a data set`)
    if (top.depth === 0 && this.#ordered) {
      if (tag < top.lastTag)
        throw new InvalidDicomError('bad-structure', `element ${tagName(tag)} is out of order: the data is damaged`)
      top.lastTag = tag
    }
    let vr: string | undefined
    let length: number
    if (!syntax.explicit) {
      length = view.getUint32(4, syntax.little)
    } else {
      vr = String.fromCharCode(header[4] as number, header[5] as number)
      if (LONG_VRS.has(vr)) {
        length = view.getUint32(8, syntax.little)
      } else if (SHORT_VRS.has(vr)) {
        length = view.getUint16(6, syntax.little)
      } else {
        throw new InvalidDicomError(
          'bad-vr',
          `element ${tagName(tag)} has VR "${vr.replace(/[^\x20-\x7e]/g, '?')}", which is not a DICOM VR`
        )
      }
    }
    const el: ElementHeader = { tag, vr, length, offset, valueOffset: this.#offset, depth: top.depth, syntax }
    const known = vr ?? this.#visitor.implicitVr?.(el)
    const undefinedLength = length === UNDEFINED_LENGTH
    if (undefinedLength && tag === PIXEL_DATA) {
      this.#startFragments(el)
      return
    }
    if (known === 'SQ' || (undefinedLength && known !== 'OB' && known !== 'OW')) {
      // UN with undefined length holds implicit VR little endian items (PS3.5 6.2.2).
      if (top.depth + 1 > this.#maxDepth)
        throw new InvalidDicomError('too-deep', `sequences nested more than ${this.#maxDepth} deep`)
      if (!undefinedLength) this.#fits(el.valueOffset, length, `sequence ${tagName(tag)} (${length} bytes)`)
      this.#stack.push({
        kind: 'sequence',
        el,
        end: undefinedLength ? undefined : el.valueOffset + length,
        depth: top.depth + 1,
        syntax: vr === 'UN' ? IMPLICIT_LITTLE : syntax
      })
      this.#visitor.sequenceStart?.(el)
      return
    }
    if (undefinedLength) {
      // OB/OW of undefined length outside Pixel Data: encapsulated too (an icon image, say).
      this.#startFragments(el)
      return
    }
    this.#fits(el.valueOffset, length, `element ${tagName(tag)} (${length} bytes)`)
    this.#startValue(el, this.#visitor.element?.(el) ?? 'skip', false)
  }

  #startFragments(el: ElementHeader): void {
    this.#stack.push({ kind: 'fragments', el, count: 0 })
    this.#visitor.encapsulatedStart?.(el)
  }

  #sequenceItem(top: SequenceFrame, tag: number, length: number, offset: number): void {
    if (tag === SEQUENCE_DELIMITER) {
      if (top.end !== undefined)
        throw new InvalidDicomError(
          'bad-structure',
          `sequence ${tagName(top.el.tag)} of defined length has a Sequence Delimitation Item at offset ${offset}`
        )
      this.#stack.pop()
      this.#visitor.sequenceEnd?.(top.el)
      return
    }
    if (tag !== ITEM)
      throw new InvalidDicomError(
        'bad-structure',
        `sequence ${tagName(top.el.tag)} holds ${tagName(tag)} at offset ${offset} where an item should be`
      )
    const undefinedLength = length === UNDEFINED_LENGTH
    if (!undefinedLength) this.#fits(this.#offset, length, `an item of ${tagName(top.el.tag)} (${length} bytes)`)
    this.#stack.push({
      kind: 'dataset',
      end: undefinedLength ? undefined : this.#offset + length,
      delimited: undefinedLength,
      depth: top.depth,
      syntax: top.syntax,
      lastTag: -1
    })
    this.#visitor.itemStart?.(offset, length, top.depth)
  }

  #fragment(top: FragmentsFrame, tag: number, length: number, offset: number, syntax: Syntax): void {
    if (tag === SEQUENCE_DELIMITER) {
      this.#stack.pop()
      this.#visitor.encapsulatedEnd?.(top.el)
      return
    }
    if (tag !== ITEM)
      throw new InvalidDicomError(
        'bad-structure',
        `encapsulated ${tagName(top.el.tag)} holds ${tagName(tag)} at offset ${offset} where a fragment should be`
      )
    if (length === UNDEFINED_LENGTH)
      throw new InvalidDicomError(
        'bad-structure',
        `a fragment of encapsulated ${tagName(top.el.tag)} has an undefined length`
      )
    if (top.count >= this.#maxFragments) {
      throw new InvalidDicomError(
        'bad-structure',
        `encapsulated ${tagName(top.el.tag)} has more than ${this.#maxFragments} fragments`
      )
    }
    this.#fits(this.#offset, length, `a fragment of encapsulated ${tagName(top.el.tag)} (${length} bytes)`)
    const el: ElementHeader = { tag: ITEM, vr: undefined, length, offset, valueOffset: this.#offset, depth: -1, syntax }
    const index = top.count++
    this.#startValue(el, this.#visitor.fragment?.(index, el) ?? 'skip', true)
  }

  #startValue(el: ElementHeader, action: ValueAction, fragment: boolean): void {
    if (action === 'collect' && el.length > this.#maxValueBytes) {
      const what = fragment ? 'a fragment' : `element ${tagName(el.tag)}`
      throw new InvalidDicomError(
        'bad-structure',
        `${what} declares ${el.length} bytes, more than the ${this.#maxValueBytes} radmesh reads as one value`
      )
    }
    const value: PendingValue = {
      el,
      action,
      remaining: el.length,
      filled: 0,
      fragment,
      // Sized by the declared length only once it is known to be within the bound above.
      buffer: action === 'collect' ? new Uint8Array(el.length) : undefined
    }
    if (el.length === 0) {
      this.#finishValue(value)
      return
    }
    this.#value = value
  }

  #consumeValue(value: PendingValue, bytes: Uint8Array): void {
    if (value.action === 'collect') {
      ;(value.buffer as Uint8Array).set(bytes, value.filled)
    } else if (value.action === 'stream') {
      this.#visitor.valuePiece?.(value.el, bytes, this.#offset)
    }
    value.filled += bytes.byteLength
    value.remaining -= bytes.byteLength
    this.#offset += bytes.byteLength
    if (value.remaining === 0) {
      this.#value = undefined
      this.#finishValue(value)
    }
  }

  #finishValue(value: PendingValue): void {
    if (value.action === 'collect') this.#visitor.value?.(value.el, value.buffer as Uint8Array)
  }
}

/** Reads a whole data set held in memory; returns after `end()`. */
export function readDataset(bytes: Uint8Array, syntax: Syntax, visitor: DatasetVisitor, limits?: ReaderLimits): void {
  const reader = new DatasetReader(syntax, visitor, limits)
  reader.push(bytes)
  reader.end()
}
