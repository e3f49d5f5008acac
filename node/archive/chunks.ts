/**
 * The content store, private to the archive: bytes cut into chunks of CHUNK_SIZE, each addressed by the
 * SHA-256 of its plaintext and sealed at rest (AES-256-GCM under the storage key), written to the pack log
 * (pack/) together with the index records that make them visible.
 *
 * A commit (one store: its chunks, its index puts, a note) is durable once its pack append is synced, and
 * resolves then. Its puts go to LevelDB after that, unsynced and in commit order, with a checkpoint (the end
 * of the last commit they hold); reads of the index wait for them (`indexed`). LevelDB keeps its writes in
 * order, so after a power loss its index is whole up to its checkpoint; at start `open()` replays the commits
 * after it from the packs. Until a commit entry is on disk its chunks are unreferenced and invisible, never
 * half an instance.
 *
 * Where each chunk lies is kept in LevelDB under a keyed name (HMAC of the id, so the index reveals nothing
 * about content). A chunk already stored is not appended again.
 */
import { promises as fs } from 'node:fs'
import type { AbstractBatchPutOperation } from 'abstract-level'
import type { Json } from '../../protocol/json.ts'
import { sha256Hex } from '../hash.ts'
import { release } from '../heap.ts'
import { type BinarySublevel, type Database, type SublevelOf, SYNCED_WRITE } from '../store/database.ts'
import { compareRefs } from '../store/pack-ref.ts'
import {
  type Appended,
  type ChunkLocation,
  type CommitRecord,
  type IndexPut,
  isStaged,
  listPacks,
  type PackAppend,
  type PackPosition,
  PackReaders,
  PackWriter,
  type ReplayedCommit,
  replay,
  type SealedChunk,
  type SealedPieces,
  type StagedChunk,
  type StagedWrite,
  sealCommit
} from './pack/index.ts'
import { CHUNK_ASSOCIATED_DATA, type StorageKey } from './sealing.ts'

// For importers outside the archive not yet moved to node/archive/index.ts and node/hash.ts.
export { sha256Hex } from '../hash.ts'
export { DEFAULT_PREALLOCATE_READER, DEFAULT_PREALLOCATE_SITE, type ReplayedCommit } from './pack/index.ts'

/** 1 MiB: big enough that per-chunk overhead vanishes, small enough to pull with bounded memory. */
export const CHUNK_SIZE = 1024 * 1024

/** One store: its chunks, the index puts that make them visible, and a note handed back if it is replayed. */
export interface Commit {
  /** written with the commit entry, or (staged) already on their way */
  chunks: Array<SealedChunk | StagedChunk>
  puts: IndexPut[]
  note: Json
  /**
   * called in commit order, with the commit's position, once it is durable and its caller has been answered
   * (see `afterAnswers`); before the index holds its puts, and before `indexed()` resolves. It runs on its
   * own, with no caller to report to, so it must not throw.
   */
  committed?: (ref: string) => void
}

interface CommitAppend extends PackAppend {
  commit: Commit
}

/**
 * Resolves after the callbacks of the current turn of the event loop, and so after the answers that wait on a
 * durable commit: they go out in the promise reactions that follow the write. Work that no answer needs
 * (the LevelDB batch, the committed callbacks) waits for this, so it is done while the sender prepares its
 * next request; it cut the time from a write's end to its answer by two thirds (docs/PERFORMANCE.md).
 */
const afterAnswers = async (): Promise<void> => {
  await new Promise(resolve => setImmediate(resolve))
}

export interface ChunkStoreComponents {
  db: Database
  key: StorageKey
}

export interface ChunkStoreInit {
  /** HOME/chunks: the packs */
  root: string
  /** bytes of pack space kept zero-filled ahead of the writes (see pack/writer.ts) */
  preallocate?: number
  /** entries go on in a new pack once a pack is past this size */
  packLimit?: number
}

type BatchOperations = Array<AbstractBatchPutOperation<Database, string, unknown>>

export class ChunkStore {
  private readonly root: string
  private readonly key: StorageKey
  private readonly db: Database
  private readonly locations: SublevelOf<ChunkLocation>
  private readonly checkpoints: SublevelOf<PackPosition>
  private readonly sublevels = new Map<string, BinarySublevel>()
  private readonly readers: PackReaders
  private readonly writer: PackWriter<CommitAppend>
  /** the index batches of durable commits, one after another (see `index`) */
  private indexing: Promise<void> = Promise.resolve()
  private indexFailure: Error | undefined

  constructor(components: ChunkStoreComponents, init: ChunkStoreInit) {
    this.root = init.root
    this.key = components.key
    this.db = components.db
    this.locations = this.db.sublevel<string, ChunkLocation>('chunk-locations', { valueEncoding: 'json' })
    this.checkpoints = this.db.sublevel<string, PackPosition>('pack-log', { valueEncoding: 'json' })
    this.readers = new PackReaders(init.root)
    this.writer = new PackWriter<CommitAppend>(init.root, {
      ...(init.preallocate === undefined ? {} : { preallocate: init.preallocate }),
      ...(init.packLimit === undefined ? {} : { packLimit: init.packLimit }),
      locationKey: id => this.key.name(id),
      durable: commits => {
        this.index(commits)
      }
    })
  }

  private sublevel(name: string): BinarySublevel {
    let sublevel = this.sublevels.get(name)
    if (sublevel === undefined) {
      sublevel = this.db.sublevel<string, Uint8Array>(name, { valueEncoding: 'view' })
      this.sublevels.set(name, sublevel)
    }
    return sublevel
  }

  /**
   * Opens the packs and replays into LevelDB every commit after its checkpoint, or after `replayFrom` if
   * that is earlier (the caller's own record of what it has seen, e.g. the audit log's last store). Returns
   * the commits replayed, oldest first. Writing goes on at the end of the last intact entry, or in a new
   * pack if the last one ends in a torn entry.
   */
  async open(options: { replayFrom?: string | undefined } = {}): Promise<ReplayedCommit[]> {
    await fs.mkdir(this.root, { recursive: true, mode: 0o700 })
    const packs = await listPacks(this.root)
    const checkpoint = await this.checkpoints.get('checkpoint')
    const fromIndex = checkpoint === undefined ? undefined : `${checkpoint.pack}:${checkpoint.offset}`
    const from =
      fromIndex === undefined || options.replayFrom === undefined
        ? undefined
        : [fromIndex, options.replayFrom].sort(compareRefs)[0]
    const apply = async (records: CommitRecord[], end: PackPosition): Promise<void> => {
      const operations = records.flatMap(record => this.putsOf(record))
      operations.push({ type: 'put', sublevel: this.checkpoints, key: 'checkpoint', value: end })
      await this.db.batch(operations as BatchOperations, SYNCED_WRITE)
    }
    const { replayed, end } = await replay({
      root: this.root,
      key: this.key,
      readers: this.readers,
      packs,
      from,
      checkpoint: fromIndex,
      apply
    })
    await this.writer.open(packs, end)
    return replayed
  }

  private putsOf(record: CommitRecord): unknown[] {
    return [
      ...record.locations.map(([key, value]) => ({ type: 'put', sublevel: this.locations, key, value })),
      ...record.puts.map(([sublevel, key, value]) => ({
        type: 'put',
        sublevel: this.sublevel(sublevel),
        key,
        value: Buffer.from(value, 'base64')
      }))
    ]
  }

  /** Waits for the writes in flight and closes the packs; zero-filling stops. */
  async close(): Promise<void> {
    await this.writer.close()
    await this.indexing
    await this.readers.close()
  }

  /**
   * Begins the synced write of a sealed chunk ahead of its commit, before its id is known (see
   * PackWriter.stage). Until a commit names it, the chunk is unreferenced and invisible.
   */
  stage(chunk: SealedPieces): Promise<StagedWrite> {
    return this.writer.stage(chunk)
  }

  /**
   * Stores a commit: its chunks not stored yet and its commit entry in one synced append. Resolves once that
   * is durable, with the commit's position; its puts follow in LevelDB, and reads wait for them (`index`).
   *
   * A commit of one chunk (an image of up to 1 MiB, whose SOP Instance UID the archive found new) is written
   * without looking its chunk up: no stored object has that content whole, and were it a chunk of a larger
   * object, a second copy would cost space only. That spares a LevelDB read per image.
   */
  async commit(commit: Commit): Promise<{ ids: string[]; ref: string }> {
    const unstaged = commit.chunks.filter((chunk): chunk is SealedChunk => !isStaged(chunk))
    const chunks = commit.chunks.length === 1 ? unstaged : await this.missing(unstaged)
    const staged = commit.chunks.filter(isStaged)
    const body = (locations: Array<[string, ChunkLocation]>): Buffer =>
      sealCommit(this.key, locations, commit.puts, commit.note)
    const { ref } = await this.writer.append({ chunks, staged, body, commit })
    return { ids: commit.chunks.map(chunk => chunk.id), ref }
  }

  private async missing(chunks: SealedChunk[]): Promise<SealedChunk[]> {
    const missing: SealedChunk[] = []
    const seen = new Set<string>()
    for (const chunk of chunks) {
      if (seen.has(chunk.id) || (await this.has(chunk.id))) continue
      seen.add(chunk.id)
      missing.push(chunk)
    }
    return missing
  }

  /**
   * Puts the index records of durable commits in LevelDB after those of the commits before them (in commit
   * order, or an older study aggregate could land last). A commit resolves once it is durable, without
   * waiting for this: reads wait for it instead (`indexed`), so whoever was answered sees the store.
   */
  private index(commits: Array<[CommitAppend, Appended]>): void {
    const last = commits.at(-1)
    if (last === undefined) return
    const operations: unknown[] = []
    for (const [{ commit }, { locations }] of commits) {
      for (const [key, value] of locations) operations.push({ type: 'put', sublevel: this.locations, key, value })
      for (const { sublevel, key, value } of commit.puts) {
        operations.push({ type: 'put', sublevel: this.sublevel(sublevel), key, value })
      }
    }
    // Unsynced: the commit entries just synced are the durable copy.
    operations.push({ type: 'put', sublevel: this.checkpoints, key: 'checkpoint', value: last[1].end })
    const write = async (): Promise<void> => {
      await this.db.batch(operations as BatchOperations)
    }
    this.indexing = this.indexing.then(async () => {
      await afterAnswers()
      if (this.indexFailure !== undefined) return
      try {
        await write()
      } catch {
        await write().catch((error: unknown) => {
          const safe = 'the stores are safe in the pack log: restart the node to replay them into the index'
          this.indexFailure = new Error(`the archive index could not be written (${(error as Error).message}); ${safe}`)
        })
      }
    })
    // Scheduled before the index batch's own wait (a promise reaction of `indexing` schedules that one), so by
    // the time `indexed()` resolves every callback has run: closing waits for it before the audit log closes.
    const committed = commits.flatMap(([{ commit }, { ref }]) =>
      commit.committed === undefined ? [] : [{ call: commit.committed, ref }]
    )
    if (committed.length > 0)
      setImmediate(() => {
        for (const { call, ref } of committed) call(ref)
      })
  }

  /** Resolves once the index holds every commit made durable so far. */
  async indexed(): Promise<void> {
    await this.indexing
    if (this.indexFailure !== undefined) throw this.indexFailure
  }

  private async location(id: string): Promise<ChunkLocation | undefined> {
    await this.indexed()
    return await this.locations.get(this.key.name(id))
  }

  async has(id: string): Promise<boolean> {
    return (await this.location(id)) !== undefined
  }

  /** The plaintext of a chunk, verified against its id (a damaged pack is an error, never wrong bytes). */
  async get(id: string): Promise<Buffer> {
    const location = await this.location(id)
    if (location === undefined) throw new Error(`chunk ${id} is not in this store`)
    const sealed = await this.readers.read(location)
    if (sealed === undefined) throw new Error(`chunk ${id}: pack ${location.pack} is shorter than its index says`)
    const plaintext = this.key.open(sealed, CHUNK_ASSOCIATED_DATA)
    release(sealed)
    if (sha256Hex(plaintext) !== id) throw new Error(`chunk ${id} does not match its hash`)
    return plaintext
  }

  /** The chunks' plaintexts, joined (one chunk's is returned as it is, not copied). */
  async read(ids: string[]): Promise<Buffer> {
    const pieces = await Promise.all(ids.map(async id => await this.get(id)))
    if (pieces.length === 1) return pieces[0] as Buffer
    const joined = Buffer.concat(pieces)
    for (const piece of pieces) release(piece)
    return joined
  }
}
