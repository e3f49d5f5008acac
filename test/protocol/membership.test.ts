/**
 * The membership wire formats: every encoder has its decoder, and every decoder refuses bad bytes
 * with MalformedMessageError (never another exception, never a hang).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { canonicalJson, utf8 } from '../../protocol/json.ts'
import {
  certificateSigningBytes,
  decodeCertificate,
  decodeHello,
  decodeRevocationList,
  decodeVerdict,
  encodeHello,
  encodeRevocationList,
  encodeVerdict,
  MAX_HELLO_BYTES,
  MAX_REVOCATIONS_PER_MESSAGE,
  type MemberCertificate,
  type Revocation
} from '../../protocol/membership/index.ts'
import { throwsMalformed } from '../helpers/assertions.ts'

const b64 = (bytes: number, fill = 'A'): string => fill.repeat(Math.ceil((bytes * 4) / 3))

const certificate: MemberCertificate = {
  v: 1,
  consortiumId: b64(32) as MemberCertificate['consortiumId'],
  peerId: '12D3KooWCVqUUU2Q7P7W871U4ipow2dZHe7rMC9i3V2s5YFd5QTX' as MemberCertificate['peerId'],
  name: "St Mary's Hospital",
  role: 'site',
  subspecialties: ['neuro', 'msk'],
  wrapKey: b64(32, 'B'),
  issuedAt: '2026-11-28T00:00:00.000Z',
  expiresAt: '2027-11-28T00:00:00.000Z',
  signature: b64(64, 'C')
}

const revocation: Revocation = {
  v: 1,
  consortiumId: certificate.consortiumId,
  peerId: certificate.peerId,
  revokedAt: '2026-11-28T01:00:00.000Z',
  reason: 'left',
  signature: b64(64, 'D')
}

test('a hello round-trips', () => {
  assert.equal(decodeHello(encodeHello({ type: 'hello', certificate })), { type: 'hello', certificate })
})

test('verdicts round-trip, accepted and refused', () => {
  assert.equal(decodeVerdict(encodeVerdict({ type: 'verdict', accepted: true })), { type: 'verdict', accepted: true })
  const refused = { type: 'verdict', accepted: false, code: 'expired', reason: 'certificate expired at …' } as const
  assert.equal(decodeVerdict(encodeVerdict(refused)), refused)
})

test('a revocation list round-trips', () => {
  assert.equal(decodeRevocationList(encodeRevocationList([revocation])), [revocation])
})

test('malformed hellos are refused with MalformedMessageError', () => {
  const cases: Array<[string, Uint8Array]> = [
    ['empty', new Uint8Array()],
    ['not utf-8', new Uint8Array([0xff, 0xfe, 0xfd])],
    ['not json', utf8('{"v":1,')],
    ['an array', utf8('[]')],
    ['wrong version', utf8(JSON.stringify({ v: 2, type: 'hello', certificate }))],
    ['no certificate', utf8(JSON.stringify({ v: 1, type: 'hello' }))],
    ['role admin', utf8(JSON.stringify({ v: 1, type: 'hello', certificate: { ...certificate, role: 'admin' } }))],
    [
      'short signature',
      utf8(JSON.stringify({ v: 1, type: 'hello', certificate: { ...certificate, signature: 'AAAA' } }))
    ],
    ['bad time', utf8(JSON.stringify({ v: 1, type: 'hello', certificate: { ...certificate, expiresAt: 'tomorrow' } }))],
    [
      'subspecialty with a slash',
      utf8(JSON.stringify({ v: 1, type: 'hello', certificate: { ...certificate, subspecialties: ['../etc'] } }))
    ],
    ['oversized', new Uint8Array(MAX_HELLO_BYTES + 1).fill(0x20)]
  ]
  for (const [what, bytes] of cases) throwsMalformed(() => decodeHello(bytes), what)
})

test('malformed verdicts and revocation lists are refused', () => {
  throwsMalformed(
    () => decodeVerdict(utf8(JSON.stringify({ v: 1, type: 'verdict', accepted: 'yes' }))),
    'accepted not boolean'
  )
  throwsMalformed(
    () => decodeVerdict(utf8(JSON.stringify({ v: 1, type: 'verdict', accepted: false, code: 'bribed', reason: '' }))),
    'unknown code'
  )
  throwsMalformed(
    () => decodeRevocationList(utf8(JSON.stringify({ v: 1, type: 'revocations', revocations: {} }))),
    'not an array'
  )
  throwsMalformed(
    () =>
      decodeRevocationList(
        utf8(JSON.stringify({ v: 1, type: 'revocations', revocations: [{ ...revocation, peerId: 7 }] }))
      ),
    'bad entry'
  )
  const tooMany = Array.from({ length: MAX_REVOCATIONS_PER_MESSAGE + 1 }, () => ({}))
  throwsMalformed(
    () => decodeRevocationList(utf8(JSON.stringify({ v: 1, type: 'revocations', revocations: tooMany }))),
    'too many'
  )
})

test('canonical JSON sorts keys at every depth and ignores undefined', () => {
  assert.is(
    canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: 'x' } }),
    '{"a":{"c":"x","d":[2,{"e":0,"f":1}]},"b":1}'
  )
  assert.is(canonicalJson({ a: 1, b: undefined } as unknown as Parameters<typeof canonicalJson>[0]), '{"a":1}')
})

test('the signed bytes of a certificate do not depend on key order or on the signature', () => {
  const reordered = Object.fromEntries(Object.entries(certificate).reverse()) as unknown as MemberCertificate
  assert.equal(certificateSigningBytes(reordered), certificateSigningBytes({ ...certificate, signature: b64(64, 'Z') }))
  assert.equal(decodeCertificate(JSON.parse(JSON.stringify(reordered))), certificate)
})

test.run()
