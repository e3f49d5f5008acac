/**
 * Ed25519 and X25519 with `node:crypto`, on raw 32-byte keys carried as base64url (as in JWK).
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, sign, createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { ed25519PublicKey, fromBase64url, toBase64url, verifyEd25519 } from './peer-key.ts'

export { ed25519PublicKey, fromBase64url, toBase64url, verifyEd25519 }

export function generateEd25519(): { privateKey: KeyObject; publicKeyRaw: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return { privateKey, publicKeyRaw: rawPublicKey(publicKey) }
}

export function generateX25519(): { privateKey: KeyObject; publicKeyRaw: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519')
  return { privateKey, publicKeyRaw: rawPublicKey(publicKey) }
}

export function rawPublicKey(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' })
  if (typeof jwk.x !== 'string') throw new TypeError('not an OKP public key')
  return jwk.x
}

export const exportPrivateKeyDer = (key: KeyObject): Buffer => key.export({ format: 'der', type: 'pkcs8' })
export const importPrivateKeyDer = (der: Uint8Array): KeyObject =>
  createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' })

export const signEd25519 = (privateKey: KeyObject, message: Uint8Array): string =>
  toBase64url(sign(null, message, privateKey))

/** A consortium id is the SHA-256 of its raw root public key. */
export const consortiumIdOf = (rootPublicKeyRaw: string): string =>
  toBase64url(createHash('sha256').update(fromBase64url(rootPublicKeyRaw)).digest())

/**
 * Public keys of the peers whose signatures were checked last: a key object is made once per peer, not per
 * signature.
 */
const PEER_KEYS_CACHED = 1024
const peerKeys = new Map<string, KeyObject | null>()

function peerKey(peerId: string): KeyObject | null {
  let key = peerKeys.get(peerId)
  if (key !== undefined) {
    // Most recently used last.
    peerKeys.delete(peerId)
    peerKeys.set(peerId, key)
    return key
  }
  try {
    const publicKey = peerIdFromString(peerId).publicKey
    key = publicKey?.type === 'Ed25519' ? ed25519PublicKey(toBase64url(publicKey.raw)) : null
  } catch {
    key = null
  }
  peerKeys.set(peerId, key)
  if (peerKeys.size > PEER_KEYS_CACHED) peerKeys.delete(peerKeys.keys().next().value as string)
  return key
}

/** Whether `signature` (base64url) is the Ed25519 signature of `message` by the key inside peer id `peerId`. */
export async function signedByPeer(peerId: string, message: Uint8Array, signature: string): Promise<boolean> {
  const key = peerKey(peerId)
  if (key === null) return false
  try {
    return verifyEd25519(key, message, signature)
  } catch {
    return false
  }
}
