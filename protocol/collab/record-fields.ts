/**
 * The checks of the fields the records of records.ts share: the signed part, case ids, codes, one of a list, lists,
 * sequence numbers, and no field a record of its kind does not have.
 */
import { MalformedMessageError } from '../errors.ts'
import type { PeerIdString } from '../ids.ts'
import { integerField, stringField, timeField } from '../json.ts'
import { peerIdField } from '../exchange/manifest.ts'

export const RECORD_VERSION = 1
export const CASE_ID = /^[0-9a-f]{24}$/
const SIGNATURE = /^[A-Za-z0-9_-]{86}$/
const CODE = /^[a-z0-9-]{1,32}$/

/** What every signed record has. */
export interface Signed {
  v: number
  by: PeerIdString
  at: string
  signature: string
}

export function caseIdField(object: Record<string, unknown>, what: string): string {
  const value = stringField(object, 'caseId', what, 24)
  if (!CASE_ID.test(value)) throw new MalformedMessageError(`${what}.caseId must be 24 hex digits`)
  return value
}

export function signedFields(object: Record<string, unknown>, what: string): Signed {
  if (object['v'] !== RECORD_VERSION) throw new MalformedMessageError(`${what}.v must be ${RECORD_VERSION}`)
  const signature = stringField(object, 'signature', what, 86)
  if (!SIGNATURE.test(signature))
    throw new MalformedMessageError(`${what}.signature must be an Ed25519 signature in base64url`)
  return { v: RECORD_VERSION, by: peerIdField(object, 'by', what), at: timeField(object, 'at', what), signature }
}

export function oneOf<T extends string>(
  object: Record<string, unknown>,
  key: string,
  allowed: readonly T[],
  what: string
): T {
  const value = stringField(object, key, what, 32)
  if (!(allowed as readonly string[]).includes(value))
    throw new MalformedMessageError(`${what}.${key} must be one of ${allowed.join(', ')}`)
  return value as T
}

export function codeField(object: Record<string, unknown>, key: string, what: string): string {
  const value = stringField(object, key, what, 32)
  if (!CODE.test(value))
    throw new MalformedMessageError(`${what}.${key} must be a lower-case code (letters, digits, dashes)`)
  return value
}

export function listField<T>(
  object: Record<string, unknown>,
  key: string,
  what: string,
  max: number,
  item: (value: unknown, what: string) => T
): T[] {
  const value = object[key]
  if (!Array.isArray(value) || value.length > max)
    throw new MalformedMessageError(`${what}.${key} must be a list of at most ${max}`)
  return value.map((entry, i) => item(entry, `${what}.${key}[${i}]`))
}

export function seqField(object: Record<string, unknown>, what: string): number {
  const seq = integerField(object, 'seq', what)
  if (seq < 1) throw new MalformedMessageError(`${what}.seq must be 1 or more`)
  return seq
}

/** Refuses fields a record of this kind does not have: signed records carry nothing unchecked. */
export function exactly<T extends object>(object: Record<string, unknown>, record: T, what: string): T {
  const extra = Object.keys(object).filter(key => !(key in record))
  if (extra.length > 0)
    throw new MalformedMessageError(`${what} has fields it must not have: ${extra.slice(0, 5).join(', ')}`)
  return record
}

export function criticalIdField(object: Record<string, unknown>, key: string, what: string): string {
  const value = stringField(object, key, what, 24)
  if (!CASE_ID.test(value)) throw new MalformedMessageError(`${what}.${key} must be 24 hex digits`)
  return value
}
