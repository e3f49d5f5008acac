/**
 * Writing a multipart/related body: delimiters and headers as small chunks, every body as the caller's own
 * Uint8Array (or its pieces), so a response of hundreds of megabytes is streamed without being concatenated.
 */
import { BOUNDARY, parameterValue } from './content-type.ts'
import { RFC_BOUNDARY_LENGTH } from './limits.ts'

export interface EncodablePart {
  contentType: string
  body: Uint8Array
  /** Sent as Content-Location (PS3.18 uses it for the retrieve URL of a part). */
  location?: string
}

/** A part whose body comes in pieces (a stored instance read chunk by chunk), for `encodeMultipartPartsAsync`. */
export interface StreamedPart {
  contentType: string
  body: Uint8Array | AsyncIterable<Uint8Array>
  location?: string
}

const encoder = new TextEncoder()

function checkBoundary(boundary: string): void {
  if (boundary.length > RFC_BOUNDARY_LENGTH || !BOUNDARY.test(boundary)) {
    throw new TypeError(
      `a multipart boundary must be 1 to ${RFC_BOUNDARY_LENGTH} characters of the RFC 2046 set, not ending in a space`
    )
  }
}

/** The Content-Type of a multipart/related body whose parts (or root part) have type `type`. */
export function multipartRelatedHeader(boundary: string, type: string): string {
  checkBoundary(boundary)
  if (/[\r\n"\\]/.test(type)) {
    throw new TypeError('a multipart type parameter must not contain CR, LF, quotes or backslashes')
  }
  return `multipart/related; type="${type}"; boundary=${parameterValue(boundary)}`
}

function checkHeaderValue(name: string, value: string): string {
  if (/[\r\n]/.test(value)) throw new TypeError(`a multipart ${name} header must not contain CR or LF`)
  return value
}

/**
 * Yields a multipart/related body in order: for each part its delimiter and headers (one small chunk),
 * then its body (the caller's array, not copied); then the closing delimiter. Nothing is concatenated.
 * The boundary must not occur in any body; a `newBoundary()` boundary does not, in practice.
 */
export function* encodeMultipartParts(parts: Iterable<EncodablePart>, boundary: string): Generator<Uint8Array> {
  checkBoundary(boundary)
  let first = true
  for (const part of parts) {
    yield partHead(part, boundary, first)
    if (part.body.length > 0) yield part.body
    first = false
  }
  yield closingDelimiter(boundary, first)
}

/**
 * The same, for parts that arrive one by one (a WADO-RS study read instance by instance), each body whole or
 * in pieces (an instance read chunk by chunk: one chunk in memory at a time).
 */
export async function* encodeMultipartPartsAsync(
  parts: AsyncIterable<StreamedPart>,
  boundary: string
): AsyncGenerator<Uint8Array> {
  checkBoundary(boundary)
  let first = true
  for await (const part of parts) {
    yield partHead(part, boundary, first)
    if (part.body instanceof Uint8Array) {
      if (part.body.length > 0) yield part.body
    } else {
      for await (const piece of part.body) if (piece.length > 0) yield piece
    }
    first = false
  }
  yield closingDelimiter(boundary, first)
}

function partHead(part: StreamedPart, boundary: string, first: boolean): Uint8Array {
  const contentType = checkHeaderValue('Content-Type', part.contentType)
  let head = `${first ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${contentType}\r\n`
  if (part.location !== undefined) {
    head += `Content-Location: ${checkHeaderValue('Content-Location', part.location)}\r\n`
  }
  return encoder.encode(`${head}\r\n`)
}

const closingDelimiter = (boundary: string, empty: boolean): Uint8Array =>
  encoder.encode(`${empty ? '' : '\r\n'}--${boundary}--\r\n`)

/** A fresh random boundary (128 bits), a token that needs no quoting. */
export function newBoundary(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16))
  return `radmesh-${Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('')}`
}
