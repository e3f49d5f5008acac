/**
 * Reading a multipart/related body as it arrives (`MultipartParser`), or at hand (`parseMultipartRelated`): see
 * ../multipart.ts for the body's grammar and what the parser holds.
 */
import { MalformedMessageError } from '../../errors.ts'
import { checkReadBoundary, multipartBoundary, TOKEN } from './content-type.ts'
import { DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_PARTS, MAX_TRANSPORT_PADDING, type MultipartLimits } from './limits.ts'

export interface MultipartPart {
  /** Header fields by lower-cased name; a field given twice keeps its values joined by ", ". */
  headers: Record<string, string>
  /** A view into the parsed body (no copy). */
  body: Uint8Array
}

/**
 * What `MultipartParser` reports, in order: for each part `part` (its header fields), `body` as many times as
 * the body came in pieces (none for an empty body), `part-end`; then `end` for the closing delimiter.
 */
export type MultipartEvent =
  | { type: 'part'; part: number; headers: Record<string, string> }
  | { type: 'body'; bytes: Uint8Array }
  | { type: 'part-end'; part: number }
  | { type: 'end' }

const CR = 0x0d
const LF = 0x0a
const HYPHEN = 0x2d
const SPACE = 0x20
const TAB = 0x09
const EMPTY = new Uint8Array(0)

const encoder = new TextEncoder()
const latin1 = new TextDecoder('latin1')

/**
 * Node's Buffer.prototype.indexOf finds a byte string natively (V8's Boyer-Moore-Horspool), several times faster
 * than a loop in JavaScript on ordinary bytes. Browsers have no Buffer: there the loop (`#find`) does it all.
 */
type NativeIndexOf = (this: Uint8Array, value: Uint8Array, byteOffset: number) => number
const nativeIndexOf = (globalThis as { Buffer?: { prototype: { indexOf: NativeIndexOf } } }).Buffer?.prototype.indexOf
/**
 * V8 searches a pattern shorter than this from each occurrence of its first byte: one call per CR in a run of CR.
 * Such a delimiter (a boundary of 1 to 3 characters) is left to the loop.
 */
const NATIVE_MIN_PATTERN = 8

/** A delimiter line: where it starts (its CR LF) and ends (after its CR LF, or its closing "--"). */
interface Delimiter {
  kind: 'delimiter'
  at: number
  end: number
  closing: boolean
}
/** No delimiter line before `at`; the bytes from `at` on may begin one and are to be read again with more. */
interface Hold {
  kind: 'hold'
  at: number
}

/**
 * Reads a multipart/related body pushed in pieces; see ../multipart.ts. `push` and `end` append what they
 * find to `into` and return it; on a malformed body they throw MalformedMessageError, `into` then holding what
 * came before the fault (a receiver can keep the parts that were whole), and every later call throws it again.
 * A `body` event is a view into the piece pushed: the caller must not change a piece's bytes while it uses one.
 */
export class MultipartParser {
  /** CR LF "--" boundary: the start of every delimiter line but one opening the body. */
  readonly #pattern: Uint8Array
  /** the longest delimiter line: the pattern, its padding and its CR LF */
  readonly #maxLine: number
  readonly #maxParts: number
  readonly #maxHeaderBytes: number
  #phase: 'preamble' | 'headers' | 'body' | 'epilogue' = 'preamble'
  /**
   * Bytes from the end of the pieces before, in the preamble or a body, that may begin a delimiter line (at most
   * one line). The body starts as if after a CR LF: a delimiter may open it.
   */
  #carry: Uint8Array = Uint8Array.of(CR, LF)
  /** The part's header block so far, after the CR LF of its delimiter line (so an empty block is CR LF CR LF). */
  #head: Uint8Array = EMPTY
  #headLength = 0
  #parts = 0
  /** the native search, for this piece: until a boundary look-alike shows the piece is made to slow it */
  #native = false
  #failure: MalformedMessageError | undefined

  constructor(boundary: string, limits: MultipartLimits = {}) {
    checkReadBoundary(boundary)
    this.#pattern = encoder.encode(`\r\n--${boundary}`)
    this.#maxLine = this.#pattern.length + MAX_TRANSPORT_PADDING + 2
    this.#maxParts = limits.maxParts ?? DEFAULT_MAX_PARTS
    this.#maxHeaderBytes = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES
  }

  /** The parts begun so far. */
  get parts(): number {
    return this.#parts
  }

  /** True once the closing delimiter was read: what follows is epilogue, read and ignored. */
  get ended(): boolean {
    return this.#phase === 'epilogue'
  }

  push(piece: Uint8Array, into: MultipartEvent[] = []): MultipartEvent[] {
    if (this.#failure !== undefined) throw this.#failure
    if (this.#phase === 'epilogue') return into
    this.#native = nativeIndexOf !== undefined && this.#pattern.length >= NATIVE_MIN_PATTERN
    try {
      let at = this.#carry.length > 0 ? this.#joinCarry(piece, into) : 0
      while (at < piece.length && !this.ended) {
        at = this.#phase === 'headers' ? this.#readHeaders(piece, at, into) : this.#readBody(piece, at, into)
      }
    } catch (error) {
      if (error instanceof MalformedMessageError) this.#failure = error
      throw error
    }
    return into
  }

  /** The body is over: throws MalformedMessageError unless its closing delimiter was read. */
  end(into: MultipartEvent[] = []): MultipartEvent[] {
    if (this.#failure !== undefined) throw this.#failure
    if (this.#phase === 'epilogue') return into
    this.#failure = new MalformedMessageError(
      this.#phase === 'preamble'
        ? 'multipart body has no delimiter for its boundary'
        : `multipart body ends inside part ${this.#parts}: no closing delimiter`
    )
    throw this.#failure
  }

  /** The preamble or a body from `at`: up to and through the next delimiter line, or to the piece's end. */
  #readBody(piece: Uint8Array, at: number, into: MultipartEvent[]): number {
    const found = this.#delimiter(piece, at)
    this.#emit(piece.subarray(at, found.at), into)
    if (found.kind === 'hold') {
      this.#carry = new Uint8Array(piece.subarray(found.at)) // a copy (of one line at most): the piece may be reused
      return piece.length
    }
    this.#onDelimiter(found, into)
    return found.end
  }

  /**
   * The carried bytes with the start of the new piece: whether a delimiter line begins in the carried bytes.
   * Only the carry and one line's length of the piece are joined (copied); returns where to go on in the piece.
   */
  #joinCarry(piece: Uint8Array, into: MultipartEvent[]): number {
    const carry = this.#carry
    const head = piece.subarray(0, this.#maxLine)
    const joined = new Uint8Array(carry.length + head.length)
    joined.set(carry)
    joined.set(head, carry.length)
    this.#carry = EMPTY
    const found = this.#delimiter(joined, 0)
    if (found.at >= carry.length) {
      // none begins in the carried bytes: they were body
      this.#emit(carry, into)
      return 0
    }
    this.#emit(joined.subarray(0, found.at), into)
    if (found.kind === 'hold') {
      // A line that begins in the carried bytes is whole within them and `#maxLine` bytes more: it is undecided
      // only when the piece is shorter than that, so `joined` holds all of it.
      this.#carry = joined.subarray(found.at)
      return piece.length
    }
    this.#onDelimiter(found, into)
    return found.end - carry.length
  }

  /** A part's header block from `at`, to its empty line or the piece's end; returns where its body begins. */
  #readHeaders(piece: Uint8Array, at: number, into: MultipartEvent[]): number {
    const room = this.#head.length
    const before = this.#headLength
    const take = piece.subarray(at, at + room - before)
    this.#head.set(take, before)
    this.#headLength += take.length
    const head = this.#head.subarray(0, this.#headLength)
    let end = -1
    for (let i = Math.max(0, before - 3); i + 3 < head.length; i++) {
      if (head[i] === CR && head[i + 1] === LF && head[i + 2] === CR && head[i + 3] === LF) {
        end = i
        break
      }
    }
    if (end === -1) {
      if (head.length === room) {
        const limit = this.#maxHeaderBytes
        throw new MalformedMessageError(`multipart part ${this.#parts} has no end of headers within ${limit} bytes`)
      }
      return piece.length
    }
    // `end` is 0 for an empty block (the delimiter's own CR LF, then CR LF), else at least 2.
    const headers = parseHeaders(head.subarray(2, Math.max(2, end)), this.#parts)
    into.push({ type: 'part', part: this.#parts, headers })
    this.#headLength = 0
    this.#phase = 'body'
    return at + end + 4 - before
  }

  #onDelimiter(found: Delimiter, into: MultipartEvent[]): void {
    if (this.#phase === 'body') into.push({ type: 'part-end', part: this.#parts })
    if (found.closing) {
      this.#phase = 'epilogue'
      into.push({ type: 'end' })
      return
    }
    if (this.#parts === this.#maxParts) {
      throw new MalformedMessageError(`multipart body has more than ${this.#maxParts} parts`)
    }
    this.#parts++
    this.#phase = 'headers'
    // room for the CR LF before the block, the block, and CR LF CR LF
    if (this.#head.length === 0) this.#head = new Uint8Array(this.#maxHeaderBytes + 6)
    this.#head[0] = CR
    this.#head[1] = LF
    this.#headLength = 2
  }

  #emit(bytes: Uint8Array, into: MultipartEvent[]): void {
    if (this.#phase === 'body' && bytes.length > 0) into.push({ type: 'body', bytes })
  }

  /** The first delimiter line in `bytes` from `from`, or where the bytes that may begin one start. */
  #delimiter(bytes: Uint8Array, from: number): Delimiter | Hold {
    const length = this.#pattern.length
    for (let at = from; ; ) {
      const start = this.#find(bytes, at)
      if (start === -1) return { kind: 'hold', at: this.#partial(bytes, Math.max(at, bytes.length - length + 1)) }
      const line = lineEnd(bytes, start + length)
      if (line === 'more') return { kind: 'hold', at: start }
      if (line !== undefined) return { kind: 'delimiter', at: start, ...line }
      // The boundary as the prefix of a longer word: body. Such look-alikes could be sent one after another
      // to make a native call each: the loop reads the rest of this piece.
      this.#native = false
      at = start + 1
    }
  }

  /** Where the next CR LF "--" boundary starts in `bytes` at or after `from`, or -1. */
  #find(bytes: Uint8Array, from: number): number {
    const pattern = this.#pattern
    if (this.#native) return (nativeIndexOf as NativeIndexOf).call(bytes, pattern, from)
    // The pattern opens with CR LF "-" "-", and that CR is its only one (a boundary holds none). The loop looks at
    // every fourth byte: one of the first four of any pattern, so the byte tells where a pattern holding it would
    // start (a CR there, an LF one before, a "-" two or three). Compared from that start, the bytes that match
    // hold no other CR, so the next pattern starts past them: each byte is read a bounded number of times.
    const length = pattern.length
    const last = bytes.length - length // the last place a whole pattern can start
    for (let i = from + 3; i - 3 <= last; i += 4) {
      const byte = bytes[i]
      let start: number
      if (byte === CR) start = i
      else if (byte === LF) start = i - 1
      else if (byte === HYPHEN && bytes[i - 1] === LF) start = i - 2
      else if (byte === HYPHEN && bytes[i - 1] === HYPHEN) start = i - 3
      else continue
      if (start > last) return -1
      let k = 0
      while (k < length && bytes[start + k] === pattern[k]) k++
      if (k === length) return start
    }
    return -1
  }

  /**
   * The first place at or after `from` where the rest of `bytes` is the start of the pattern, else the end.
   * Called with `from` within one pattern's length of the end, and each compare stops at the next CR: linear.
   */
  #partial(bytes: Uint8Array, from: number): number {
    for (let start = bytes.indexOf(CR, from); start !== -1; start = bytes.indexOf(CR, start + 1)) {
      let k = 1
      while (start + k < bytes.length && bytes[start + k] === this.#pattern[k]) k++
      if (start + k === bytes.length) return start
    }
    return bytes.length
  }
}

/**
 * After a CR LF "--" boundary that ends at `at`: where its delimiter line ends and whether it closes the body;
 * `undefined` when it is no delimiter (the boundary is the prefix of a longer word); 'more' when the bytes
 * end before that can be told.
 */
function lineEnd(bytes: Uint8Array, at: number): { end: number; closing: boolean } | 'more' | undefined {
  if (at >= bytes.length) return 'more'
  if (bytes[at] === HYPHEN) {
    if (at + 1 >= bytes.length) return 'more'
    return bytes[at + 1] === HYPHEN ? { end: at + 2, closing: true } : undefined
  }
  let i = at
  while (i < bytes.length && (bytes[i] === SPACE || bytes[i] === TAB)) {
    i++
    if (i - at > MAX_TRANSPORT_PADDING) {
      throw new MalformedMessageError(
        `a multipart delimiter is followed by more than ${MAX_TRANSPORT_PADDING} bytes of white space`
      )
    }
  }
  if (i >= bytes.length) return 'more'
  if (bytes[i] !== CR) return undefined
  if (i + 1 >= bytes.length) return 'more'
  return bytes[i + 1] === LF ? { end: i + 2, closing: false } : undefined
}

/** Parses the header block of one part (the bytes up to, not including, the empty line). */
function parseHeaders(block: Uint8Array, partNumber: number): Record<string, string> {
  const headers: Record<string, string> = {}
  if (block.length === 0) return headers
  const lines = latin1.decode(block).split('\r\n')
  let previous: string | undefined
  for (const line of lines) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && previous !== undefined) {
      // obsolete line folding
      headers[previous] = `${headers[previous]} ${line.trim()}`.trim()
      continue
    }
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    if (colon <= 0 || !TOKEN.test(name)) {
      throw new MalformedMessageError(`multipart part ${partNumber} has a header line without "name:"`)
    }
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
    previous = name
  }
  return headers
}

/**
 * Splits a multipart/related body at hand into its parts (`MultipartParser` over one piece). The boundary comes
 * from `contentType`; the preamble and the epilogue are ignored. Throws MalformedMessageError as
 * `multipartBoundary` does, when no delimiter or no closing delimiter is found, when a part has no end of
 * headers, and on more than `limits.maxParts` parts.
 */
export function parseMultipartRelated(
  body: Uint8Array,
  contentType: string,
  limits: MultipartLimits = {}
): MultipartPart[] {
  const parser = new MultipartParser(multipartBoundary(contentType), limits)
  const events = parser.end(parser.push(body))
  const parts: MultipartPart[] = []
  let headers: Record<string, string> = {}
  let pieces: Uint8Array[] = []
  for (const event of events) {
    if (event.type === 'part') {
      headers = event.headers
      pieces = []
    } else if (event.type === 'body') {
      pieces.push(event.bytes)
    } else if (event.type === 'part-end') {
      parts.push({ headers, body: pieces.length === 1 ? (pieces[0] as Uint8Array) : concatBytes(pieces) })
    }
  }
  return parts
}

function concatBytes(pieces: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((n, piece) => n + piece.length, 0))
  let at = 0
  for (const piece of pieces) {
    out.set(piece, at)
    at += piece.length
  }
  return out
}
