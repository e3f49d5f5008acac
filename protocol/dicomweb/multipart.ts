/**
 * multipart/related (RFC 2387 over RFC 2046), as DICOMweb uses it (PS3.18 8.6.1.2): STOW-RS request bodies
 * and WADO-RS response bodies.
 *
 * Parsing is binary-safe and copies nothing: a part's body is a subarray of the request body, so a part holding
 * a DICOM file can contain any byte sequence, including CR LF "--" and the first characters of the boundary.
 * Only a line that starts with "--" + boundary and ends with optional white space and CR LF (or "--", closing)
 * is a delimiter; anything else is body.
 *
 * Encoding yields the delimiters and headers as small chunks and every body as the caller's own Uint8Array,
 * so a response of hundreds of megabytes can be streamed without ever being concatenated.
 */
import { MalformedMessageError } from '../errors.ts'

export interface ContentType {
  /** "type/subtype", lower-cased. */
  type: string
  /** Parameters by lower-cased name; quoted values are unquoted. */
  params: Record<string, string>
}

export interface MultipartPart {
  /** Header fields by lower-cased name; a field given twice keeps its values joined by ", ". */
  headers: Record<string, string>
  /** A view into the parsed body (no copy). */
  body: Uint8Array
}

export interface EncodablePart {
  contentType: string
  body: Uint8Array
  /** Sent as Content-Location (PS3.18 uses it for the retrieve URL of a part). */
  location?: string
}

export interface MultipartLimits {
  /** At most this many parts (default 10000); more is a MalformedMessageError. */
  maxParts?: number
  /** At most this many bytes of header fields per part (default 16384). */
  maxHeaderBytes?: number
}

export const DEFAULT_MAX_PARTS = 10000
const DEFAULT_MAX_HEADER_BYTES = 16384

const CR = 0x0d
const LF = 0x0a
const HYPHEN = 0x2d
const SPACE = 0x20
const TAB = 0x09
const CRLFCRLF = new Uint8Array([CR, LF, CR, LF])

const encoder = new TextEncoder()
const latin1 = new TextDecoder('latin1')

/** RFC 2045 token characters: visible ASCII except tspecials. */
const TOKEN = /^[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+$/
/** RFC 2046 boundary: 1 to 70 of these, not ending with a space. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/

/**
 * Parses a Content-Type header value: `type/subtype; name=value; name="quoted \" value"`.
 * Names (type and parameter names) are case-insensitive and returned lower-cased; values keep their case.
 * Throws MalformedMessageError when there is no type/subtype or a parameter cannot be read.
 */
export function parseContentType (header: string): ContentType {
  let i = 0
  const skipSpace = (): void => {
    while (i < header.length && (header[i] === ' ' || header[i] === '\t')) i++
  }
  const readToken = (): string => {
    const start = i
    while (i < header.length && TOKEN.test(header[i] as string)) i++
    return header.slice(start, i)
  }

  skipSpace()
  const major = readToken()
  if (header[i] !== '/') throw new MalformedMessageError(`content type "${header}" has no type/subtype`)
  i++
  const minor = readToken()
  if (major === '' || minor === '') throw new MalformedMessageError(`content type "${header}" has no type/subtype`)
  const type = `${major}/${minor}`.toLowerCase()
  const params: Record<string, string> = {}
  skipSpace()
  while (i < header.length) {
    if (header[i] !== ';') throw new MalformedMessageError(`content type "${header}": expected ";" at character ${i + 1}`)
    i++
    skipSpace()
    if (i >= header.length) break // a trailing ";" is common and harmless
    const name = readToken().toLowerCase()
    if (name === '' || header[i] !== '=') throw new MalformedMessageError(`content type "${header}": a parameter has no name=value`)
    i++
    let value: string
    if (header[i] === '"') {
      i++
      value = ''
      for (;;) {
        if (i >= header.length) throw new MalformedMessageError(`content type "${header}": unterminated quoted string`)
        const c = header[i++] as string
        if (c === '"') break
        if (c === '\\' && i < header.length) value += header[i++] as string
        else value += c
      }
    } else {
      value = readToken()
      if (value === '') throw new MalformedMessageError(`content type "${header}": parameter ${name} has no value`)
    }
    if (!Object.hasOwn(params, name)) params[name] = value
    skipSpace()
  }
  return { type, params }
}

/** Where `pattern` starts in `haystack` at or after `from`, or -1. */
function indexOfBytes (haystack: Uint8Array, pattern: Uint8Array, from: number): number {
  const first = pattern[0] as number
  const last = haystack.length - pattern.length
  for (let i = haystack.indexOf(first, from); i !== -1 && i <= last; i = haystack.indexOf(first, i + 1)) {
    let j = 1
    while (j < pattern.length && haystack[i + j] === pattern[j]) j++
    if (j === pattern.length) return i
  }
  return -1
}

/**
 * If a delimiter line starts at `at` (the position of its "--"), where its line ends: the position after its
 * CR LF, or after the closing "--". `undefined` when the text there is not a delimiter (the boundary is only
 * the prefix of something longer).
 */
function delimiterEnd (body: Uint8Array, at: number, dashBoundaryLength: number): { end: number, closing: boolean } | undefined {
  let i = at + dashBoundaryLength
  if (body[i] === HYPHEN && body[i + 1] === HYPHEN) return { end: i + 2, closing: true }
  while (body[i] === SPACE || body[i] === TAB) i++ // transport padding
  if (body[i] === CR && body[i + 1] === LF) return { end: i + 2, closing: false }
  return undefined
}

/** Parses the header block of one part (the bytes up to, not including, the empty line). */
function parseHeaders (block: Uint8Array, partNumber: number): Record<string, string> {
  const headers: Record<string, string> = {}
  if (block.length === 0) return headers
  const lines = latin1.decode(block).split('\r\n')
  let previous: string | undefined
  for (const line of lines) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && previous !== undefined) { // obsolete line folding
      headers[previous] = `${headers[previous]} ${line.trim()}`.trim()
      continue
    }
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    if (colon <= 0 || !TOKEN.test(name)) throw new MalformedMessageError(`multipart part ${partNumber} has a header line without "name:"`)
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
    previous = name
  }
  return headers
}

/**
 * Splits a multipart/related body into its parts. The boundary comes from `contentType`; the preamble
 * (before the first delimiter) and the epilogue (after the closing one) are ignored.
 * Throws MalformedMessageError when the content type is not multipart/related or has no usable boundary,
 * when no delimiter or no closing delimiter is found, when a part has no end of headers, and on more
 * than `limits.maxParts` parts.
 */
export function parseMultipartRelated (body: Uint8Array, contentType: string, limits: MultipartLimits = {}): MultipartPart[] {
  const maxParts = limits.maxParts ?? DEFAULT_MAX_PARTS
  const maxHeaderBytes = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES
  const { type, params } = parseContentType(contentType)
  if (type !== 'multipart/related') throw new MalformedMessageError(`content type is ${type}, expected multipart/related`)
  const boundary = params['boundary']
  if (boundary === undefined || boundary === '') throw new MalformedMessageError('multipart/related content type has no boundary parameter')
  if (!BOUNDARY.test(boundary)) throw new MalformedMessageError('multipart boundary must be 1 to 70 characters of the RFC 2046 set')

  const dashBoundary = encoder.encode(`--${boundary}`)
  const delimiter = encoder.encode(`\r\n--${boundary}`)

  // The first delimiter may open the body (no CR LF before it); otherwise it follows the preamble.
  let found: { end: number, closing: boolean } | undefined
  let at = 0
  if (indexOfBytes(body.subarray(0, dashBoundary.length), dashBoundary, 0) === 0) found = delimiterEnd(body, 0, dashBoundary.length)
  while (found === undefined) {
    at = indexOfBytes(body, delimiter, at)
    if (at === -1) throw new MalformedMessageError('multipart body has no delimiter for its boundary')
    found = delimiterEnd(body, at + 2, dashBoundary.length)
    at += 2
  }

  const parts: MultipartPart[] = []
  while (!found.closing) {
    if (parts.length === maxParts) throw new MalformedMessageError(`multipart body has more than ${maxParts} parts`)
    const partNumber = parts.length + 1
    const partStart = found.end
    // Headers end with an empty line; a part without headers starts with that empty line.
    let bodyStart: number
    let headerBlock: Uint8Array
    if (body[partStart] === CR && body[partStart + 1] === LF) {
      headerBlock = body.subarray(partStart, partStart)
      bodyStart = partStart + 2
    } else {
      const searchEnd = Math.min(body.length, partStart + maxHeaderBytes + 4)
      const end = indexOfBytes(body.subarray(0, searchEnd), CRLFCRLF, partStart)
      if (end === -1) throw new MalformedMessageError(`multipart part ${partNumber} has no end of headers within ${maxHeaderBytes} bytes`)
      headerBlock = body.subarray(partStart, end)
      bodyStart = end + 4
    }

    // The part ends at the next delimiter line.
    let next: { end: number, closing: boolean } | undefined
    let search = bodyStart
    let bodyEnd = -1
    while (next === undefined) {
      bodyEnd = indexOfBytes(body, delimiter, search)
      if (bodyEnd === -1) throw new MalformedMessageError(`multipart body ends inside part ${partNumber}: no closing delimiter`)
      next = delimiterEnd(body, bodyEnd + 2, dashBoundary.length)
      search = bodyEnd + 1
    }
    parts.push({ headers: parseHeaders(headerBlock, partNumber), body: body.subarray(bodyStart, bodyEnd) })
    found = next
  }
  return parts
}


/** A quoted-string when the value is not a token. */
function parameterValue (value: string): string {
  return TOKEN.test(value) ? value : `"${value.replace(/(["\\])/g, '\\$1')}"`
}

function checkBoundary (boundary: string): void {
  if (!BOUNDARY.test(boundary)) throw new TypeError('a multipart boundary must be 1 to 70 characters of the RFC 2046 set, not ending in a space')
}

/** The Content-Type of a multipart/related body whose parts (or root part) have type `type`. */
export function multipartRelatedHeader (boundary: string, type: string): string {
  checkBoundary(boundary)
  if (/[\r\n"\\]/.test(type)) throw new TypeError('a multipart type parameter must not contain CR, LF, quotes or backslashes')
  return `multipart/related; type="${type}"; boundary=${parameterValue(boundary)}`
}

function checkHeaderValue (name: string, value: string): string {
  if (/[\r\n]/.test(value)) throw new TypeError(`a multipart ${name} header must not contain CR or LF`)
  return value
}

/**
 * Yields a multipart/related body in order: for each part its delimiter and headers (one small chunk),
 * then its body (the caller's array, not copied); then the closing delimiter. Nothing is concatenated.
 * The boundary must not occur in any body; a `newBoundary()` boundary does not, in practice.
 */
export function * encodeMultipartParts (parts: Iterable<EncodablePart>, boundary: string): Generator<Uint8Array> {
  checkBoundary(boundary)
  let first = true
  for (const part of parts) {
    yield partHead(part, boundary, first)
    if (part.body.length > 0) yield part.body
    first = false
  }
  yield closingDelimiter(boundary, first)
}

/** The same, for parts that arrive one by one (a WADO-RS study read instance by instance). */
export async function * encodeMultipartPartsAsync (parts: AsyncIterable<EncodablePart>, boundary: string): AsyncGenerator<Uint8Array> {
  checkBoundary(boundary)
  let first = true
  for await (const part of parts) {
    yield partHead(part, boundary, first)
    if (part.body.length > 0) yield part.body
    first = false
  }
  yield closingDelimiter(boundary, first)
}

function partHead (part: EncodablePart, boundary: string, first: boolean): Uint8Array {
  let head = `${first ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${checkHeaderValue('Content-Type', part.contentType)}\r\n`
  if (part.location !== undefined) head += `Content-Location: ${checkHeaderValue('Content-Location', part.location)}\r\n`
  return encoder.encode(`${head}\r\n`)
}

const closingDelimiter = (boundary: string, empty: boolean): Uint8Array => encoder.encode(`${empty ? '' : '\r\n'}--${boundary}--\r\n`)

/** A fresh random boundary (128 bits), a token that needs no quoting. */
export function newBoundary (): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16))
  return `radmesh-${Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('')}`
}
