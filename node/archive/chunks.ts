/**
 * The content store: instance bytes cut into fixed-size chunks, each addressed by the SHA-256 of its
 * plaintext and sealed at rest (AES-256-GCM under the storage key, the chunk id as associated data).
 *
 * Sealed chunks are appended to pack files (HOME/chunks/pack-000001.dat, a new pack past 1 GiB), one
 * append and one fdatasync per stored instance: no file is created, renamed or directory-synced per chunk,
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
import type { StorageKey } from './sealing.ts'

/** 1 MiB: big enough that per-chunk overhead vanishes, small enough to pull with bounded memory. */
export const CHUNK_SIZE = 1024 * 1024
/** A pack is closed and a new one started past this size (keeps files a backup tool can handle). */
export const PACK_LIMIT = 1024 * 1024 * 1024

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

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
  /** appends are serialised: each knows its offset before it writes */
  private tail: Promise<unknown> = Promise.resolve()

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
    await this.tail.catch(() => {})
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
   * Appends the chunks of `bytes` that are not stored yet, fdatasyncs the pack, and returns the chunk ids
   * in order with the index operations that make them visible (to go in the caller's synced batch).
   * `wholeSha256`, when the caller has it, saves hashing a single-chunk object twice.
   */
  async putAll (bytes: Uint8Array, wholeSha256?: string): Promise<{ ids: string[], operations: LocationPut[] }> {
    const pieces: Array<{ id: string, chunk: Uint8Array }> = []
    for (let offset = 0; offset < bytes.byteLength || pieces.length === 0; offset += CHUNK_SIZE) {
      const chunk = bytes.subarray(offset, Math.min(bytes.byteLength, offset + CHUNK_SIZE))
      const id = wholeSha256 !== undefined && chunk.byteLength === bytes.byteLength ? wholeSha256 : sha256Hex(chunk)
      pieces.push({ id, chunk })
      if (bytes.byteLength === 0) break
    }
    const missing: Array<{ id: string, sealed: Buffer }> = []
    const seen = new Set<string>()
    for (const { id, chunk } of pieces) {
      if (seen.has(id) || await this.has(id)) continue
      seen.add(id)
      missing.push({ id, sealed: this.key.seal(chunk, `chunk:${id}`) })
    }
    const operations = missing.length === 0 ? [] : await this.append(missing)
    return { ids: pieces.map(p => p.id), operations }
  }

  private async append (missing: Array<{ id: string, sealed: Buffer }>): Promise<LocationPut[]> {
    const run = this.tail.then(async () => {
      if (this.size > PACK_LIMIT) {
        this.pack++
        await this.openAppender()
      }
      const appender = this.appender as fs.FileHandle
      let offset = this.size
      const operations: LocationPut[] = missing.map(({ id, sealed }) => {
        const value = { pack: this.pack, offset, length: sealed.byteLength }
        offset += sealed.byteLength
        return { type: 'put' as const, sublevel: this.locations, key: this.key.name(id), value }
      })
      const total = offset - this.size
      let { bytesWritten } = await appender.writev(missing.map(m => m.sealed))
      // A short write (rare: a full disk, a signal) is finished from where it stopped.
      if (bytesWritten < total) {
        const rest = Buffer.concat(missing.map(m => m.sealed)).subarray(bytesWritten)
        bytesWritten += (await appender.write(rest)).bytesWritten
        if (bytesWritten < total) throw new Error(`could not append ${total} bytes to pack ${this.pack} (disk full?)`)
      }
      await appender.datasync()
      this.size = offset
      return operations
    })
    this.tail = run.catch(() => {})
    return await run
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
    const sealed = Buffer.alloc(location.length)
    const { bytesRead } = await (await this.reader(location.pack)).read(sealed, 0, location.length, location.offset)
    if (bytesRead !== location.length) throw new Error(`chunk ${id}: pack ${location.pack} is shorter than its index says`)
    const plaintext = this.key.open(sealed, `chunk:${id}`)
    if (sha256Hex(plaintext) !== id) throw new Error(`chunk ${id} does not match its hash`)
    return plaintext
  }

  async read (ids: string[]): Promise<Buffer> {
    return Buffer.concat(await Promise.all(ids.map(async id => await this.get(id))))
  }
}
