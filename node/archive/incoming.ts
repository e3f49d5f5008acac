/**
 * An object arriving in pieces (PDV fragments of a C-STORE, a file read, a STOW-RS part), cut into chunks,
 * each chunk sealed as the pieces come and hashed once it is whole, and the object hashed whole. An object
 * of one chunk (most images) is hashed once: its hash is its chunk's id.
 *
 * The last chunk's hash is left to `identify()`, after `seal()`: the archive starts the synced write of a
 * sealed image before it hashes it (`ChunkStore.stage`), so the hash runs while the disk writes. A C-STORE
 * SCU waits for each answer before it sends the next instance, and the write is the longest wait in it.
 *
 * The pieces are copied into one assembly buffer, taken from a small pool and given back by `release()`:
 * most objects fit in a buffer an earlier one grew, so receiving an image allocates no buffer of its size
 * (fewer full garbage collections and a lower RSS while a study streams in; `npm run bench -- ingest`).
 */
import { createHash, type Hash } from 'node:crypto'
import { offHeapGarbage } from '../heap.ts'
import { CHUNK_SIZE, type SealedChunk, type SealedPieces } from './chunks.ts'
import type { ChunkSealer, StorageKey } from './sealing.ts'

export interface ReceivedObject {
  bytes: Buffer
  sha256: string
  chunks: SealedChunk[]
}

/** The object sealed, its last chunk's id (and so its own hash) still to take: see `identify`. */
export interface SealedObject {
  bytes: Buffer
  chunks: SealedPieces[]
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

interface OpenChunk { start: number, sealer: ChunkSealer, sealed: Buffer[], length: number }
/** A chunk sealed whole: where its bytes are in the object, and its id once hashed. */
interface ClosedChunk extends SealedPieces { start: number, length: number, id?: string }

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
  /** closed chunks; only the last one's id may still be missing (between `seal` and `identify`) */
  readonly #chunks: ClosedChunk[] = []
  #chunk: OpenChunk | undefined
  #length = 0
  #sealed = false
  #identified: ReceivedObject | undefined
  #released = false
  #tooLarge = false

  constructor (key: StorageKey, limit: number) {
    this.#key = key
    this.#limit = limit
  }

  /**
   * Takes a piece (copied: the caller may reuse its memory). Returns false when the caller should wait for
   * `drain()` before writing more (the object's bytes on their way to disk are at their bound).
   */
  write (piece: Uint8Array): boolean {
    if (this.#sealed) throw new Error('write after seal')
    if (piece.byteLength === 0 || this.#tooLarge) return true
    if (this.#length + piece.byteLength > this.#limit) {
      // The rest is read and dropped, so a network sender can still be answered.
      this.#tooLarge = true
      this.release()
      this.#chunks.length = 0
      this.#chunk = undefined
      return true
    }
    const start = this.#length
    const bytes = this.#room(piece.byteLength)
    bytes.set(piece, start)
    let offset = start
    const end = start + piece.byteLength
    while (offset < end) {
      const chunk = this.#chunk ?? this.#openChunk()
      const take = Math.min(end - offset, CHUNK_SIZE - chunk.length)
      chunk.sealed.push(chunk.sealer.update(bytes.subarray(offset, offset + take)))
      chunk.length += take
      offset += take
      if (chunk.length === CHUNK_SIZE) this.#hashChunk(this.#closeChunk(chunk))
    }
    this.#length = end
    return true
  }

  /** Resolves once the caller may write again after `write` returned false. */
  async drain (): Promise<void> {}

  /**
   * Ends the object: its bytes and its sealed chunks (an empty object is one empty chunk), the last chunk
   * not hashed yet. `bytes` is valid until `release()`.
   */
  seal (): SealedObject {
    if (this.#sealed) throw new Error('seal called twice')
    this.#sealed = true
    if (this.#tooLarge) throw new ObjectTooLargeError(this.#limit)
    if (this.#chunk !== undefined || this.#chunks.length === 0) this.#closeChunk(this.#chunk ?? this.#openChunk())
    return { bytes: this.#bytes(), chunks: this.#chunks }
  }

  /** After `seal()`: the object with its hash and every chunk's id (the last chunk hashed now). */
  identify (): ReceivedObject {
    if (!this.#sealed) throw new Error('identify before seal')
    if (this.#identified !== undefined) return this.#identified
    const last = this.#chunks.at(-1) as ClosedChunk
    if (last.id === undefined && this.#released) throw new Error('identify after release: the bytes to hash are gone')
    if (last.id === undefined) this.#hashChunk(last)
    const chunks = this.#chunks as SealedChunk[]
    this.#identified = { bytes: this.#bytes(), sha256: this.#whole?.digest('hex') ?? (chunks[0] as SealedChunk).id, chunks }
    return this.#identified
  }

  /** `seal()` and `identify()` at once. */
  finish (): ReceivedObject {
    this.seal()
    return this.identify()
  }

  #bytes (): Buffer {
    return this.#buffer === undefined ? Buffer.alloc(0) : this.#buffer.subarray(0, this.#length)
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
    // Every chunk before this one is full.
    this.#chunk = { start: this.#chunks.length * CHUNK_SIZE, sealer, sealed: [sealer.nonce], length: 0 }
    return this.#chunk
  }

  /** Seals a chunk's end; its id is taken by `#hashChunk`, now for a chunk that filled, by `identify` for the last. */
  #closeChunk (chunk: OpenChunk): ClosedChunk {
    chunk.sealed.push(chunk.sealer.final())
    const closed = { sealed: chunk.sealed, sealedLength: chunk.sealed.reduce((sum, b) => sum + b.byteLength, 0), start: chunk.start, length: chunk.length }
    this.#chunks.push(closed)
    this.#chunk = undefined
    return closed
  }

  /** A closed chunk's id, from its bytes in the assembly buffer, which also go into the whole object's hash. */
  #hashChunk (chunk: ClosedChunk): void {
    const bytes = (this.#buffer ?? Buffer.alloc(0)).subarray(chunk.start, chunk.start + chunk.length)
    chunk.id = createHash('sha256').update(bytes).digest('hex')
    this.#whole?.update(bytes)
  }
}
