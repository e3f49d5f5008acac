/**
 * An object arriving in pieces (PDV fragments of a C-STORE, a file read, a STOW-RS part), cut into chunks,
 * each chunk hashed and sealed, and the object hashed whole, all as the pieces come. An object of one chunk
 * (most images) is hashed once: its hash is its chunk's id. When the last piece lands, only
 * validation and one synced write are left: a C-STORE SCU, which waits for each answer before it sends the
 * next instance, does not wait for hashing or encryption.
 */
import { createHash, type Hash } from 'node:crypto'
import { CHUNK_SIZE, type SealedChunk } from './chunks.ts'
import type { ChunkSealer, StorageKey } from './sealing.ts'

export interface ReceivedObject {
  bytes: Buffer
  sha256: string
  chunks: SealedChunk[]
}

/** Thrown by `finish` when more was written than the limit the object was opened with. */
export class ObjectTooLargeError extends Error {
  readonly limit: number
  constructor (limit: number) {
    super(`the object is larger than ${limit} bytes`)
    this.limit = limit
    this.name = 'ObjectTooLargeError'
  }
}

interface OpenChunk { hash: Hash, sealer: ChunkSealer, sealed: Buffer[], length: number }

export class IncomingObject {
  readonly #key: StorageKey
  readonly #limit: number
  /** the whole object's hash, begun only when a second chunk opens: a one-chunk object's hash is its chunk id */
  #whole: Hash | undefined
  readonly #parts: Buffer[] = []
  readonly #chunks: SealedChunk[] = []
  #chunk: OpenChunk | undefined
  #length = 0
  #finished = false
  #tooLarge = false

  constructor (key: StorageKey, limit: number) {
    this.#key = key
    this.#limit = limit
  }

  /** Takes a piece (kept by reference, not copied: the caller must not reuse its memory). */
  write (piece: Uint8Array): void {
    if (this.#finished) throw new Error('write after finish')
    if (piece.byteLength === 0 || this.#tooLarge) return
    if (this.#length + piece.byteLength > this.#limit) {
      // The rest is read and dropped, so a network sender can still be answered.
      this.#tooLarge = true
      this.#parts.length = 0
      this.#chunks.length = 0
      this.#chunk = undefined
      return
    }
    const bytes = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength)
    this.#parts.push(bytes)
    let offset = 0
    while (offset < bytes.byteLength) {
      const chunk = this.#chunk ?? this.#openChunk()
      const take = Math.min(bytes.byteLength - offset, CHUNK_SIZE - chunk.length)
      const slice = bytes.subarray(offset, offset + take)
      chunk.hash.update(slice)
      this.#whole?.update(slice)
      chunk.sealed.push(chunk.sealer.update(slice))
      chunk.length += take
      offset += take
      if (chunk.length === CHUNK_SIZE) this.#closeChunk(chunk)
    }
    this.#length += bytes.byteLength
  }

  /** The whole object with its hashes and sealed chunks (an empty object is one empty chunk). */
  finish (): ReceivedObject {
    if (this.#finished) throw new Error('finish called twice')
    this.#finished = true
    if (this.#tooLarge) throw new ObjectTooLargeError(this.#limit)
    if (this.#chunk !== undefined || this.#chunks.length === 0) this.#closeChunk(this.#chunk ?? this.#openChunk())
    const bytes = this.#parts.length === 1 ? this.#parts[0] as Buffer : Buffer.concat(this.#parts, this.#length)
    const sha256 = this.#whole?.digest('hex') ?? (this.#chunks[0] as SealedChunk).id
    return { bytes, sha256, chunks: this.#chunks }
  }

  #openChunk (): OpenChunk {
    if (this.#chunks.length === 1 && this.#whole === undefined) {
      // A second chunk: from here on the object's hash is not its first chunk's. Hash the first chunk's bytes once more.
      this.#whole = createHash('sha256')
      let left = CHUNK_SIZE
      for (const part of this.#parts) {
        if (left === 0) break
        const take = Math.min(left, part.byteLength)
        this.#whole.update(part.subarray(0, take))
        left -= take
      }
    }
    const sealer = this.#key.chunkSealer()
    this.#chunk = { hash: createHash('sha256'), sealer, sealed: [sealer.nonce], length: 0 }
    return this.#chunk
  }

  #closeChunk (chunk: OpenChunk): void {
    chunk.sealed.push(chunk.sealer.final())
    this.#chunks.push({ id: chunk.hash.digest('hex'), sealed: chunk.sealed, sealedLength: chunk.sealed.reduce((sum, b) => sum + b.byteLength, 0) })
    this.#chunk = undefined
  }
}
