/**
 * Encryption at rest. Every byte of patient data a node writes (instance chunks, index records) is sealed
 * with AES-256-GCM under the node's storage key (HOME/storage.key, 0600, made on first start), with
 * associated data naming what the bytes are, so a sealed value moved to another key or file does not open.
 * The key never leaves the node; the exchange re-encrypts for recipients with per-study keys.
 */
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, type KeyObject, randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { HomeError } from '../errors.ts'
import { exists, SECRET_FILE_MODE, writeFileAtomic } from '../files.ts'

const NONCE_LENGTH = 12
/**
 * Nonces are cut from random bytes drawn this many at a time: one system call for 340 seals instead of one
 * each (a reader taking a site's worklist seals thousands of small values). Every nonce is still 96 random
 * bits, never reused.
 */
const NONCE_POOL_BYTES = 4096
let noncePool = Buffer.alloc(0)
let noncePoolAt = 0

function randomNonce(): Buffer {
  if (noncePoolAt + NONCE_LENGTH > noncePool.byteLength) {
    noncePool = randomBytes(NONCE_POOL_BYTES)
    noncePoolAt = 0
  }
  // A copy: the pool is not referenced by what is sealed.
  const nonce = Buffer.from(noncePool.subarray(noncePoolAt, noncePoolAt + NONCE_LENGTH))
  noncePool.fill(0, noncePoolAt, noncePoolAt + NONCE_LENGTH)
  noncePoolAt += NONCE_LENGTH
  return nonce
}
const TAG_LENGTH = 16
export const SEAL_OVERHEAD = NONCE_LENGTH + TAG_LENGTH

/** Associated data of every sealed chunk. A chunk is bound to its id by the SHA-256 checked on every read. */
export const CHUNK_ASSOCIATED_DATA = 'radmesh chunk v1'

/** Seals one chunk as its bytes arrive: `nonce`, each `update`, then `final()` (the tag) make the sealed chunk. */
export interface ChunkSealer {
  readonly nonce: Buffer
  update(plaintext: Uint8Array): Buffer
  final(): Buffer
}

export class StorageKey {
  /** made once: a cipher given raw key bytes builds a key object each time (measured: ~15 % of a small seal) */
  private readonly key: KeyObject
  constructor(key: Buffer) {
    if (key.byteLength !== 32) throw new TypeError('a storage key is 32 bytes')
    this.key = createSecretKey(key)
  }

  static async load(path: string): Promise<StorageKey> {
    if (!(await exists(path))) await writeFileAtomic(path, randomBytes(32), SECRET_FILE_MODE)
    const key = await fs.readFile(path)
    if (key.byteLength !== 32) {
      const damaged = `the storage key at ${path} is damaged (${key.byteLength} bytes, not 32)`
      const restore = 'without it the archive cannot be read: restore it from a backup'
      throw new HomeError('RADMESH_HOME_CORRUPT', `${damaged}; ${restore}`)
    }
    return new StorageKey(key)
  }

  /** nonce || ciphertext || tag */
  seal(plaintext: Uint8Array, associatedData: string): Buffer {
    const nonce = randomNonce()
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce)
    cipher.setAAD(Buffer.from(associatedData))
    const body = cipher.update(plaintext)
    cipher.final()
    return Buffer.concat([nonce, body, cipher.getAuthTag()])
  }

  /** A sealer whose output, concatenated, opens with `open(sealed, CHUNK_ASSOCIATED_DATA)`. */
  chunkSealer(): ChunkSealer {
    const nonce = randomNonce()
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce)
    cipher.setAAD(Buffer.from(CHUNK_ASSOCIATED_DATA))
    return {
      nonce,
      update: plaintext => cipher.update(plaintext),
      final: () => {
        cipher.final()
        return cipher.getAuthTag()
      }
    }
  }

  /** Throws when the bytes were altered or sealed for other associated data. */
  open(sealed: Uint8Array, associatedData: string): Buffer {
    if (sealed.byteLength < SEAL_OVERHEAD) throw new Error('sealed value too short')
    const nonce = sealed.subarray(0, NONCE_LENGTH)
    const tag = sealed.subarray(sealed.byteLength - TAG_LENGTH)
    const decipher = createDecipheriv('aes-256-gcm', this.key, nonce)
    decipher.setAAD(Buffer.from(associatedData))
    decipher.setAuthTag(tag)
    const body = decipher.update(sealed.subarray(NONCE_LENGTH, sealed.byteLength - TAG_LENGTH))
    decipher.final()
    return body
  }

  /** A keyed name for a content hash, so file names on disk reveal nothing about the content. */
  name(contentId: string): string {
    return createHmac('sha256', this.key).update(contentId).digest('hex')
  }
}
