/**
 * Noise's transport cipher (ChaCha20-Poly1305, `node:crypto`) without two costs of the stock implementation
 * (`@chainsafe/libp2p-noise`'s `defaultCrypto`), which the exchange pays once per 64 KiB message, both ways:
 *
 * - A cipher given raw key bytes builds a key object on every call: 21 µs a message here against 5 µs for a key
 *   object made once. A session's key (`k`) is one array for its whole life (Noise never changes it in place),
 *   so its key object is made once (node/key-objects.ts).
 * - Encrypting a message joined its ciphertext and tag into a new buffer: they go on as a list instead, which
 *   the stream writes as it is.
 *
 * Same bytes on the wire; everything else (the handshake's hashing, key agreement, small messages) is the stock
 * implementation's.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { secretKeyObject } from '../key-objects.ts'

const CHACHA_POLY1305 = 'chacha20-poly1305'
const TAG_BYTES = 16
/** Below this the stock implementation's WebAssembly cipher is faster than `node:crypto`, as its authors measured. */
const SMALL_MESSAGE_BYTES = 1200

type Sealed = ReturnType<ICryptoInterface['chaCha20Poly1305Encrypt']>

/**
 * Noise declares its own copy of `uint8arraylist` (2.x; libp2p has 3.x). Lists of either are one kind at run time
 * (both mark them with `Symbol.for('@achingbrain/uint8arraylist')`); only their declared types differ.
 */
const asNoiseList = (list: Uint8ArrayList): Sealed => list as unknown as Sealed

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt(plaintext, nonce, ad, k) {
    if (plaintext.byteLength < SMALL_MESSAGE_BYTES)
      return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
    const cipher = createCipheriv(CHACHA_POLY1305, secretKeyObject(k), nonce, { authTagLength: TAG_BYTES })
    cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
    const output = new Uint8ArrayList()
    if (plaintext instanceof Uint8Array) output.append(cipher.update(plaintext))
    else for (const piece of plaintext) output.append(cipher.update(piece))
    const final = cipher.final()
    if (final.byteLength > 0) output.append(final)
    output.append(cipher.getAuthTag())
    return asNoiseList(output)
  },
  chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst) {
    if (ciphertext.byteLength < SMALL_MESSAGE_BYTES) {
      return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
    }
    const textBytes = ciphertext.byteLength - TAG_BYTES
    const decipher = createDecipheriv(CHACHA_POLY1305, secretKeyObject(k), nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(ad, { plaintextLength: textBytes })
    decipher.setAuthTag(ciphertext.subarray(textBytes))
    if (ciphertext instanceof Uint8Array) {
      const output = decipher.update(ciphertext.subarray(0, textBytes))
      const final = decipher.final()
      return final.byteLength > 0 ? Buffer.concat([output, final]) : output
    }
    // A message that came in several socket reads: deciphered piece by piece, not joined first.
    const output = new Uint8ArrayList()
    for (const piece of ciphertext.sublist(0, textBytes)) output.append(decipher.update(piece))
    const final = decipher.final()
    if (final.byteLength > 0) output.append(final)
    return asNoiseList(output)
  }
}
