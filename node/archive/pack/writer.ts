/**
 * The pack log's one writer. Storing is a synced append (O_DSYNC) of a commit's chunks and its commit entry,
 * with those of every commit arriving meanwhile (group commit); the commit is durable then, and resolves.
 * An image of one chunk goes in two writes that overlap: its chunk is staged (`stage`) as soon as it is
 * sealed, and hashed while the disk writes it; its commit entry follows, and the commit resolves once both,
 * and every write before them, are durable (`frontier`).
 *
 * A pack that ends in a torn entry, or whose write failed, is left as it is and appends go on in a new
 * pack, so a scan never meets a hole before an entry that was acknowledged. When idle, the writer keeps
 * space zero-filled ahead of the entries (`preallocate`), so a burst of stores overwrites blocks already on
 * disk instead of growing the file.
 */
import { constants, promises as fs } from 'node:fs'
import { join } from 'node:path'
import {
  type ChunkLocation,
  ENTRY_CHUNK,
  ENTRY_COMMIT,
  ENTRY_HEADER_LENGTH,
  entryHeader,
  PACK_LIMIT,
  type PackPosition,
  packName,
  type SealedChunk,
  type SealedPieces,
  type StagedChunk,
  type StagedWrite
} from './format.ts'
import { release } from '../../heap.ts'
import { zeroFrom } from './read.ts'

/** zero-filling ahead waits until no append came for this long, and goes in steps of this size */
const FILL_IDLE_MS = 1000
const FILL_STEP = 4 * 1024 * 1024
/**
 * The space `radmesh start` keeps zero-filled ahead of the archive's writes, unless told otherwise: a site
 * (with a DICOM listener) takes in bursts of whole studies; a reader's node stores what it fetches.
 */
export const DEFAULT_PREALLOCATE_SITE = 256 * 1024 * 1024
export const DEFAULT_PREALLOCATE_READER = 64 * 1024 * 1024

/** One commit to append: the chunks written with its entry, those staged ahead, and its entry's body. */
export interface PackAppend {
  /** chunks not stored yet, written just before the commit entry */
  chunks: SealedChunk[]
  /** chunks of the commit whose write `stage` began already */
  staged: StagedChunk[]
  /** the commit entry's body, given where each of the commit's chunks lies (by location key) */
  body(locations: Array<[string, ChunkLocation]>): Buffer
}

/** A commit appended: where its entry starts (its ref) and ends, and where its chunks lie (by location key). */
export interface Appended {
  ref: string
  end: PackPosition
  locations: Array<[string, ChunkLocation]>
}

export interface PackWriterOptions<A extends PackAppend> {
  /** bytes of zero-filled space to keep ahead of the entries (0: none, every write appends) */
  preallocate?: number
  /** entries go on in a new pack once a pack is past this size */
  packLimit?: number
  /** the key a chunk's location is indexed under */
  locationKey(id: string): string
  /**
   * Called once a group of commits is durable, in commit order, before any of their callers is answered.
   * It runs with no caller to report to, so it must not throw.
   */
  durable(commits: Array<[A, Appended]>): void
}

interface Pending<A> {
  entry: A
  resolve: (appended: Appended) => void
  reject: (error: Error) => void
}
interface PendingStage {
  chunk: SealedPieces
  resolve: (staged: StagedWrite) => void
}

export class PackWriter<A extends PackAppend = PackAppend> {
  private readonly root: string
  private readonly options: PackWriterOptions<A>
  private pack = 1
  private size = 0
  private appender: fs.FileHandle | undefined
  /** appends waiting for the one in flight */
  private pending: Array<Pending<A>> = []
  /** chunks to write ahead of their commits, issued before the next append */
  private staging: PendingStage[] = []
  /**
   * Resolves once every write issued so far is on disk; rejects if one of them failed. Writes may be in
   * flight together (a staged chunk and a commit entry), and a scan at start stops at the first entry that
   * is not whole, so nothing is answered before every write before it is durable.
   */
  private frontier: Promise<void> = Promise.resolve()
  /** the writer, while it runs (appends, then zero-filling) */
  private writing: Promise<void> | undefined
  private readonly preallocate: number
  private readonly packLimit: number
  /** the pack file's size: its entries end at `size`, zero-filled space runs to here */
  private allocated = 0
  private filling = false
  private lastAppend = 0
  private fillTimer: NodeJS.Timeout | undefined
  private zeros: Buffer | undefined
  private closing = false

  constructor(root: string, options: PackWriterOptions<A>) {
    this.root = root
    this.options = options
    this.preallocate = options.preallocate ?? 0
    this.packLimit = options.packLimit ?? PACK_LIMIT
  }

  /**
   * Goes on writing where the last replayed pack's entries end (`end`), or in a new pack if the last one
   * ends in a torn entry or is not framed.
   */
  async open(packs: number[], end: PackPosition | undefined): Promise<void> {
    this.pack = Math.max(1, ...packs)
    const last = packs.at(-1)
    let size = 0
    if (last !== undefined) {
      // Where the last pack's entries end: the scan's end, or 0 for a pack of nothing but zero-filled space.
      // All of the rest is read (up to --preallocate bytes, once per start): a torn write can leave bytes after
      // pages that stayed zero, and new entries must never be followed by what is left of it.
      const entriesEnd = end?.pack === last ? end.offset : 0
      if (await zeroFrom(this.root, last, entriesEnd)) {
        size = entriesEnd // past it: space zero-filled ahead of writing (see `preallocate`)
      } else {
        // A torn or old-format last pack is left as it is; new entries start a pack of their own.
        this.pack++
      }
    }
    await this.openAppender(size)
    this.kick()
  }

  /**
   * Begins the synced write of a sealed chunk ahead of its commit, before its id is known: the caller hashes
   * the chunk while the disk writes it, then names it in a commit (`StagedChunk`), whose entry is written
   * while the chunk's write may still run. Until a commit names it, the chunk is unreferenced and invisible.
   * Resolves when the write is issued (at once unless an append is being written), with where the chunk lies.
   */
  stage(chunk: SealedPieces): Promise<StagedWrite> {
    return new Promise(resolve => {
      this.staging.push({ chunk, resolve })
      this.lastAppend = Date.now()
      this.writing ??= this.work()
    })
  }

  /**
   * Appends a commit. Appends are group-committed: callers that arrive while a write is in flight are
   * written together after it, with one synced writev. Resolves once the commit is durable.
   */
  async append(entry: A): Promise<Appended> {
    return await new Promise((resolve, reject) => {
      this.pending.push({ entry, resolve, reject })
      this.lastAppend = Date.now()
      this.writing ??= this.work()
    })
  }

  /** Waits for the writes in flight and closes the pack; zero-filling stops. */
  async close(): Promise<void> {
    this.closing = true
    clearTimeout(this.fillTimer)
    await this.writing
    await this.frontier.catch(() => {})
    await this.appender?.close()
  }

  /** Starts the writer if it is not running (it zero-fills ahead when there is nothing to append). */
  private kick(): void {
    if (!this.closing) this.writing ??= this.work()
  }

  /** The one writer of the pack: appends first; when idle, zero-filling ahead. */
  private async work(): Promise<void> {
    for (;;) {
      if (this.staging.length > 0) {
        this.issueStaged()
        continue
      }
      if (this.pending.length > 0) {
        await this.flush()
        continue
      }
      if (await this.fillStep()) continue
      if (this.pending.length > 0 || this.staging.length > 0) continue
      break
    }
    this.writing = undefined
  }

  /**
   * Zero-fills the next step of the space kept ahead of the entries, once no append came for FILL_IDLE_MS
   * (a burst is not slowed by its own preparation). Overwriting blocks that are already on disk and inside
   * the file's size is a data-only synced write; an append also has to commit the new size and blocks to
   * the file system's journal: almost twice as slow for a 400-image ingest (docs/PERFORMANCE.md).
   */
  private async fillStep(): Promise<boolean> {
    if (this.preallocate === 0 || this.closing) return false
    const target = Math.min(this.size + this.preallocate, this.packLimit)
    if (!this.filling && this.allocated - this.size >= this.preallocate / 2) return false
    if (this.allocated >= target) {
      this.filling = false
      return false
    }
    const idleFor = Date.now() - this.lastAppend
    if (idleFor < FILL_IDLE_MS) {
      clearTimeout(this.fillTimer)
      this.fillTimer = setTimeout(() => {
        this.kick()
      }, FILL_IDLE_MS - idleFor)
      this.fillTimer.unref()
      return false
    }
    this.filling = true
    this.zeros ??= Buffer.alloc(FILL_STEP)
    const step = Math.min(FILL_STEP, target - this.allocated)
    const { bytesWritten } = await (this.appender as fs.FileHandle).write(this.zeros, 0, step, this.allocated)
    this.allocated += bytesWritten
    if (bytesWritten < step) this.filling = false // a full disk: appends go on past the filled space
    return bytesWritten === step
  }

  /** Issues the staged chunks' write; it is not waited for here, but by the commits that name them. */
  private issueStaged(): void {
    const batch = this.staging
    this.staging = []
    let offset = this.size
    const pieces: Buffer[] = []
    const locations = batch.map(({ chunk }): ChunkLocation => {
      pieces.push(entryHeader(ENTRY_CHUNK, chunk.sealedLength), ...chunk.sealed)
      const location = { pack: this.pack, offset: offset + ENTRY_HEADER_LENGTH, length: chunk.sealedLength }
      offset += ENTRY_HEADER_LENGTH + chunk.sealedLength
      return location
    })
    const durable = this.issue(pieces, offset)
    batch.forEach(({ resolve }, i) => {
      resolve({ location: locations[i] as ChunkLocation, durable })
    })
  }

  /**
   * Starts the synced write of `pieces` where the entries end, and moves their end to `end`. Returns a
   * promise that settles once this write and every one issued before it have, and rejects if any failed.
   */
  private issue(pieces: Buffer[], end: number): Promise<void> {
    const at = this.size
    this.size = end
    this.allocated = Math.max(this.allocated, end)
    const written = this.write(pieces, at, end - at)
    const durable = Promise.allSettled([this.frontier, written]).then(results => {
      for (const result of results) if (result.status === 'rejected') throw result.reason
    })
    // Awaited by the commits that need it; a staged chunk no commit came for must not end the process.
    durable.catch(() => {})
    this.frontier = durable
    return durable
  }

  private async flush(): Promise<void> {
    const batch = this.pending
    this.pending = []
    let issuedIn: number | undefined
    try {
      if (this.size > this.packLimit) {
        // Past the limit, a new pack; the zero-filled space after this one's entries is given back. Staged
        // writes in flight end first.
        await this.frontier.catch(() => {})
        await (this.appender as fs.FileHandle).truncate(this.size)
        this.pack++
        await this.openAppender(0)
        this.frontier = Promise.resolve()
      }
      // Issued already (the writer issues staged chunks before it takes appends): these resolve at once.
      const staged = new Map<StagedChunk, StagedWrite>()
      for (const { entry } of batch) for (const chunk of entry.staged) staged.set(chunk, await chunk.staged)
      let offset = this.size
      const pieces: Buffer[] = []
      const { locationKey } = this.options
      const appended = batch.map(({ entry }): Appended => {
        const locations = entry.chunks.map(({ id, sealed, sealedLength }): [string, ChunkLocation] => {
          pieces.push(entryHeader(ENTRY_CHUNK, sealedLength), ...sealed)
          const location = { pack: this.pack, offset: offset + ENTRY_HEADER_LENGTH, length: sealedLength }
          offset += ENTRY_HEADER_LENGTH + sealedLength
          return [locationKey(id), location]
        })
        for (const chunk of entry.staged) {
          locations.push([locationKey(chunk.id), (staged.get(chunk) as StagedWrite).location])
        }
        const ref = `${this.pack}:${offset}`
        const body = entry.body(locations)
        pieces.push(entryHeader(ENTRY_COMMIT, body.byteLength), body)
        offset += ENTRY_HEADER_LENGTH + body.byteLength
        return { ref, end: { pack: this.pack, offset }, locations }
      })
      issuedIn = this.pack
      // Durable: this write, every write before it, and the staged chunks (which may lie in a pack before a
      // rollover, outside `frontier`). All of them settle before a failure is handled (see the catch).
      const durable = [...staged.values()].map(async ({ durable }) => {
        await durable
      })
      const settled = await Promise.allSettled([this.issue(pieces, offset), ...durable])
      const failed = settled.find(result => result.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      this.options.durable(batch.map(({ entry }, i) => [entry, appended[i] as Appended]))
      batch.forEach(({ resolve }, i) => {
        resolve(appended[i] as Appended)
      })
    } catch (error) {
      // A write failed, this one or one before it, and may be partly on disk: a scan at start stops there, so
      // nothing after it in this pack would be found. Appends go on in a new pack.
      if (issuedIn === undefined || issuedIn === this.pack) {
        this.pack++
        await this.openAppender(0).catch(() => {})
        this.frontier = Promise.resolve()
      }
      for (const { reject } of batch) reject(error as Error)
    }
  }

  /** Writes `pieces` (`total` bytes) at `start` in the pack being written; its first writev is issued at once. */
  private async write(pieces: Buffer[], start: number, total: number): Promise<void> {
    const appender = this.appender as fs.FileHandle
    const pack = this.pack
    let bytesWritten = 0
    // writev takes at most IOV_MAX buffers at once; a short write (a full disk, a signal) goes on from where
    // it stopped.
    for (let i = 0; i < pieces.length && bytesWritten < total; ) {
      const group = pieces.slice(i, i + 512)
      const groupBytes = group.reduce((sum, b) => sum + b.byteLength, 0)
      const at = start + bytesWritten
      let written = (await appender.writev(group, at)).bytesWritten
      if (written < groupBytes) {
        const rest = Buffer.concat(group).subarray(written)
        written += (await appender.write(rest, 0, groupBytes - written, at + written)).bytesWritten
      }
      if (written < groupBytes) throw new Error(`could not write ${total} bytes to pack ${pack} (disk full?)`)
      bytesWritten += written
      i += group.length
    }
    // On disk: the sealed pieces are garbage (a failed write keeps them; nothing writes them again).
    for (const piece of pieces) release(piece)
  }

  /** Opens the pack being written; its entries end at `size` (past it: zero-filled space, or nothing). */
  private async openAppender(size: number): Promise<void> {
    await this.appender?.close()
    // O_DSYNC: each write returns once its bytes (and the size that reaches them) are on disk, as a write and
    // an fdatasync would, in one system call and one trip to the thread pool (docs/PERFORMANCE.md).
    // Positional writes (no O_APPEND), as the file may extend past the entries into zero-filled space.
    const flags = constants.O_CREAT | constants.O_WRONLY | constants.O_DSYNC
    this.appender = await fs.open(join(this.root, packName(this.pack)), flags, 0o600)
    this.size = size
    this.allocated = (await this.appender.stat()).size
  }
}
