/**
 * JSON messages: canonical encoding (the bytes that get signed) and strict shape checks for decoding.
 *
 * Canonical form: object keys sorted by UTF-16 code unit, no whitespace, no undefined values. Two encoders
 * that agree on the value agree on the bytes, so a signature made by one verifies with the other.
 */
import { MalformedMessageError } from './errors.ts'

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

export function canonicalJson(value: Json): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value))
      throw new TypeError('canonical JSON has no NaN or Infinity')
    return JSON.stringify(value)
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const keys = Object.keys(value)
    .filter(key => value[key] !== undefined)
    .sort()
  return `{${keys.map(key => `${JSON.stringify(key)}:${canonicalJson(value[key] as Json)}`).join(',')}}`
}

/** The bytes a signature covers: a context naming the kind of document, then its canonical JSON without "signature". */
export function signingBytes(context: string, document: object): Uint8Array {
  const { signature: _ignored, ...fields } = document as { signature?: unknown }
  return utf8(context + canonicalJson(fields as unknown as Json))
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })

export const utf8 = (text: string): Uint8Array => textEncoder.encode(text)

/** Parses UTF-8 JSON bytes, refusing anything longer than `maxBytes` before it is parsed. */
export function parseJsonBytes(bytes: Uint8Array, maxBytes: number, what: string): unknown {
  if (bytes.byteLength > maxBytes)
    throw new MalformedMessageError(`${what} is ${bytes.byteLength} bytes; the limit is ${maxBytes}`)
  let text: string
  try {
    text = textDecoder.decode(bytes)
  } catch {
    throw new MalformedMessageError(`${what} is not UTF-8`)
  }
  try {
    return JSON.parse(text)
  } catch {
    throw new MalformedMessageError(`${what} is not JSON`)
  }
}

/** Field readers: each returns the field with its type or throws `MalformedMessageError` naming it. */
export function asObject(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new MalformedMessageError(`${what} must be an object`)
  return value as Record<string, unknown>
}

export function stringField(object: Record<string, unknown>, key: string, what: string, maxLength = 1024): string {
  const value = object[key]
  if (typeof value !== 'string') throw new MalformedMessageError(`${what}.${key} must be a string`)
  if (value.length > maxLength) throw new MalformedMessageError(`${what}.${key} is longer than ${maxLength} characters`)
  return value
}

export function optionalStringField(
  object: Record<string, unknown>,
  key: string,
  what: string,
  maxLength = 1024
): string | undefined {
  return object[key] === undefined ? undefined : stringField(object, key, what, maxLength)
}

export function stringArrayField(
  object: Record<string, unknown>,
  key: string,
  what: string,
  maxItems: number,
  maxLength = 64
): string[] {
  const value = object[key]
  if (!Array.isArray(value)) throw new MalformedMessageError(`${what}.${key} must be an array`)
  if (value.length > maxItems) throw new MalformedMessageError(`${what}.${key} has more than ${maxItems} items`)
  return value.map((item, i) => {
    if (typeof item !== 'string' || item.length > maxLength)
      throw new MalformedMessageError(`${what}.${key}[${i}] must be a string of at most ${maxLength} characters`)
    return item
  })
}

export function integerField(object: Record<string, unknown>, key: string, what: string): number {
  const value = object[key]
  if (typeof value !== 'number' || !Number.isSafeInteger(value))
    throw new MalformedMessageError(`${what}.${key} must be an integer`)
  return value
}

export function timeField(object: Record<string, unknown>, key: string, what: string): string {
  const value = stringField(object, key, what, 40)
  if (Number.isNaN(Date.parse(value))) throw new MalformedMessageError(`${what}.${key} must be an ISO 8601 time`)
  return value
}

/** base64url without padding, as in JWK. */
export function base64urlField(object: Record<string, unknown>, key: string, what: string, byteLength: number): string {
  const value = stringField(object, key, what, 4 * byteLength)
  if (!/^[A-Za-z0-9_-]*$/.test(value) || Math.floor((value.length * 3) / 4) !== byteLength) {
    throw new MalformedMessageError(`${what}.${key} must be ${byteLength} bytes in base64url`)
  }
  return value
}
