/**
 * Revocation spreading: `/radmesh/revocations/1.0.0`.
 *
 * One message per stream, sender to receiver, then the stream closes:
 *   RevocationList { v: 1, type: "revocations", revocations: Revocation[] }
 *
 * When two members connect, each sends the other every revocation it holds ("on contact"). When a member
 * learns a revocation it did not have, it sends just the new ones to every member connected to it, who does
 * the same: a flood that stops because a known revocation is never forwarded again. Each revocation is
 * verified against the consortium root by the receiver; who carried it does not matter.
 */
import { MalformedMessageError } from '../errors.ts'
import { asObject, type Json, parseJsonBytes, utf8 } from '../json.ts'
import { decodeRevocation, type Revocation } from './certificate.ts'

export const REVOCATIONS_PROTOCOL = '/radmesh/revocations/1.0.0'
/** A revocation is ~400 bytes; 4096 of them is a consortium that has churned a great deal. */
export const MAX_REVOCATIONS_PER_MESSAGE = 4096
export const MAX_REVOCATIONS_MESSAGE_BYTES = 2 * 1024 * 1024
/** One exchange in each direction per connection, plus live updates: a few streams are plenty. */
export const REVOCATIONS_MAX_INBOUND_STREAMS = 4
export const REVOCATIONS_MAX_OUTBOUND_STREAMS = 4
export const REVOCATIONS_TIMEOUT_MS = 10_000

export function encodeRevocationList(revocations: Revocation[]): Uint8Array {
  if (revocations.length > MAX_REVOCATIONS_PER_MESSAGE)
    throw new RangeError(`at most ${MAX_REVOCATIONS_PER_MESSAGE} revocations per message`)
  return utf8(JSON.stringify({ v: 1, type: 'revocations', revocations: revocations as unknown as Json }))
}

export function decodeRevocationList(bytes: Uint8Array): Revocation[] {
  const object = asObject(parseJsonBytes(bytes, MAX_REVOCATIONS_MESSAGE_BYTES, 'revocation list'), 'revocation list')
  if (object['v'] !== 1 || object['type'] !== 'revocations')
    throw new MalformedMessageError('not a version 1 revocation list')
  const list = object['revocations']
  if (!Array.isArray(list)) throw new MalformedMessageError('revocation list.revocations must be an array')
  if (list.length > MAX_REVOCATIONS_PER_MESSAGE)
    throw new MalformedMessageError(`revocation list has more than ${MAX_REVOCATIONS_PER_MESSAGE} entries`)
  return list.map(decodeRevocation)
}
