/**
 * Study manifests and key wraps: what a site publishes so that its readers can fetch a study from anyone
 * who holds it, and read it, while no one else can.
 *
 * A study version is a snapshot of a study's instances with a fresh 256-bit content key. Its instances, in
 * reading order, are cut into transfer chunks of at most TRANSFER_CHUNK_PLAINTEXT bytes; chunk `i` is
 * AES-256-GCM under the content key with nonce = 4 zero bytes || uint64be(i) and associated data binding the
 * study, the version, `i` and whether it is the study's last chunk (so chunks cannot be moved, reordered or
 * cut off). The manifest lists every chunk by the SHA-256 of its ciphertext, so any holder can serve it and
 * any receiver can check it before decrypting. UIDs, sizes and plaintext hashes of the instances are in
 * `sealedIndex`, sealed under the content key: a member without the key learns the study UID, the number of
 * chunks and their sizes, nothing else. The origin signs the manifest (Ed25519, its peer key).
 *
 * The content key travels in key wraps, one per recipient, in the style of age's X25519 recipients: an
 * ephemeral X25519 key agreement with the recipient's certified wrap key, HKDF-SHA256 with the study and
 * version bound in, AES-256-GCM of the content key. Whoever makes a wrap (the origin, or a recipient asking
 * for a consult) signs it, so a recipient knows who gave it the key. A wrap adds a reader without
 * re-encrypting any chunk.
 */
import { MalformedMessageError } from '../errors.ts'
import { asPeerIdString, type PeerIdString } from '../ids.ts'
import { asObject, base64urlField, integerField, signingBytes, stringField, timeField, utf8 } from '../json.ts'

export const MANIFEST_VERSION = 1
export const SIGNING_CONTEXT_MANIFEST = 'radmesh/study-manifest/v1\n'
export const SIGNING_CONTEXT_KEY_WRAP = 'radmesh/key-wrap/v1\n'
/** AES-256-GCM's tag: a sealed chunk is its plaintext and this many bytes more. */
export const CHUNK_TAG_BYTES = 16
/** Sealed, a transfer chunk is exactly 1 MiB: one chunk of the node's content store. */
export const TRANSFER_CHUNK_PLAINTEXT = 1024 * 1024 - CHUNK_TAG_BYTES
export const TRANSFER_CHUNK_MAX = TRANSFER_CHUNK_PLAINTEXT + CHUNK_TAG_BYTES
/** A manifest lists at most this many chunks (a 2 TB study); its encoding stays under MAX_MANIFEST_BYTES. */
export const MAX_CHUNKS = 2_000_000
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024
export const MAX_KEY_WRAP_BYTES = 4096
/** DICOM UIDs: digits and dots, at most 64 characters. */
export const UID_PATTERN = /^[0-9]+(\.[0-9]+)*$/
const HEX_SHA256 = /^[0-9a-f]{64}$/
const VERSION_ID = /^[0-9a-f]{32}$/
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{40,128}$/

export interface StudyManifest {
  v: number
  consortiumId: string
  studyUid: string
  /** 16 random bytes, hex: names this version of the study */
  versionId: string
  origin: PeerIdString
  createdAt: string
  instanceCount: number
  /** plaintext bytes of all instances */
  bytes: number
  /** SHA-256 of each ciphertext chunk, hex, in chunk order */
  chunkHashes: string[]
  /** ciphertext size of each chunk */
  chunkSizes: number[]
  /** base64url AES-256-GCM (content key, nonce 0xff x 12) of the JSON ManifestIndex */
  sealedIndex: string
  /** Ed25519 by `origin`, base64url */
  signature: string
}

/** The sealed part of a manifest: instances in reading order, with where their bytes lie. */
export interface ManifestIndex {
  instances: ManifestInstance[]
}

export interface ManifestInstance {
  sopUid: string
  seriesUid: string
  /** bytes of the Part 10 file */
  size: number
  /** SHA-256 of the Part 10 file, hex */
  sha256: string
  firstChunk: number
  chunkCount: number
}

export interface KeyWrap {
  v: number
  studyUid: string
  versionId: string
  recipient: PeerIdString
  /** raw X25519 ephemeral public key, base64url */
  ephemeralKey: string
  /** the content key sealed with AES-256-GCM (32 + 16 bytes), base64url */
  wrappedKey: string
  wrappedBy: PeerIdString
  createdAt: string
  /** Ed25519 by `wrappedBy`, base64url */
  signature: string
}

type Unsigned<T> = Omit<T, 'signature'> & { signature?: string }

export const manifestSigningBytes = (manifest: Unsigned<StudyManifest>): Uint8Array =>
  signingBytes(SIGNING_CONTEXT_MANIFEST, manifest)
export const keyWrapSigningBytes = (wrap: Unsigned<KeyWrap>): Uint8Array => signingBytes(SIGNING_CONTEXT_KEY_WRAP, wrap)

/** Associated data of chunk `index` of a study version. */
export function chunkAssociatedData(studyUid: string, versionId: string, index: number, last: boolean): Uint8Array {
  return utf8(`radmesh/chunk/v1\n${studyUid}\n${versionId}\n${index}\n${last ? 'last' : 'more'}`)
}

/** Associated data and HKDF info of the sealed index and of key wraps. */
export const indexAssociatedData = (studyUid: string, versionId: string): Uint8Array =>
  utf8(`radmesh/manifest-index/v1\n${studyUid}\n${versionId}`)
export const keyWrapInfo = (studyUid: string, versionId: string): Uint8Array =>
  utf8(`radmesh/key-wrap/v1\n${studyUid}\n${versionId}`)

export function uidField(object: Record<string, unknown>, key: string, what: string): string {
  const value = stringField(object, key, what, 64)
  if (!UID_PATTERN.test(value)) {
    throw new MalformedMessageError(`${what}.${key} must be a DICOM UID (digits and dots, at most 64 characters)`)
  }
  return value
}

export function versionIdField(object: Record<string, unknown>, key: string, what: string): string {
  const value = stringField(object, key, what, 32)
  if (!VERSION_ID.test(value)) throw new MalformedMessageError(`${what}.${key} must be 32 hex digits`)
  return value
}

export function peerIdField(object: Record<string, unknown>, key: string, what: string): PeerIdString {
  const value = stringField(object, key, what, 128)
  if (!PEER_ID.test(value)) throw new MalformedMessageError(`${what}.${key} must be a peer id`)
  return asPeerIdString(value)
}

function checkVersion(object: Record<string, unknown>, what: string): number {
  const v = integerField(object, 'v', what)
  if (v !== MANIFEST_VERSION) {
    throw new MalformedMessageError(`${what} has version ${v}; this radmesh reads version ${MANIFEST_VERSION}`)
  }
  return v
}

function nonNegative(object: Record<string, unknown>, key: string, what: string): number {
  const value = integerField(object, key, what)
  if (value < 0) throw new MalformedMessageError(`${what}.${key} must not be negative`)
  return value
}

function base64urlString(object: Record<string, unknown>, key: string, what: string, maxLength: number): string {
  const value = stringField(object, key, what, maxLength)
  if (!/^[A-Za-z0-9_-]*$/.test(value)) throw new MalformedMessageError(`${what}.${key} must be base64url`)
  return value
}

export function decodeManifest(value: unknown): StudyManifest {
  const what = 'manifest'
  const object = asObject(value, what)
  const hashes = object['chunkHashes']
  const sizes = object['chunkSizes']
  if (!Array.isArray(hashes) || !Array.isArray(sizes)) {
    throw new MalformedMessageError(`${what}.chunkHashes and chunkSizes must be arrays`)
  }
  if (hashes.length === 0 || hashes.length > MAX_CHUNKS || sizes.length !== hashes.length) {
    throw new MalformedMessageError(`${what} must list between 1 and ${MAX_CHUNKS} chunks, with a size for each`)
  }
  hashes.forEach((hash, i) => {
    if (typeof hash !== 'string' || !HEX_SHA256.test(hash)) {
      throw new MalformedMessageError(`${what}.chunkHashes[${i}] must be a SHA-256 in hex`)
    }
  })
  let sealedBytes = 0
  sizes.forEach((size, i) => {
    if (typeof size !== 'number' || !Number.isInteger(size) || size < CHUNK_TAG_BYTES || size > TRANSFER_CHUNK_MAX) {
      throw new MalformedMessageError(`${what}.chunkSizes[${i}] must be ${CHUNK_TAG_BYTES} to ${TRANSFER_CHUNK_MAX}`)
    }
    sealedBytes += size
  })
  // Declared totals are checked against the chunk list before anything is sized from them.
  const instanceCount = nonNegative(object, 'instanceCount', what)
  if (instanceCount < 1 || instanceCount > hashes.length) {
    throw new MalformedMessageError(`${what}.instanceCount must be 1 to ${hashes.length}: an instance has chunks`)
  }
  const bytes = nonNegative(object, 'bytes', what)
  const plaintextBytes = sealedBytes - CHUNK_TAG_BYTES * sizes.length
  if (bytes !== plaintextBytes) {
    throw new MalformedMessageError(`${what}.bytes is ${bytes}; its chunks hold ${plaintextBytes}`)
  }
  return {
    v: checkVersion(object, what),
    consortiumId: base64urlField(object, 'consortiumId', what, 32),
    studyUid: uidField(object, 'studyUid', what),
    versionId: versionIdField(object, 'versionId', what),
    origin: peerIdField(object, 'origin', what),
    createdAt: timeField(object, 'createdAt', what),
    instanceCount,
    bytes,
    chunkHashes: hashes as string[],
    chunkSizes: sizes as number[],
    sealedIndex: base64urlString(object, 'sealedIndex', what, MAX_MANIFEST_BYTES),
    signature: base64urlField(object, 'signature', what, 64)
  }
}

/**
 * Checks the sealed index once opened: every instance's chunks lie inside the manifest, in order, without
 * overlap, and the manifest's chunk sizes are exactly what the instance's size cuts into (full chunks, then
 * the rest), so no declared size, count or length disagrees with another.
 */
export function decodeManifestIndex(value: unknown, manifest: StudyManifest): ManifestIndex {
  const what = 'manifest index'
  const object = asObject(value, what)
  const list = object['instances']
  if (!Array.isArray(list) || list.length !== manifest.instanceCount) {
    throw new MalformedMessageError(`${what}.instances must list the manifest's ${manifest.instanceCount} instances`)
  }
  const total = manifest.chunkHashes.length
  let nextChunk = 0
  let bytes = 0
  const instances = list.map((item, i): ManifestInstance => {
    const entry = asObject(item, `${what}.instances[${i}]`)
    const instance: ManifestInstance = {
      sopUid: uidField(entry, 'sopUid', `${what}.instances[${i}]`),
      seriesUid: uidField(entry, 'seriesUid', `${what}.instances[${i}]`),
      size: nonNegative(entry, 'size', `${what}.instances[${i}]`),
      sha256: stringField(entry, 'sha256', `${what}.instances[${i}]`, 64),
      firstChunk: nonNegative(entry, 'firstChunk', `${what}.instances[${i}]`),
      chunkCount: nonNegative(entry, 'chunkCount', `${what}.instances[${i}]`)
    }
    if (!HEX_SHA256.test(instance.sha256)) {
      throw new MalformedMessageError(`${what}.instances[${i}].sha256 must be a SHA-256 in hex`)
    }
    const expectedChunks = Math.max(1, Math.ceil(instance.size / TRANSFER_CHUNK_PLAINTEXT))
    if (instance.firstChunk !== nextChunk || instance.chunkCount !== expectedChunks) {
      throw new MalformedMessageError(`${what}.instances[${i}] does not follow the one before it in the chunk list`)
    }
    if (nextChunk + instance.chunkCount > total) {
      throw new MalformedMessageError(`${what}.instances[${i}] runs past the manifest's ${total} chunks`)
    }
    for (let c = 0; c < instance.chunkCount; c++) {
      const last = c === instance.chunkCount - 1
      const plaintext = last ? instance.size - c * TRANSFER_CHUNK_PLAINTEXT : TRANSFER_CHUNK_PLAINTEXT
      if (manifest.chunkSizes[nextChunk + c] !== plaintext + CHUNK_TAG_BYTES) {
        throw new MalformedMessageError(`${what}.instances[${i}] does not fit chunk ${nextChunk + c}`)
      }
    }
    nextChunk += instance.chunkCount
    bytes += instance.size
    return instance
  })
  if (nextChunk !== manifest.chunkHashes.length || bytes !== manifest.bytes) {
    throw new MalformedMessageError(`${what} does not account for the manifest's chunks and bytes`)
  }
  return { instances }
}

export function decodeKeyWrap(value: unknown): KeyWrap {
  const what = 'key wrap'
  const object = asObject(value, what)
  return {
    v: checkVersion(object, what),
    studyUid: uidField(object, 'studyUid', what),
    versionId: versionIdField(object, 'versionId', what),
    recipient: peerIdField(object, 'recipient', what),
    ephemeralKey: base64urlField(object, 'ephemeralKey', what, 32),
    wrappedKey: base64urlField(object, 'wrappedKey', what, 48),
    wrappedBy: peerIdField(object, 'wrappedBy', what),
    createdAt: timeField(object, 'createdAt', what),
    signature: base64urlField(object, 'signature', what, 64)
  }
}
