/**
 * The address book: `/radmesh/addresses/1.0.0`.
 *
 * A member's **address record** says where it can be reached now: its multiaddrs (direct ones and its relay
 * addresses `/…/p2p/RELAY/p2p-circuit`), a sequence number that only grows, and an expiry. The member signs it
 * with its own identity key (the Ed25519 key inside its peer id), so no one else can move it, and the record
 * travels with the member's certificate, so a receiver that never met the member can still check, against the
 * consortium root, that it is one.
 *
 * One message per stream, sender to receiver, then the stream closes:
 *   AddressList { v: 1, type: "addresses", entries: Array<{ record: AddressRecord, certificate }> }
 *
 * Spread like revocations: when two members connect, each sends the other every record it holds; a record
 * newer than the one a node had (a higher `seq` for that peer) is kept, stored and sent on to every member
 * connected to it, who does the same. A record that is not newer is dropped silently, so the flood stops.
 * Receivers verify the signature by `peerId`'s key, the certificate against the consortium root (and that it
 * is not revoked), and the expiry; who carried the record does not matter.
 */
import { MalformedMessageError } from '../errors.ts'
import {
  asObject,
  base64urlField,
  integerField,
  type Json,
  parseJsonBytes,
  signingBytes,
  stringField,
  timeField,
  utf8
} from '../json.ts'
import type { PeerIdString } from '../ids.ts'
import { decodeCertificate, MAX_PEER_ID_LENGTH, type MemberCertificate } from './certificate.ts'

export const ADDRESSES_PROTOCOL = '/radmesh/addresses/1.0.0'
export const SIGNING_CONTEXT_ADDRESS_RECORD = 'radmesh/address-record/v1\n'
/**
 * A node has a handful of addresses (each listener on each interface, a relay address per reservation);
 * 32 is room for a multi-homed site with several relays, and bounds what one record can make others dial.
 */
export const MAX_ADDRESSES_PER_RECORD = 32
/** A multiaddr with a relay's and a member's peer id is ~180 characters; 512 bounds a crafted one. */
export const MAX_ADDRESS_LENGTH = 512
/** One entry per member; a book of a few hundred members goes in a few messages. */
export const MAX_ADDRESS_ENTRIES_PER_MESSAGE = 128
/**
 * An entry is ~1-2 KiB (a certificate ~600 bytes, a few addresses), at most ~17.5 KiB (32 addresses of 512
 * characters): 128 of the largest fit in 3 MiB, under the stream's 4 MiB read buffer.
 */
export const MAX_ADDRESSES_MESSAGE_BYTES = 3 * 1024 * 1024
/** One exchange in each direction per connection, plus live updates: a few streams are plenty. */
export const ADDRESSES_MAX_INBOUND_STREAMS = 4
export const ADDRESSES_MAX_OUTBOUND_STREAMS = 4
export const ADDRESSES_TIMEOUT_MS = 10_000
/**
 * How long a record is good for. Longer than a member may be away (a week's holiday): one that comes back
 * finds the others from the records it kept. A member re-signs its record well before it expires.
 */
export const ADDRESS_RECORD_LIFETIME_MS = 30 * 24 * 60 * 60_000

export interface AddressRecord {
  v: number
  peerId: PeerIdString
  /** multiaddrs, as text, where the member listens now (each may end in `/p2p/PEERID`, its own) */
  addrs: string[]
  /** grows with each new record of this member (its issue time in ms, or one more than the last) */
  seq: number
  issuedAt: string
  expiresAt: string
  /** Ed25519 signature by the key inside `peerId`, base64url */
  signature: string
}

/** A record and the certificate of the member it belongs to, as sent. */
export interface AddressEntry {
  record: AddressRecord
  certificate: MemberCertificate
}

type Unsigned<T> = Omit<T, 'signature'> & { signature?: string }

export const addressRecordSigningBytes = (record: Unsigned<AddressRecord>): Uint8Array =>
  signingBytes(SIGNING_CONTEXT_ADDRESS_RECORD, record)

export function decodeAddressRecord(value: unknown): AddressRecord {
  const what = 'address record'
  const object = asObject(value, what)
  const v = integerField(object, 'v', what)
  if (v !== 1) throw new MalformedMessageError(`${what} has version ${v}; this radmesh reads version 1`)
  const addrs = object['addrs']
  if (!Array.isArray(addrs)) throw new MalformedMessageError(`${what}.addrs must be an array`)
  if (addrs.length > MAX_ADDRESSES_PER_RECORD)
    throw new MalformedMessageError(`${what}.addrs has more than ${MAX_ADDRESSES_PER_RECORD} addresses`)
  for (const [i, addr] of addrs.entries()) {
    if (typeof addr !== 'string' || !addr.startsWith('/') || addr.length > MAX_ADDRESS_LENGTH)
      throw new MalformedMessageError(
        `${what}.addrs[${i}] must be a multiaddr of at most ${MAX_ADDRESS_LENGTH} characters`
      )
  }
  const seq = integerField(object, 'seq', what)
  if (seq < 0) throw new MalformedMessageError(`${what}.seq must not be negative`)
  return {
    v,
    peerId: stringField(object, 'peerId', what, MAX_PEER_ID_LENGTH) as PeerIdString,
    addrs: addrs as string[],
    seq,
    issuedAt: timeField(object, 'issuedAt', what),
    expiresAt: timeField(object, 'expiresAt', what),
    signature: base64urlField(object, 'signature', what, 64)
  }
}

export function decodeAddressEntry(value: unknown): AddressEntry {
  const object = asObject(value, 'address entry')
  const record = decodeAddressRecord(object['record'])
  const certificate = decodeCertificate(object['certificate'])
  if (certificate.peerId !== record.peerId)
    throw new MalformedMessageError(`address entry: the certificate is for ${certificate.peerId}, not ${record.peerId}`)
  return { record, certificate }
}

export function encodeAddressList(entries: AddressEntry[]): Uint8Array {
  if (entries.length > MAX_ADDRESS_ENTRIES_PER_MESSAGE)
    throw new RangeError(`at most ${MAX_ADDRESS_ENTRIES_PER_MESSAGE} address entries per message`)
  return utf8(JSON.stringify({ v: 1, type: 'addresses', entries: entries as unknown as Json }))
}

export function decodeAddressList(bytes: Uint8Array): AddressEntry[] {
  const object = asObject(parseJsonBytes(bytes, MAX_ADDRESSES_MESSAGE_BYTES, 'address list'), 'address list')
  if (object['v'] !== 1 || object['type'] !== 'addresses')
    throw new MalformedMessageError('not a version 1 address list')
  const list = object['entries']
  if (!Array.isArray(list)) throw new MalformedMessageError('address list.entries must be an array')
  if (list.length > MAX_ADDRESS_ENTRIES_PER_MESSAGE)
    throw new MalformedMessageError(`address list has more than ${MAX_ADDRESS_ENTRIES_PER_MESSAGE} entries`)
  return list.map(decodeAddressEntry)
}
