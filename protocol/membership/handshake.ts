/**
 * Member handshake: `/radmesh/member-noise/1.0.0`, the only way into a radmesh node.
 *
 * It is a connection encrypter, negotiated by multistream-select where libp2p would negotiate `/noise`:
 *
 *   1. Noise XX runs as usual; both sides now know each other's authenticated libp2p peer id.
 *   2. Over the encrypted channel, each side sends   Hello   { v, type: "hello", certificate }
 *   3. each side verifies the other's certificate (signed by this consortium's root, for exactly that peer
 *      id, within its validity, not revoked) and sends  Verdict { v, type: "verdict", accepted, code?, reason? }
 *   4. only if both verdicts say accepted does the connection get a stream muxer; otherwise it is closed.
 *
 * So a peer that is not a member never gets a muxer, never opens a stream, never runs identify. The verdict
 * tells an honest but misconfigured node why it was turned away ("certificate expired"), so a site can fix it.
 * A peer that offers only plain `/noise` (any libp2p node without radmesh credentials) completes Noise, so
 * its peer id is known and logged, and is then refused with code `no-certificate`.
 * Frames are unsigned-varint length prefixed JSON.
 */
import { MalformedMessageError } from '../errors.ts'
import { asObject, type Json, parseJsonBytes, stringField, utf8 } from '../json.ts'
import { decodeCertificate, type MemberCertificate } from './certificate.ts'

export const MEMBER_HANDSHAKE_PROTOCOL = '/radmesh/member-noise/1.0.0'
/** A certificate is ~700 bytes of JSON; 16 KiB leaves room for growth and caps what a stranger can make us parse. */
export const MAX_HELLO_BYTES = 16 * 1024
export const MAX_VERDICT_BYTES = 1024
/** Both messages of one side must arrive within this time, or the connection is dropped. */
export const HANDSHAKE_TIMEOUT_MS = 10_000

/** Why a peer was refused. Stable codes: logs, tests and the refused peer all see these. */
export const REFUSAL_CODES = [
  'no-certificate',
  'malformed-hello',
  'wrong-consortium',
  'bad-signature',
  'peer-id-mismatch',
  'not-yet-valid',
  'expired',
  'revoked',
  'banned'
] as const
export type RefusalCode = (typeof REFUSAL_CODES)[number]

export interface Hello {
  type: 'hello'
  certificate: MemberCertificate
}

export type Verdict =
  | { type: 'verdict'; accepted: true }
  | { type: 'verdict'; accepted: false; code: RefusalCode; reason: string }

export function encodeHello(hello: Hello): Uint8Array {
  return utf8(JSON.stringify({ v: 1, type: 'hello', certificate: hello.certificate as unknown as Json }))
}

export function decodeHello(bytes: Uint8Array): Hello {
  const object = asObject(parseJsonBytes(bytes, MAX_HELLO_BYTES, 'hello'), 'hello')
  if (object['v'] !== 1 || object['type'] !== 'hello') throw new MalformedMessageError('not a version 1 hello')
  return { type: 'hello', certificate: decodeCertificate(object['certificate']) }
}

export function encodeVerdict(verdict: Verdict): Uint8Array {
  return utf8(JSON.stringify({ v: 1, ...verdict }))
}

export function decodeVerdict(bytes: Uint8Array): Verdict {
  const object = asObject(parseJsonBytes(bytes, MAX_VERDICT_BYTES, 'verdict'), 'verdict')
  if (object['v'] !== 1 || object['type'] !== 'verdict') throw new MalformedMessageError('not a version 1 verdict')
  if (object['accepted'] === true) return { type: 'verdict', accepted: true }
  if (object['accepted'] !== false) throw new MalformedMessageError('verdict.accepted must be a boolean')
  const code = stringField(object, 'code', 'verdict', 64)
  if (!(REFUSAL_CODES as readonly string[]).includes(code))
    throw new MalformedMessageError(`verdict.code "${code}" is unknown`)
  return {
    type: 'verdict',
    accepted: false,
    code: code as RefusalCode,
    reason: stringField(object, 'reason', 'verdict', 512)
  }
}
