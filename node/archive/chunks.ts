/**
 * The content store: instance bytes cut into fixed-size chunks, each addressed by the SHA-256 of its
 * plaintext and sealed at rest (AES-256-GCM under the storage key).
 *
 * Chunks are sealed as their bytes arrive (IncomingObject), with the same associated data for all: a chunk is
 * bound to its id by the SHA-256 every read checks.
 *
 * Sealed chunks are appended to pack files (HOME/chunks/pack-000001.dat, a new pack past 1 GiB), one
 * append and one fdatasync per stored instance, or per group of instances stored at once (group commit): no file is created, renamed or directory-synced per chunk,
 * which is most of what a per-chunk-file store spends. Where each chunk lies is kept in LevelDB under a
 * keyed name (HMAC of the id, so the index reveals nothing about content) and is written by the caller in
 * the same synced batch as the instance record: until that batch lands, appended bytes are unreferenced
 * and invisible, never half an instance. A chunk already stored is not appended again.
 */
import { createHash } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { AbstractSublevel } from 'abstract-level'
import type { Database } from '../store/database.ts'
import { CHUNK_ASSOCIATED_DATA, type StorageKey } from './sealing.ts'

/** 1 MiB: big enough that per-chunk overhead vanishes, small enough to pull with bounded memory. */
export const CHUNK_SIZE = 1024 * 1024
/** A pack is closed and a new one started past this size (keeps files a backup tool can handle). */
export const PACK_LIMIT = 1024 * 1024 * 1024

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** A chunk sealed as it arrived (IncomingObject), ready to append. */
export interface SealedChunk {
  /** SHA-256 of the plaintext, hex */
  id: string
  /** the sealed chunk in pieces, in order: nonce, ciphertext…, tag */
  sealed: Buffer[]
  sealedLength: number
}

export interface ChunkLocation { pack: number, offset: number, length: number }

type LocationSublevel = AbstractSublevel<Database, string | Uint8Array, string, ChunkLocation>
export interface LocationPut { type: 'put', sublevel: LocationSublevel, key: string, value: ChunkLocation }

const packName = (pack: number): string => `pack-${String(pack).padStart(6, '0')}.dat`

export class ChunkStore {
  private readonly root: string
  private readonly key: StorageKey
  private readonly locations: LocationSublevel
  private pack = 1
  private size = 0
  private appender: fs.FileHandle | undefined
  private readonly readers = new Map<number, Promise<fs.FileHandle>>()
  /** appends waiting for the one in flight, and that one */
  private pending: Array<{ chunks: SealedChunk[], resolve: (operations: LocationPut[]) => void, reject: (error: Error) => void }> = []
  private writing: Promise<void> | undefined

  constructor (root: string, key: StorageKey, db: Database) {
    this.root = root
    this.key = key
    this.locations = db.sublevel<string, ChunkLocation>('chunk-locations', { valueEncoding: 'json' })
  }

  async open (): Promise<void> {
    await fs.mkdir(this.root, { recursive: true, mode: 0o700 })
    const packs = (await fs.readdir(this.root)).map(name => /^pack-(\d{6})\.dat$/.exec(name)?.[1]).filter(n => n !== undefined).map(Number)
    this.pack = Math.max(1, ...packs)
    await this.openAppender()
  }

  private async openAppender (): Promise<void> {
    await this.appender?.close()
    this.appender = await fs.open(join(this.root, packName(this.pack)), constants.O_CREAT | constants.O_APPEND | constants.O_WRONLY, 0o600)
    // After a crash the pack may end in bytes no index entry points to: new chunks go after them.
    this.size = (await this.appender.stat()).size
  }

  async close (): Promise<void> {
    await this.writing
    await this.appender?.close()
    for (const reader of this.readers.values()) await (await reader).close()
    this.readers.clear()
  }

  private async location (id: string): Promise<ChunkLocation | undefined> {
    return await this.locations.get(this.key.name(id))
  }

  async has (id: string): Promise<boolean> {
    return await this.location(id) !== undefined
  }

  /**
   * Appends the sealed chunks that are not stored yet (see IncomingObject), fdatasyncs the pack, and returns
   * the chunk ids in order with the index operations that make them visible (to go in the caller's synced
   * batch).
   */
  async put (chunks: SealedChunk[]): Promise<{ ids: string[], operations: LocationPut[] }> {
    const missing: SealedChunk[] = []
    const seen = new Set<string>()
    for (const chunk of chunks) {
      if (seen.has(chunk.id) || await this.has(chunk.id)) continue
      seen.add(chunk.id)
      missing.push(chunk)
    }
    const operations = missing.length === 0 ? [] : await this.append(missing)
    return { ids: chunks.map(chunk => chunk.id), operations }
  }

  /**
   * Appends are group-committed: callers that arrive while a write is in flight are written together after
   * it, with one writev and one fdatasync, and each gets the locations of its own chunks.
   */
  private async append (missing: SealedChunk[]): Promise<LocationPut[]> {
    return await new Promise<LocationPut[]>((resolve, reject) => {
      this.pending.push({ chunks: missing, resolve, reject })
      this.writing ??= this.flush()
    })
  }

  private async flush (): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending
      this.pending = []
      try {
        if (this.size > PACK_LIMIT) {
          this.pack++
          await this.openAppender()
        }
        const appender = this.appender as fs.FileHandle
        let offset = this.size
        const results = batch.map(({ chunks }) => chunks.map(({ id, sealedLength }) => {
          const value = { pack: this.pack, offset, length: sealedLength }
          offset += sealedLength
          return { type: 'put' as const, sublevel: this.locations, key: this.key.name(id), value }
        }))
        const total = offset - this.size
        const pieces = batch.flatMap(({ chunks }) => chunks.flatMap(m => m.sealed))
        let bytesWritten = 0
        // writev takes at most IOV_MAX buffers at once; a short write (a full disk, a signal) goes on from where it stopped.
        for (let i = 0; i < pieces.length && bytesWritten < total;) {
          const group = pieces.slice(i, i + 512)
          const groupBytes = group.reduce((sum, b) => sum + b.byteLength, 0)
          let written = (await appender.writev(group)).bytesWritten
          if (written < groupBytes) written += (await appender.write(Buffer.concat(group).subarray(written))).bytesWritten
          if (written < groupBytes) throw new Error(`could not append ${total} bytes to pack ${this.pack} (disk full?)`)
          bytesWritten += written
          i += group.length
        }
        await appender.datasync()
        this.size = offset
        batch.forEach(({ resolve }, i) => { resolve(results[i] as LocationPut[]) })
      } catch (error) {
        // The pack may end in bytes no index entry points to: harmless, and skipped by the next append's offset.
        this.size = (await this.appender?.stat().catch(() => undefined))?.size ?? this.size
        for (const { reject } of batch) reject(error as Error)
      }
    }
    this.writing = undefined
  }

  private async reader (pack: number): Promise<fs.FileHandle> {
    let reader = this.readers.get(pack)
    if (reader === undefined) {
      reader = fs.open(join(this.root, packName(pack)), constants.O_RDONLY)
      this.readers.set(pack, reader)
    }
    return await reader
  }

  /** The plaintext of a chunk, verified against its id (a damaged pack is an error, never wrong bytes). */
  async get (id: string): Promise<Buffer> {
    const location = await this.location(id)
    if (location === undefined) throw new Error(`chunk ${id} is not in this store`)
    const sealed = Buffer.allocUnsafe(location.length)
    const { bytesRead } = await (await this.reader(location.pack)).read(sealed, 0, location.length, location.offset)
    if (bytesRead !== location.length) throw new Error(`chunk ${id}: pack ${location.pack} is shorter than its index says`)
    const plaintext = this.key.open(sealed, CHUNK_ASSOCIATED_DATA)
    if (sha256Hex(plaintext) !== id) throw new Error(`chunk ${id} does not match its hash`)
    return plaintext
  }

  async read (ids: string[]): Promise<Buffer> {
    return Buffer.concat(await Promise.all(ids.map(async id => await this.get(id))))
  }
}
