/**
 * An object arriving in pieces (PDV fragments of a C-STORE, a file read, a STOW-RS part), cut into chunks,
 * each chunk sealed as the pieces come and hashed once it is whole, and the object hashed whole. An object
 * of one chunk (most images) is hashed once: its hash is its chunk's id. When it is a DICOM object
 * (`parse`), it is parsed as it arrives too (dicom/part10.ts), so a bad object is known before its end.
 *
 * Small objects (up to SPILL_AFTER chunks) are kept in memory: the pieces are copied into one assembly
 * buffer, taken from a small pool and given back by `release()`, so receiving an image allocates no buffer
 * of its size. The last chunk's hash is left to `identify()`, after `seal()`: the archive starts the synced
 * write of a sealed image before it hashes it (`ChunkStore.stage`), so the hash runs while the disk writes.
 *
 * A larger object *spills*: every chunk, once whole, is sealed, hashed and handed to the archive's pack log
 * to be written ahead of its commit (`ChunkStore.stage`); nothing of it stays in memory but the chunk being
 * filled and the writes still in flight. `write` returns false while those are over MAX_IN_FLIGHT bytes, and
 * the sender waits for `drain()`: a multi-gigabyte object, or several at once, costs a few megabytes each.
 * Chunks of an object that is then refused stay unreferenced in the pack, invisible, as any staged chunk
 * whose commit never came. An object that is found bad (parse error) while it spills is dropped at once:
 * the rest of it is read and thrown away, so the sender can still be answered.
 */
import { createHash, type Hash } from 'node:crypto'
import type { DicomInstance, InstanceParser } from '../dicom/part10.ts'
import { offHeapGarbage } from '../heap.ts'
import { CHUNK_SIZE } from './chunks.ts'
import {
  type IdentifiedObject,
  type IncomingOptions,
  ObjectTooLargeError,
  type ReceivedObject,
  type SealedObject
} from './incoming-types.ts'
import type { SealedChunk, SealedPieces, StagedChunk, StagedWrite } from './pack/index.ts'
import { giveBack, takeBuffer } from './pool.ts'
import type { ChunkSealer, StorageKey } from './sealing.ts'

export type { IdentifiedObject, IncomingOptions, ReceivedObject, SealedObject } from './incoming-types.ts'
export { ObjectTooLargeError } from './incoming-types.ts'

/**
 * A chunk being filled: its plaintext is `length` bytes from `start` (in the assembly buffer, or in the spill
 * buffer), of which the first `sealedTo` are sealed (and, spilling, hashed).
 */
interface OpenChunk {
  start: number
  sealer: ChunkSealer
  sealed: Buffer[]
  length: number
  sealedTo: number
  hash: Hash | undefined
}
/** A chunk sealed whole: where its bytes are in the object, and its id once hashed. */
interface ClosedChunk extends SealedPieces {
  start: number
  length: number
  id?: string
}

/**
 * Bytes sealed at a time: pieces are gathered up to this before they go through the cipher, so a sender of
 * tiny pieces (PDVs of a few bytes, a slow TCP trickle) costs no cipher buffer per piece. DCMTK's PDVs are
 * 16 to 128 KiB, so an image is still sealed as it arrives.
 */
const SEAL_BATCH = 64 * 1024
/** Objects of up to this many chunks are held in memory; a larger one spills. */
export const SPILL_AFTER = 4
/** Bytes of a spilling object on their way to disk at most before the writer is told to wait. */
export const MAX_IN_FLIGHT = 8 * 1024 * 1024

export class IncomingObject {
  readonly #key: StorageKey
  readonly #limit: number
  readonly #parser: InstanceParser | undefined
  readonly #spill: ((chunk: SealedPieces) => Promise<StagedWrite>) | undefined
  /** the whole object's hash, begun only when a second chunk opens: a one-chunk object's hash is its chunk id */
  #whole: Hash | undefined
  /** in memory: the object so far, in its first `#length` bytes */
  #buffer: Buffer | undefined
  /** closed chunks; in memory only the last one's id may still be missing (between `seal` and `identify`) */
  readonly #chunks: ClosedChunk[] = []
  /** once spilling: every closed chunk, on its way to the pack */
  readonly #spilled: StagedChunk[] = []
  #spilling = false
  /** once spilling: the plaintext of the chunk being filled */
  #spillBuffer: Buffer | undefined
  #chunk: OpenChunk | undefined
  #length = 0
  #sealed = false
  #identified: IdentifiedObject | undefined
  #released = false
  #tooLarge = false
  #parseError: Error | undefined
  /** found bad while spilling: the rest is read and dropped */
  #dropped = false
  #inFlight = 0
  #drained: Array<() => void> = []

  constructor(key: StorageKey, limit: number, options: IncomingOptions = {}) {
    this.#key = key
    this.#limit = limit
    this.#parser = options.parser
    this.#spill = options.spill
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#length
  }

  /** More was written than the limit: the object is refused. */
  get tooLarge(): boolean {
    return this.#tooLarge
  }

  /**
   * Takes a piece (copied: the caller may reuse its memory). Returns false when the caller should wait for
   * `drain()` before writing more (the object's bytes on their way to disk are at their bound).
   */
  write(piece: Uint8Array): boolean {
    if (this.#sealed) throw new Error('write after seal')
    if (piece.byteLength === 0 || this.#tooLarge || this.#dropped) return true
    if (this.#length + piece.byteLength > this.#limit) {
      // The rest is read and dropped, so a network sender can still be answered.
      this.#tooLarge = true
      this.#drop()
      return true
    }
    if (this.#parser !== undefined && this.#parseError === undefined) {
      try {
        this.#parser.write(piece)
      } catch (error) {
        this.#parseError = error as Error
      }
    }
    if (this.#parseError !== undefined && this.#spilling) {
      this.#drop()
      return true
    }
    if (this.#spilling) {
      this.#length += piece.byteLength
      this.#writeSpilling(piece)
    } else {
      this.#writeInMemory(piece)
    }
    return this.#inFlight <= MAX_IN_FLIGHT
  }

  /** Resolves once the caller may write again after `write` returned false. */
  async drain(): Promise<void> {
    if (this.#inFlight <= MAX_IN_FLIGHT) return
    await new Promise<void>(resolve => {
      this.#drained.push(resolve)
    })
  }

  /**
   * The parsed object, once every byte was written (`seal` need not come first): InvalidDicomError if it is
   * not one radmesh stores. For the deflated syntax, resolves once the data set has inflated (off the event loop).
   */
  async parsed(): Promise<DicomInstance> {
    if (this.#parser === undefined) throw new Error('this object was not opened with a parser')
    if (this.#parseError !== undefined) throw this.#parseError
    try {
      return await this.#parser.finish()
    } catch (error) {
      this.#parseError = error as Error
      throw error
    }
  }

  /**
   * Ends the object: its sealed chunks (an empty object is one empty chunk), the last chunk not hashed yet when
   * held in memory. `bytes` is valid until `release()`.
   */
  seal(): SealedObject {
    if (this.#sealed) throw new Error('seal called twice')
    this.#sealed = true
    if (this.#tooLarge) throw new ObjectTooLargeError(this.#limit)
    if (this.#dropped) throw this.#parseError ?? new Error('the object was dropped')
    if (this.#spilling) {
      if (this.#chunk !== undefined) this.#closeSpilledChunk(this.#chunk)
      return { bytes: undefined, length: this.#length, chunks: this.#spilled }
    }
    if (this.#chunk !== undefined || this.#chunks.length === 0) this.#closeChunk(this.#chunk ?? this.#openChunk())
    return { bytes: this.#bytes(), length: this.#length, chunks: this.#chunks }
  }

  /** After `seal()`: the object with its hash and every chunk's id (the last chunk hashed now, in memory). */
  identify(): IdentifiedObject {
    if (!this.#sealed) throw new Error('identify before seal')
    if (this.#identified !== undefined) return this.#identified
    if (this.#spilling) {
      this.#identified = { length: this.#length, sha256: (this.#whole as Hash).digest('hex'), chunks: this.#spilled }
      return this.#identified
    }
    const last = this.#chunks.at(-1) as ClosedChunk
    if (last.id === undefined && this.#released) throw new Error('identify after release: the bytes to hash are gone')
    if (last.id === undefined) this.#hashChunk(last)
    const chunks = this.#chunks as SealedChunk[]
    const sha256 = this.#whole?.digest('hex') ?? (chunks[0] as SealedChunk).id
    this.#identified = { length: this.#length, sha256, chunks }
    return this.#identified
  }

  /**
   * After `seal()`, before `identify()`: the object's SHA-256 as its caller computed it over these very bytes.
   * An object of one chunk held in memory takes it as its hash and its chunk's id, and is not hashed again; any
   * other is hashed as it was written.
   */
  hashedAs(sha256: string): void {
    if (!this.#sealed) throw new Error('hashedAs before seal')
    if (this.#spilling || this.#identified !== undefined || this.#chunks.length !== 1) return
    const only = this.#chunks[0] as ClosedChunk
    only.id ??= sha256
  }

  /** `seal()` and `identify()` at once, for an object held in memory. */
  finish(): ReceivedObject {
    this.seal()
    if (this.#spilling) throw new Error('finish() is for objects held in memory; this one spilled to the pack log')
    const { sha256, chunks } = this.identify()
    return { bytes: this.#bytes(), sha256, chunks: chunks as SealedChunk[] }
  }

  #bytes(): Buffer {
    return this.#buffer === undefined ? Buffer.alloc(0) : this.#buffer.subarray(0, this.#length)
  }

  /** Gives the assembly buffer back for the next object: `finish().bytes` must not be used after this. */
  release(): void {
    if (this.#released) return
    this.#released = true
    // The socket reads and the cipher output of this object are garbage now (see heap.ts).
    offHeapGarbage(2 * Math.min(this.#length, SPILL_AFTER * CHUNK_SIZE))
    if (this.#buffer !== undefined) giveBack(this.#buffer)
    if (this.#spillBuffer !== undefined) giveBack(this.#spillBuffer)
    this.#buffer = undefined
    this.#spillBuffer = undefined
    this.#chunk = undefined
  }

  /** Stops keeping anything of the object; the rest of what is written is dropped. */
  #drop(): void {
    this.#dropped = true
    this.release()
    this.#chunks.length = 0
    this.#chunk = undefined
  }

  // In memory

  #writeInMemory(piece: Uint8Array): void {
    for (let pos = 0; pos < piece.byteLength; ) {
      const chunk = this.#chunk ?? this.#openChunk()
      const take = Math.min(piece.byteLength - pos, CHUNK_SIZE - chunk.length)
      const start = this.#length
      const bytes = this.#room(take)
      bytes.set(piece.subarray(pos, pos + take), start)
      chunk.length += take
      this.#length += take
      pos += take
      if (chunk.length - chunk.sealedTo >= SEAL_BATCH) this.#sealUpTo(chunk, bytes, chunk.length)
      if (chunk.length < CHUNK_SIZE) continue
      this.#hashChunk(this.#closeChunk(chunk))
      if (this.#chunks.length >= SPILL_AFTER && this.#spill !== undefined) {
        // Larger than the objects held in memory: from here on, its chunks go to disk as they fill; a bad one
        // is not written at all.
        if (this.#parseError !== undefined) {
          this.#drop()
          return
        }
        this.#startSpilling()
        const rest = piece.subarray(pos)
        this.#length += rest.byteLength
        this.#writeSpilling(rest)
        return
      }
    }
  }

  /** The assembly buffer, grown (doubling) so that `more` bytes fit after the object so far. */
  #room(more: number): Buffer {
    if (this.#released) throw new Error('write after release')
    const needed = this.#length + more
    const buffer = this.#buffer
    if (buffer !== undefined && buffer.byteLength >= needed) return buffer
    // An object that can spill never holds more than SPILL_AFTER chunks here.
    const cap = this.#spill === undefined ? this.#limit : SPILL_AFTER * CHUNK_SIZE
    const grown = takeBuffer(Math.max(needed, Math.min(cap, (buffer?.byteLength ?? 0) * 2)))
    if (buffer !== undefined) {
      buffer.copy(grown, 0, 0, this.#length)
      giveBack(buffer)
    }
    this.#buffer = grown
    return grown
  }

  #openChunk(): OpenChunk {
    if (this.#chunks.length === 1 && this.#whole === undefined) {
      // A second chunk: from here on the object's hash is not its first chunk's. Hash the first chunk's bytes
      // once more.
      this.#whole = createHash('sha256').update((this.#buffer as Buffer).subarray(0, CHUNK_SIZE))
    }
    const sealer = this.#key.chunkSealer()
    // Every chunk before this one is full.
    const start = this.#chunks.length * CHUNK_SIZE
    this.#chunk = { start, sealer, sealed: [sealer.nonce], length: 0, sealedTo: 0, hash: undefined }
    return this.#chunk
  }

  /** Seals (and, spilling, hashes) the chunk's plaintext, held in `plain` from `chunk.start`, up to `end`. */
  #sealUpTo(chunk: OpenChunk, plain: Buffer, end: number): void {
    if (end <= chunk.sealedTo) return
    const part = plain.subarray(chunk.start + chunk.sealedTo, chunk.start + end)
    chunk.sealed.push(chunk.sealer.update(part))
    if (chunk.hash !== undefined) {
      chunk.hash.update(part)
      this.#whole?.update(part)
    }
    chunk.sealedTo = end
  }

  /** Seals a chunk's end; its id is taken by `#hashChunk`, now for a chunk that filled, by `identify` for the last. */
  #closeChunk(chunk: OpenChunk): ClosedChunk {
    this.#sealUpTo(chunk, this.#buffer ?? Buffer.alloc(0), chunk.length)
    chunk.sealed.push(chunk.sealer.final())
    const sealedLength = chunk.sealed.reduce((sum, b) => sum + b.byteLength, 0)
    const closed = { sealed: chunk.sealed, sealedLength, start: chunk.start, length: chunk.length }
    this.#chunks.push(closed)
    this.#chunk = undefined
    return closed
  }

  /** A closed chunk's id, from its bytes in the assembly buffer, which also go into the whole object's hash. */
  #hashChunk(chunk: ClosedChunk): void {
    const bytes = (this.#buffer ?? Buffer.alloc(0)).subarray(chunk.start, chunk.start + chunk.length)
    chunk.id = createHash('sha256').update(bytes).digest('hex')
    this.#whole?.update(bytes)
  }

  // Spilling

  /** Every chunk closed so far goes to disk, and the assembly buffer back to the pool. */
  #startSpilling(): void {
    this.#spilling = true
    for (const chunk of this.#chunks) this.#stage(chunk as SealedChunk)
    this.#chunks.length = 0
    if (this.#buffer !== undefined) giveBack(this.#buffer)
    this.#buffer = undefined
  }

  #writeSpilling(piece: Uint8Array): void {
    let offset = 0
    while (offset < piece.byteLength) {
      const chunk = this.#chunk ?? this.#openSpillingChunk()
      const take = Math.min(piece.byteLength - offset, CHUNK_SIZE - chunk.length)
      const plain = this.#spillBuffer as Buffer
      plain.set(piece.subarray(offset, offset + take), chunk.length)
      chunk.length += take
      offset += take
      if (chunk.length - chunk.sealedTo >= SEAL_BATCH) this.#sealUpTo(chunk, plain, chunk.length)
      if (chunk.length === CHUNK_SIZE) this.#closeSpilledChunk(chunk)
    }
  }

  #openSpillingChunk(): OpenChunk {
    this.#spillBuffer ??= takeBuffer(CHUNK_SIZE)
    const sealer = this.#key.chunkSealer()
    this.#chunk = { start: 0, sealer, sealed: [sealer.nonce], length: 0, sealedTo: 0, hash: createHash('sha256') }
    return this.#chunk
  }

  #closeSpilledChunk(chunk: OpenChunk): void {
    this.#sealUpTo(chunk, this.#spillBuffer as Buffer, chunk.length)
    chunk.sealed.push(chunk.sealer.final())
    const sealedLength = chunk.sealed.reduce((sum, b) => sum + b.byteLength, 0)
    this.#chunk = undefined
    this.#stage({ id: (chunk.hash as Hash).digest('hex'), sealed: chunk.sealed, sealedLength })
  }

  /** Hands a whole chunk to the pack log; counts it in flight until its write is durable. */
  #stage(chunk: SealedChunk): void {
    const spill = this.#spill as (chunk: SealedPieces) => Promise<StagedWrite>
    const staged = spill(chunk)
    this.#spilled.push({ id: chunk.id, staged })
    this.#inFlight += chunk.sealedLength
    const settled = (): void => {
      this.#inFlight -= chunk.sealedLength
      offHeapGarbage(2 * chunk.sealedLength)
      if (this.#inFlight <= MAX_IN_FLIGHT) for (const resolve of this.#drained.splice(0)) resolve()
    }
    staged
      .then(async write => {
        await write.durable
      })
      .then(settled, settled)
  }
}
