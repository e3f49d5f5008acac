/**
 * What the data set reader (reader.ts) tells whoever reads through it, and the bounds it reads within. A
 * visitor says what it wants of each value; everything else is passed over unread.
 */
import type { Syntax } from './dictionary.ts'

export interface ElementHeader {
  /** (group << 16 | element), unsigned */
  tag: number
  /** the VR as written (explicit VR), or undefined (implicit VR) */
  vr: string | undefined
  /** the value length, or UNDEFINED_LENGTH */
  length: number
  /** where the element's header starts, from the start of the data set */
  offset: number
  /** where its value starts */
  valueOffset: number
  /** 0 for the top level, 1 inside the items of a top-level sequence, … */
  depth: number
  /** the encoding its value is in (a UN sequence's items are implicit VR little endian) */
  syntax: Syntax
}

/** What the visitor wants of a value: nothing, the whole value at once, or its pieces as they come. */
export type ValueAction = 'skip' | 'collect' | 'stream'

/** Every method is optional; an element whose visitor says nothing is skipped. */
export interface DatasetVisitor {
  /** A value (not a sequence, not an encapsulated value): what to do with it. */
  element?(el: ElementHeader): ValueAction | undefined
  /** The whole value of an element (or fragment) the visitor chose to collect. */
  value?(el: ElementHeader, value: Uint8Array): void
  /** A piece of a value the visitor chose to stream, in order; `at` is where the piece starts in the data set. */
  valuePiece?(el: ElementHeader, piece: Uint8Array, at: number): void
  /**
   * In implicit VR, the VR of an element if the visitor knows it: a defined-length sequence is read as one
   * only so. Asked of every element of an implicit VR data set before anything else is done with it.
   */
  implicitVr?(el: ElementHeader): string | undefined
  sequenceStart?(el: ElementHeader): void
  sequenceEnd?(el: ElementHeader): void
  /** An item of the sequence last started; `length` may be UNDEFINED_LENGTH. */
  itemStart?(offset: number, length: number, depth: number): void
  itemEnd?(): void
  /** An encapsulated value (undefined length OB/OW: compressed pixel data, mostly). */
  encapsulatedStart?(el: ElementHeader): void
  /**
   * One item of an encapsulated value: index 0 is the Basic Offset Table, then the fragments. `el` describes
   * the item itself (tag ITEM, its length and offsets). Collected or streamed like a value.
   */
  fragment?(index: number, el: ElementHeader): ValueAction | undefined
  encapsulatedEnd?(el: ElementHeader): void
}

export interface ReaderLimits {
  /** sequences nested deeper than this are refused (an attack, not an image) */
  maxDepth?: number
  /** the largest value a visitor may collect whole; a larger one it asked for is refused */
  maxValueBytes?: number
  /** items (offset table and fragments) an encapsulated value may have */
  maxFragments?: number
  /** top-level elements must come in ascending tag order (default true) */
  ordered?: boolean
}

export const DEFAULT_MAX_DEPTH = 32
export const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024
/** A 2 GiB object of 64 KiB fragments; a cine loop of 10,000 frames. */
export const DEFAULT_MAX_FRAGMENTS = 65_536
