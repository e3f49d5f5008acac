/**
 * The containers the data set reader (reader.ts) is inside as it walks: the top-level data set, the items of
 * sequences, sequences, and encapsulated values; where each ends, what bounds the next element, and how long
 * the next element header is. The reader keeps them as a stack, innermost last.
 */
import { EXPLICIT_LITTLE, LONG_VRS, type Syntax, tagName } from './dictionary.ts'
import { InvalidDicomError } from './errors.ts'
import type { DatasetVisitor, ElementHeader } from './visitor.ts'

/** A data set level being read: the top level, or an item. */
export interface DatasetFrame {
  kind: 'dataset'
  /** where it ends (an item of defined length), or undefined (the top level; an item of undefined length) */
  end: number | undefined
  /** an item of undefined length ends at its Item Delimitation Item */
  delimited: boolean
  depth: number
  syntax: Syntax
  lastTag: number
}

export interface SequenceFrame {
  kind: 'sequence'
  el: ElementHeader
  /** defined length: where it ends; undefined: at its Sequence Delimitation Item */
  end: number | undefined
  /** depth of its items */
  depth: number
  syntax: Syntax
}

export interface FragmentsFrame {
  kind: 'fragments'
  el: ElementHeader
  count: number
}

export type Frame = DatasetFrame | SequenceFrame | FragmentsFrame

/**
 * How long the next header is: 8, or 12 for a long explicit VR; undefined when its VR bytes are not there
 * yet. `byteAt(i)` is the header's byte i, or undefined when it has not arrived.
 */
export function headerLength(top: Frame, byteAt: (i: number) => number | undefined): number | undefined {
  if (top.kind !== 'dataset' || !top.syntax.explicit) return 8
  const bytes = [0, 1, 2, 3, 4, 5].map(byteAt)
  const [b0, b1, , , v0, v1] = bytes
  if (bytes.some(b => b === undefined)) return undefined
  // Item and delimitation tags have no VR in any syntax.
  const group = top.syntax.little ? (b0 as number) | ((b1 as number) << 8) : ((b0 as number) << 8) | (b1 as number)
  if (group === 0xfffe) return 8
  return LONG_VRS.has(String.fromCharCode(v0 as number, v1 as number)) ? 12 : 8
}

/** Ends the items and sequences of defined length whose end `offset` has reached, telling the visitor. */
export function closeEnded(stack: Frame[], offset: number, visitor: DatasetVisitor): void {
  for (;;) {
    const top = stack.at(-1) as Frame
    if (top.kind === 'fragments' || top.end === undefined || offset < top.end) return
    stack.pop()
    if (top.kind === 'dataset') visitor.itemEnd?.()
    else visitor.sequenceEnd?.(top.el)
  }
}

/** Where the innermost container of defined length ends (undefined: only the end of the data bounds it). */
function boundOf(stack: Frame[]): number | undefined {
  let bound: number | undefined
  for (const frame of stack) {
    if (frame.kind !== 'fragments' && frame.end !== undefined)
      bound = bound === undefined ? frame.end : Math.min(bound, frame.end)
  }
  return bound
}

/** Throws when `length` bytes from `from` run past the item or sequence holding them. */
export function checkFits(stack: Frame[], from: number, length: number, what: string): void {
  const bound = boundOf(stack)
  if (bound !== undefined && from + length > bound) {
    throw new InvalidDicomError(
      'bad-structure',
      `${what} runs ${from + length - bound} bytes past the end of the item or sequence holding it: ` +
        'the data is damaged'
    )
  }
}

/** The encoding of the fragments of an encapsulated value: that of the data set level holding it. */
export function fragmentSyntax(stack: Frame[]): Syntax {
  for (let i = stack.length - 1; i >= 0; i--) {
    const frame = stack[i] as Frame
    if (frame.kind === 'dataset') return frame.syntax
  }
  return EXPLICIT_LITTLE
}

/** The container the data ended inside, as people read it. */
export function describeOpen(open: Frame): string {
  if (open.kind === 'fragments') return `encapsulated ${tagName(open.el.tag)}`
  if (open.kind === 'sequence') return `sequence ${tagName(open.el.tag)}`
  return 'an item'
}
