/**
 * An object arriving in pieces (PDV fragments of a C-STORE, a file read, a STOW-RS part), cut into chunks,
 * each chunk hashed and sealed, and the object hashed whole, all as the pieces come. An object of one chunk
 * (most images) is hashed once: its hash is its chunk's id. When the last piece lands, only
 * validation and one synced write are left: a C-STORE SCU, which waits for each answer before it sends the
 * next instance, does not wait for hashing or encryption.
 *
 * The pieces are copied into one assembly buffer, taken from a small pool and given back by `release()`:
 * most objects fit in a buffer an earlier one grew, so receiving an image allocates no buffer of its size
 * (fewer full garbage collections and a lower RSS while a study streams in; `npm run bench -- ingest`).
 */
import { createHash, type Hash } from 'node:crypto'
import { offHeapGarbage } from '../heap.ts'
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

/** Assembly buffers up to this size go back to the pool; larger objects get a buffer of their own. */
const POOLED_BUFFER_MAX = 8 * 1024 * 1024
/** Buffers kept for reuse (about one per association receiving at once). */
const POOL_SIZE = 4
const FIRST_BUFFER_SIZE = 1024 * 1024
const pool: Buffer[] = []

function takeBuffer (size: number): Buffer {
  const i = pool.findIndex(buffer => buffer.byteLength >= size)
  return i >= 0 ? pool.splice(i, 1)[0] as Buffer : Buffer.allocUnsafe(Math.max(size, FIRST_BUFFER_SIZE))
}

function giveBack (buffer: Buffer): void {
  if (buffer.byteLength > POOLED_BUFFER_MAX) return
  pool.push(buffer)
  pool.sort((a, b) => b.byteLength - a.byteLength)
  pool.length = Math.min(pool.length, POOL_SIZE)
}

export class IncomingObject {
  readonly #key: StorageKey
  readonly #limit: number
  /** the whole object's hash, begun only when a second chunk opens: a one-chunk object's hash is its chunk id */
  #whole: Hash | undefined
  /** the object so far, in its first `#length` bytes */
  #buffer: Buffer | undefined
  readonly #chunks: SealedChunk[] = []
  #chunk: OpenChunk | undefined
  #length = 0
  #finished = false
  #released = false
  #tooLarge = false

  constructor (key: StorageKey, limit: number) {
    this.#key = key
    this.#limit = limit
  }

  /** Takes a piece (copied: the caller may reuse its memory). */
  write (piece: Uint8Array): void {
    if (this.#finished) throw new Error('write after finish')
    if (piece.byteLength === 0 || this.#tooLarge) return
    if (this.#length + piece.byteLength > this.#limit) {
      // The rest is read and dropped, so a network sender can still be answered.
      this.#tooLarge = true
      this.release()
      this.#chunks.length = 0
      this.#chunk = undefined
      return
    }
    const start = this.#length
    const bytes = this.#room(piece.byteLength)
    bytes.set(piece, start)
    let offset = start
    const end = start + piece.byteLength
    while (offset < end) {
      const chunk = this.#chunk ?? this.#openChunk()
      const take = Math.min(end - offset, CHUNK_SIZE - chunk.length)
      const slice = bytes.subarray(offset, offset + take)
      chunk.hash.update(slice)
      this.#whole?.update(slice)
      chunk.sealed.push(chunk.sealer.update(slice))
      chunk.length += take
      offset += take
      if (chunk.length === CHUNK_SIZE) this.#closeChunk(chunk)
    }
    this.#length = end
  }

  /**
   * The whole object with its hashes and sealed chunks (an empty object is one empty chunk). `bytes` is
   * valid until `release()`.
   */
  finish (): ReceivedObject {
    if (this.#finished) throw new Error('finish called twice')
    this.#finished = true
    if (this.#tooLarge) throw new ObjectTooLargeError(this.#limit)
    if (this.#chunk !== undefined || this.#chunks.length === 0) this.#closeChunk(this.#chunk ?? this.#openChunk())
    const bytes = this.#buffer === undefined ? Buffer.alloc(0) : this.#buffer.subarray(0, this.#length)
    const sha256 = this.#whole?.digest('hex') ?? (this.#chunks[0] as SealedChunk).id
    return { bytes, sha256, chunks: this.#chunks }
  }

  /** Gives the assembly buffer back for the next object: `finish().bytes` must not be used after this. */
  release (): void {
    if (this.#released) return
    this.#released = true
    // The socket reads and the cipher output of this object are garbage now (see heap.ts).
    offHeapGarbage(2 * this.#length)
    if (this.#buffer !== undefined) giveBack(this.#buffer)
    this.#buffer = undefined
  }

  /** The assembly buffer, grown (doubling) so that `more` bytes fit after the object so far. */
  #room (more: number): Buffer {
    if (this.#released) throw new Error('write after release')
    const needed = this.#length + more
    const buffer = this.#buffer
    if (buffer !== undefined && buffer.byteLength >= needed) return buffer
    const grown = takeBuffer(Math.min(this.#limit, Math.max(needed, (buffer?.byteLength ?? 0) * 2)))
    if (buffer !== undefined) {
      buffer.copy(grown, 0, 0, this.#length)
      giveBack(buffer)
    }
    this.#buffer = grown
    return grown
  }

  #openChunk (): OpenChunk {
    if (this.#chunks.length === 1 && this.#whole === undefined) {
      // A second chunk: from here on the object's hash is not its first chunk's. Hash the first chunk's bytes once more.
      this.#whole = createHash('sha256').update((this.#buffer as Buffer).subarray(0, CHUNK_SIZE))
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
