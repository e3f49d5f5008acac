/**
 * The Content-Type header of multipart/related (RFC 2045 5.1, RFC 2387 3): reading its type and parameters,
 * the boundary, and writing a parameter value. The grammar's character classes are here, for the parser and
 * the writer alike.
 */
import { MalformedMessageError } from '../../errors.ts'
import { MAX_BOUNDARY_LENGTH } from './limits.ts'

export interface ContentType {
  /** "type/subtype", lower-cased. */
  type: string
  /** Parameters by lower-cased name; quoted values are unquoted. */
  params: Record<string, string>
}

/** RFC 2045 token characters: visible ASCII except tspecials. */
export const TOKEN = /^[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+$/
/** RFC 2046 boundary characters, not ending with a space (the length is checked apart). */
export const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]*[0-9A-Za-z'()+_,\-./:=?]$/

/**
 * Parses a Content-Type header value: `type/subtype; name=value; name="quoted \" value"`.
 * Names (type and parameter names) are case-insensitive and returned lower-cased; values keep their case.
 * Throws MalformedMessageError when there is no type/subtype or a parameter cannot be read.
 */
export function parseContentType(header: string): ContentType {
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
    if (header[i] !== ';') {
      throw new MalformedMessageError(`content type "${header}": expected ";" at character ${i + 1}`)
    }
    i++
    skipSpace()
    if (i >= header.length) break // a trailing ";" is common and harmless
    const name = readToken().toLowerCase()
    if (name === '' || header[i] !== '=') {
      throw new MalformedMessageError(`content type "${header}": a parameter has no name=value`)
    }
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

/** Throws MalformedMessageError unless `boundary` is one this node reads (see MAX_BOUNDARY_LENGTH). */
export function checkReadBoundary(boundary: string): void {
  if (boundary.length > MAX_BOUNDARY_LENGTH || !BOUNDARY.test(boundary)) {
    throw new MalformedMessageError(
      `multipart boundary must be 1 to ${MAX_BOUNDARY_LENGTH} characters of the RFC 2046 set, not ending in a space`
    )
  }
}

/**
 * The boundary of a multipart/related Content-Type. Throws MalformedMessageError when the content type cannot be
 * read, is not multipart/related, or has no usable boundary (1 to MAX_BOUNDARY_LENGTH characters of RFC 2046's).
 */
export function multipartBoundary(contentType: string): string {
  const { type, params } = parseContentType(contentType)
  if (type !== 'multipart/related') {
    throw new MalformedMessageError(`content type is ${type}, expected multipart/related`)
  }
  const boundary = params['boundary']
  if (boundary === undefined || boundary === '') {
    throw new MalformedMessageError('multipart/related content type has no boundary parameter')
  }
  checkReadBoundary(boundary)
  return boundary
}

/** A quoted-string when the value is not a token. */
export function parameterValue(value: string): string {
  return TOKEN.test(value) ? value : `"${value.replace(/(["\\])/g, '\\$1')}"`
}
