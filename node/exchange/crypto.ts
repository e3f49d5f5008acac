/**
 * The exchange's cryptography, all `node:crypto` (see protocol/exchange/manifest.ts for the construction):
 * chunk AEAD under a study version's content key, the sealed manifest index, X25519 key wraps, and Ed25519
 * signatures by members' peer keys.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes
} from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import {
  chunkAssociatedData,
  decodeManifestIndex,
  indexAssociatedData,
  type KeyWrap,
  keyWrapInfo,
  keyWrapSigningBytes,
  type ManifestIndex,
  manifestSigningBytes,
  type StudyManifest
} from '../../protocol/exchange/manifest.ts'
import { parseJsonBytes, utf8 } from '../../protocol/json.ts'
import { MalformedMessageError } from '../../protocol/errors.ts'
import { release } from '../heap.ts'
import { secretKeyObject } from '../key-objects.ts'
import { fromBase64url, rawPublicKey, signedByPeer, toBase64url } from '../membership/crypto.ts'

const TAG = 16
const INDEX_NONCE = Buffer.alloc(12, 0xff)
const WRAP_NONCE = Buffer.alloc(12)

export const newContentKey = (): Buffer => randomBytes(32)

function chunkNonce(index: number): Buffer {
  const nonce = Buffer.alloc(12)
  nonce.writeBigUInt64BE(BigInt(index), 4)
  return nonce
}

/** ciphertext || tag; deterministic for a key and index, so every holder serves the same bytes. */
export function encryptChunk(
  key: Uint8Array,
  studyUid: string,
  versionId: string,
  index: number,
  last: boolean,
  plaintext: Uint8Array
): Buffer {
  const cipher = createCipheriv('aes-256-gcm', secretKeyObject(key), chunkNonce(index))
  cipher.setAAD(chunkAssociatedData(studyUid, versionId, index, last))
  const body = cipher.update(plaintext)
  cipher.final()
  const sealed = Buffer.concat([body, cipher.getAuthTag()])
  release(body)
  return sealed
}

/** Throws when the chunk was altered, or belongs to another study, version, place or key. */
export function decryptChunk(
  key: Uint8Array,
  studyUid: string,
  versionId: string,
  index: number,
  last: boolean,
  sealed: Uint8Array
): Buffer {
  if (sealed.byteLength < TAG) throw new Error(`chunk ${index} is shorter than its tag`)
  const decipher = createDecipheriv('aes-256-gcm', secretKeyObject(key), chunkNonce(index))
  decipher.setAAD(chunkAssociatedData(studyUid, versionId, index, last))
  decipher.setAuthTag(sealed.subarray(sealed.byteLength - TAG))
  const body = decipher.update(sealed.subarray(0, sealed.byteLength - TAG))
  decipher.final()
  return body
}

export function sealIndex(key: Uint8Array, studyUid: string, versionId: string, index: ManifestIndex): string {
  const cipher = createCipheriv('aes-256-gcm', key, INDEX_NONCE)
  cipher.setAAD(indexAssociatedData(studyUid, versionId))
  const body = cipher.update(utf8(JSON.stringify(index)))
  cipher.final()
  return toBase64url(Buffer.concat([body, cipher.getAuthTag()]))
}

/** Opens and checks the sealed index; a wrong key is an error, not garbage. */
export function openIndex(key: Uint8Array, manifest: StudyManifest): ManifestIndex {
  const sealed = fromBase64url(manifest.sealedIndex)
  if (sealed.byteLength < TAG) throw new MalformedMessageError('the sealed manifest index is too short')
  const decipher = createDecipheriv('aes-256-gcm', key, INDEX_NONCE)
  decipher.setAAD(indexAssociatedData(manifest.studyUid, manifest.versionId))
  decipher.setAuthTag(sealed.subarray(sealed.byteLength - TAG))
  const body = Buffer.concat([decipher.update(sealed.subarray(0, sealed.byteLength - TAG)), decipher.final()])
  return decodeManifestIndex(parseJsonBytes(body, body.byteLength, 'manifest index'), manifest)
}

const x25519PublicKey = (raw: string): KeyObject =>
  createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw }, format: 'jwk' })

function wrappingKey(
  shared: Buffer,
  ephemeralRaw: string,
  recipientRaw: string,
  studyUid: string,
  versionId: string
): Buffer {
  const salt = Buffer.concat([fromBase64url(ephemeralRaw), fromBase64url(recipientRaw)])
  return Buffer.from(hkdfSync('sha256', shared, salt, keyWrapInfo(studyUid, versionId), 32))
}

/** Wraps the content key for a recipient's certified X25519 key (unsigned: see signKeyWrap). */
export function wrapContentKey(
  contentKey: Uint8Array,
  recipientWrapKey: string,
  studyUid: string,
  versionId: string
): { ephemeralKey: string; wrappedKey: string } {
  const ephemeral = generateKeyPairSync('x25519')
  const ephemeralKey = rawPublicKey(ephemeral.publicKey)
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: x25519PublicKey(recipientWrapKey) })
  const key = wrappingKey(shared, ephemeralKey, recipientWrapKey, studyUid, versionId)
  const cipher = createCipheriv('aes-256-gcm', key, WRAP_NONCE)
  cipher.setAAD(keyWrapInfo(studyUid, versionId))
  const body = cipher.update(contentKey)
  cipher.final()
  return { ephemeralKey, wrappedKey: toBase64url(Buffer.concat([body, cipher.getAuthTag()])) }
}

/** The content key from a wrap made for us; throws when it was made for another key, study or version. */
export function unwrapContentKey(wrap: KeyWrap, wrapPrivateKey: KeyObject, wrapPublicKey: string): Buffer {
  const shared = diffieHellman({ privateKey: wrapPrivateKey, publicKey: x25519PublicKey(wrap.ephemeralKey) })
  const sealed = fromBase64url(wrap.wrappedKey)
  const key = wrappingKey(shared, wrap.ephemeralKey, wrapPublicKey, wrap.studyUid, wrap.versionId)
  const decipher = createDecipheriv('aes-256-gcm', key, WRAP_NONCE)
  decipher.setAAD(keyWrapInfo(wrap.studyUid, wrap.versionId))
  decipher.setAuthTag(sealed.subarray(32))
  return Buffer.concat([decipher.update(sealed.subarray(0, 32)), decipher.final()])
}

export async function signManifest(
  privateKey: PrivateKey,
  manifest: Omit<StudyManifest, 'signature'>
): Promise<StudyManifest> {
  return { ...manifest, signature: toBase64url(await privateKey.sign(manifestSigningBytes(manifest))) }
}

export async function signKeyWrap(privateKey: PrivateKey, wrap: Omit<KeyWrap, 'signature'>): Promise<KeyWrap> {
  return { ...wrap, signature: toBase64url(await privateKey.sign(keyWrapSigningBytes(wrap))) }
}

export const manifestVerifies = async (manifest: StudyManifest): Promise<boolean> =>
  await signedByPeer(manifest.origin, manifestSigningBytes(manifest), manifest.signature)

export const keyWrapVerifies = async (wrap: KeyWrap): Promise<boolean> =>
  await signedByPeer(wrap.wrappedBy, keyWrapSigningBytes(wrap), wrap.signature)
