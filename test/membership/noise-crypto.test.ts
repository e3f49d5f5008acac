/**
 * radmesh's Noise transport cipher (node/membership/noise-crypto.ts) against the stock one it replaces: the same bytes
 * on the wire for every message size (either side opens the other's), messages in pieces, and a message that
 * was altered or sealed under another nonce or key refused.
 */
import { randomBytes } from 'node:crypto'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { noiseCrypto } from '../../node/membership/noise-crypto.ts'

const key = randomBytes(32)
const nonce = randomBytes(12)
const ad = randomBytes(32)
/** A list of this project's `uint8arraylist`, as Noise's own copy of the package declares it (see the module). */
type NoiseList = Parameters<typeof noiseCrypto.chaCha20Poly1305Encrypt>[0]
const asNoiseList = (list: Uint8ArrayList): NoiseList => list as unknown as NoiseList

const bytes = (data: Uint8Array | { subarray(): Uint8Array }): Buffer =>
  Buffer.from(data instanceof Uint8Array ? data : data.subarray())

for (const size of [0, 100, 1199, 1200, 65519]) {
  test(`a ${size}-byte message is sealed to the stock implementation's bytes and opens both ways`, () => {
    const plaintext = randomBytes(size)
    const ours = bytes(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key))
    const stock = bytes(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key))
    assert.ok(ours.equals(stock))
    assert.ok(bytes(noiseCrypto.chaCha20Poly1305Decrypt(stock, nonce, ad, key)).equals(plaintext))
    assert.ok(bytes(defaultCrypto.chaCha20Poly1305Decrypt(ours, nonce, ad, key)).equals(plaintext))
  })
}

test('a message given as a list of pieces (several socket reads) seals and opens as the same bytes joined', () => {
  const plaintext = randomBytes(65519)
  const list = new Uint8ArrayList(
    plaintext.subarray(0, 7000),
    plaintext.subarray(7000, 40000),
    plaintext.subarray(40000)
  )
  const sealed = bytes(noiseCrypto.chaCha20Poly1305Encrypt(asNoiseList(list), nonce, ad, key))
  assert.ok(sealed.equals(bytes(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key))))
  const pieces = new Uint8ArrayList(sealed.subarray(0, 30000), sealed.subarray(30000, 65530), sealed.subarray(65530))
  assert.ok(bytes(noiseCrypto.chaCha20Poly1305Decrypt(asNoiseList(pieces), nonce, ad, key)).equals(plaintext))
})

test('an altered message, another nonce or another key does not open', () => {
  const plaintext = randomBytes(20000)
  const sealed = bytes(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key))
  const altered = Buffer.from(sealed)
  altered[5] = (altered[5] as number) ^ 1
  assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(altered, nonce, ad, key))
  assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, randomBytes(12), ad, key))
  assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, randomBytes(32)))
})

test.run()
