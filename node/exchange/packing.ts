/**
 * Chunks packed for the wire (`/radmesh/chunks/2.0.0`, see protocol/exchange/chunks.ts): the plaintext
 * compressed with zstd, then sealed under the version's wire key with a random nonce. zstd runs on libuv's
 * thread pool, so the event loop goes on moving other chunks while one is packed or unpacked.
 */
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, type KeyObject, randomBytes } from 'node:crypto'
import { constants, zstdCompress, zstdDecompress, type ZstdOptions } from 'node:zlib'
import {
  PACK_MIN_SAVING,
  PACK_ZSTD_LEVEL,
  PACKED_NONCE_BYTES,
  PACKED_TAG_BYTES,
  packedChunkAssociatedData,
  packedKeyInfo
} from '../../protocol/exchange/chunks.ts'
import { release } from '../heap.ts'
import { Recent } from './recent.ts'

/** Where a chunk sits in its version, as its associated data binds it. */
export interface ChunkPlace {
  studyUid: string
  versionId: string
  index: number
  last: boolean
}

const compress = async (input: Uint8Array, options: ZstdOptions): Promise<Buffer> =>
  await new Promise((resolve, reject) => {
    zstdCompress(input, options, (error, result) => {
      if (error === null) resolve(result)
      else reject(error)
    })
  })
const decompress = async (input: Uint8Array, options: ZstdOptions): Promise<Buffer> =>
  await new Promise((resolve, reject) => {
    zstdDecompress(input, options, (error, result) => {
      if (error === null) resolve(result)
      else reject(error)
    })
  })

/** Wire keys of the versions being served or fetched, derived once each (key setup is not free). */
const wireKeys = new Recent<string, KeyObject>(64)

function wireKey(contentKey: Uint8Array, place: ChunkPlace): KeyObject {
  const id = `${place.studyUid}/${place.versionId}/${Buffer.from(contentKey).toString('hex')}`
  let key = wireKeys.get(id)
  if (key === undefined) {
    const info = packedKeyInfo(place.studyUid, place.versionId)
    key = createSecretKey(Buffer.from(hkdfSync('sha256', contentKey, new Uint8Array(0), info, 32)))
    wireKeys.set(id, key)
  }
  return key
}

/** The chunk packed, or undefined when zstd does not make it at least PACK_MIN_SAVING smaller. */
export async function packChunk(
  contentKey: Uint8Array,
  place: ChunkPlace,
  plaintext: Uint8Array
): Promise<Buffer | undefined> {
  const params = { [constants.ZSTD_c_compressionLevel]: PACK_ZSTD_LEVEL }
  // One output buffer the size of the input: zlib's default of 16 KiB costs a trip to the event loop per piece.
  const chunkSize = Math.max(64, plaintext.byteLength)
  const compressed = await compress(plaintext, { params, pledgedSrcSize: plaintext.byteLength, chunkSize })
  if (compressed.byteLength > (1 - PACK_MIN_SAVING) * plaintext.byteLength) return undefined
  const nonce = randomBytes(PACKED_NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', wireKey(contentKey, place), nonce)
  cipher.setAAD(packedChunkAssociatedData(place.studyUid, place.versionId, place.index, place.last))
  const body = cipher.update(compressed)
  cipher.final()
  release(compressed)
  const packed = Buffer.concat([nonce, body, cipher.getAuthTag()])
  release(body)
  return packed
}

/**
 * The plaintext of a packed chunk, which must be exactly `plaintextSize` bytes. Throws when the chunk was
 * altered, was packed for another place or key, or does not unpack to that size (nothing larger is ever
 * made in memory).
 */
export async function unpackChunk(
  contentKey: Uint8Array,
  place: ChunkPlace,
  packed: Uint8Array,
  plaintextSize: number
): Promise<Buffer> {
  if (packed.byteLength < PACKED_NONCE_BYTES + PACKED_TAG_BYTES) {
    throw new Error(`packed chunk ${place.index} is too short`)
  }
  const nonce = packed.subarray(0, PACKED_NONCE_BYTES)
  const decipher = createDecipheriv('aes-256-gcm', wireKey(contentKey, place), nonce)
  decipher.setAAD(packedChunkAssociatedData(place.studyUid, place.versionId, place.index, place.last))
  decipher.setAuthTag(packed.subarray(packed.byteLength - PACKED_TAG_BYTES))
  const compressed = decipher.update(packed.subarray(PACKED_NONCE_BYTES, packed.byteLength - PACKED_TAG_BYTES))
  decipher.final()
  const limit = Math.max(64, plaintextSize)
  const plaintext = await decompress(compressed, { maxOutputLength: limit, chunkSize: limit }).finally(() => {
    release(compressed)
  })
  if (plaintext.byteLength !== plaintextSize) {
    throw new Error(`packed chunk ${place.index} unpacks to ${plaintext.byteLength} bytes, not ${plaintextSize}`)
  }
  return plaintext
}
