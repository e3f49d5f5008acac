/**
 * The Ed25519 key inside a peer id, and signatures checked with it, on `node:crypto` alone: the inspector's worker
 * (crdt/inspect-worker.ts) checks records' signatures with it, and starts faster without `@libp2p/peer-id` and
 * what that loads (crypto.ts keeps the full parser for every other use; a test checks the two agree).
 */
import { createPublicKey, type KeyObject, verify } from 'node:crypto'

export const toBase64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url')
export const fromBase64url = (text: string): Buffer => Buffer.from(text, 'base64url')

export function ed25519PublicKey(raw: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw }, format: 'jwk' })
}

export function verifyEd25519(publicKey: KeyObject, message: Uint8Array, signature: string): boolean {
  const bytes = fromBase64url(signature)
  if (bytes.byteLength !== 64) return false
  return verify(null, message, publicKey, bytes)
}

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
/** An identity multihash (0x00) of 36 bytes: the protobuf of an Ed25519 (type 1) public key of 32 bytes. */
const ED25519_PEER_ID_PREFIX = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20]
const ED25519_PEER_ID_BYTES = ED25519_PEER_ID_PREFIX.length + 32

/** The raw 32-byte key of an Ed25519 peer id in its usual form (base58btc, `12D3KooW…`), else undefined. */
export function ed25519RawKeyOfPeerId(peerId: string): Uint8Array | undefined {
  if (!peerId.startsWith('12D3KooW') || peerId.length > 60) return undefined
  // Base58 to a big-endian number, byte by byte; the form has no leading zero bytes ('1' digits) to keep.
  const bytes: number[] = []
  for (const char of peerId) {
    let carry = BASE58.indexOf(char)
    if (carry < 0) return undefined
    for (let at = 0; at < bytes.length; at++) {
      carry += (bytes[at] as number) * 58
      bytes[at] = carry & 0xff
      carry >>= 8
    }
    for (; carry > 0; carry >>= 8) bytes.push(carry & 0xff)
  }
  // The identity multihash's code is 0x00: one zero byte, which base58 writes as a leading '1'.
  bytes.push(0)
  bytes.reverse()
  if (bytes.length !== ED25519_PEER_ID_BYTES) return undefined
  if (ED25519_PEER_ID_PREFIX.some((byte, at) => bytes[at] !== byte)) return undefined
  return Uint8Array.from(bytes.slice(ED25519_PEER_ID_PREFIX.length))
}

/** Keys of the peers whose signatures were checked last, one key object per peer. */
const KEYS_CACHED = 1024
const keys = new Map<string, KeyObject | null>()

/**
 * Whether `signature` (base64url) is the Ed25519 signature of `message` by the key inside `peerId`; false too for a
 * peer id not in the usual Ed25519 form (crypto.ts `signedByPeer` reads every form).
 */
export function signedByEd25519PeerId(peerId: string, message: Uint8Array, signature: string): boolean {
  let key = keys.get(peerId)
  if (key === undefined) {
    const raw = ed25519RawKeyOfPeerId(peerId)
    try {
      key = raw === undefined ? null : ed25519PublicKey(toBase64url(raw))
    } catch {
      key = null
    }
    keys.set(peerId, key)
    if (keys.size > KEYS_CACHED) keys.delete(keys.keys().next().value as string)
  }
  if (key === null) return false
  try {
    return verifyEd25519(key, message, signature)
  } catch {
    return false
  }
}
