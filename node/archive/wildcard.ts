/**
 * DICOM wildcard matching (PS3.4 C.2.2.2.4): `*` matches any run of characters, none included, and `?` exactly
 * one character. Characters are Unicode code points, as a `u` regular expression would count them.
 *
 * Linear in the value's length for a pattern of bounded length, whatever the pattern: no backtracking. The
 * pattern is cut at its `*`s; the first piece must start the value and the last end it, and every piece in
 * between is found at its leftmost place after the one before (taking the leftmost is never worse). The search
 * for a middle piece is bit-parallel (Shift-And, Baeza-Yates & Gonnet 1992), so a `?` costs nothing more:
 * one pass over the value, `ceil(piece length / 32)` word operations per character.
 */

/** `?` in a compiled piece: not a code point. */
const ANY = -1

export type WildcardMatcher = (value: string) => boolean

/** The code points of `text`; with `fold`, each folded to its lower case (simple case folding). */
function codePoints(text: string, fold: boolean): number[] {
  const points: number[] = []
  for (const character of text) {
    const point = character.codePointAt(0) as number
    points.push(fold ? foldCase(point) : point)
  }
  return points
}

const single = (text: string): number | undefined => {
  const point = text.codePointAt(0)
  return point !== undefined && text.length === (point > 0xffff ? 2 : 1) ? point : undefined
}

/**
 * A code point's case-folded form, one code point for one, as `/iu` compares characters: through the upper
 * case (so ẞ and ß, K and the Kelvin sign meet), keeping the code point when its case changes its length.
 */
function foldCase(point: number): number {
  if (point < 0x80) return point >= 0x41 && point <= 0x5a ? point + 0x20 : point
  const character = String.fromCodePoint(point)
  const upper = character.toUpperCase()
  const lower = (single(upper) === undefined ? character : upper).toLowerCase()
  return single(lower) ?? point
}

const fitsAt = (points: readonly number[], piece: readonly number[], at: number): boolean => {
  for (let i = 0; i < piece.length; i++) {
    const wanted = piece[i] as number
    if (wanted !== ANY && wanted !== points[at + i]) return false
  }
  return true
}

/** Finds one piece (code points and `?`s) at its leftmost place in a range of a value, in one pass. */
class PieceSearch {
  readonly length: number
  private readonly words: number
  private readonly masks = new Map<number, Uint32Array>()
  /** where a character the piece does not name may stand: at its `?`s */
  private readonly anyMask: Uint32Array

  constructor(piece: readonly number[]) {
    this.length = piece.length
    this.words = Math.ceil(piece.length / 32)
    this.anyMask = new Uint32Array(this.words)
    piece.forEach((point, i) => {
      if (point === ANY) this.setBit(this.anyMask, i)
    })
    piece.forEach((point, i) => {
      if (point === ANY) return
      let mask = this.masks.get(point)
      if (mask === undefined) {
        mask = Uint32Array.from(this.anyMask)
        this.masks.set(point, mask)
      }
      this.setBit(mask, i)
    })
  }

  private setBit(mask: Uint32Array, i: number): void {
    mask[i >>> 5] = (mask[i >>> 5] as number) | (1 << (i & 31))
  }

  /** The index just past the leftmost occurrence within `points[from, to)`, or -1. */
  endOfFirst(points: readonly number[], from: number, to: number): number {
    const state = new Uint32Array(this.words)
    const lastWord = this.words - 1
    const lastBit = (this.length - 1) & 31
    for (let at = from; at < to; at++) {
      const mask = this.masks.get(points[at] as number) ?? this.anyMask
      // Bit i of the state: the piece's first i + 1 characters end at `at`.
      let carry = 1
      for (let w = 0; w < this.words; w++) {
        const word = state[w] as number
        state[w] = ((word << 1) | carry) & (mask[w] as number)
        carry = word >>> 31
      }
      if ((((state[lastWord] as number) >>> lastBit) & 1) === 1) return at + 1
    }
    return -1
  }
}

/** A matcher for one DICOM wildcard pattern; `ignoreCase` folds case on both sides (fuzzy Person Names). */
export function wildcardMatcher(pattern: string, ignoreCase: boolean): WildcardMatcher {
  const pieces: number[][] = [[]]
  for (const point of codePoints(pattern, ignoreCase)) {
    if (point === 0x2a) pieces.push([])
    else (pieces[pieces.length - 1] as number[]).push(point === 0x3f ? ANY : point)
  }
  const first = pieces[0] as number[]
  if (pieces.length === 1) {
    return value => {
      const points = codePoints(value, ignoreCase)
      return points.length === first.length && fitsAt(points, first, 0)
    }
  }
  const last = pieces[pieces.length - 1] as number[]
  // Runs of `*` leave empty pieces between them: they match anywhere, so they are dropped.
  const middle = pieces
    .slice(1, -1)
    .filter(piece => piece.length > 0)
    .map(piece => new PieceSearch(piece))
  return value => {
    const points = codePoints(value, ignoreCase)
    const end = points.length - last.length
    if (end < first.length || !fitsAt(points, first, 0) || !fitsAt(points, last, end)) return false
    let at = first.length
    for (const piece of middle) {
      at = piece.endOfFirst(points, at, end)
      if (at < 0) return false
    }
    return true
  }
}
