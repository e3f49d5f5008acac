/**
 * Ed25519 and X25519 with `node:crypto`, on raw 32-byte keys carried as base64url (as in JWK).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify, createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'

export const toBase64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url')
export const fromBase64url = (text: string): Buffer => Buffer.from(text, 'base64url')

export function generateEd25519 (): { privateKey: KeyObject, publicKeyRaw: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return { privateKey, publicKeyRaw: rawPublicKey(publicKey) }
}

export function generateX25519 (): { privateKey: KeyObject, publicKeyRaw: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519')
  return { privateKey, publicKeyRaw: rawPublicKey(publicKey) }
}

export function rawPublicKey (publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' })
  if (typeof jwk.x !== 'string') throw new TypeError('not an OKP public key')
  return jwk.x
}

export function ed25519PublicKey (raw: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw }, format: 'jwk' })
}

export const exportPrivateKeyDer = (key: KeyObject): Buffer => key.export({ format: 'der', type: 'pkcs8' })
export const importPrivateKeyDer = (der: Uint8Array): KeyObject => createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' })

export const signEd25519 = (privateKey: KeyObject, message: Uint8Array): string => toBase64url(sign(null, message, privateKey))

export function verifyEd25519 (publicKey: KeyObject, message: Uint8Array, signature: string): boolean {
  const bytes = fromBase64url(signature)
  if (bytes.byteLength !== 64) return false
  return verify(null, message, publicKey, bytes)
}

/** A consortium id is the SHA-256 of its raw root public key. */
export const consortiumIdOf = (rootPublicKeyRaw: string): string =>
  toBase64url(createHash('sha256').update(fromBase64url(rootPublicKeyRaw)).digest())

/** Whether `signature` (base64url) is the Ed25519 signature of `message` by the key inside peer id `peerId`. */
export async function signedByPeer (peerId: string, message: Uint8Array, signature: string): Promise<boolean> {
  try {
    return await peerIdFromString(peerId).publicKey?.verify(message, fromBase64url(signature)) ?? false
  } catch {
    return false
  }
}
