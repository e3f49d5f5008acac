/**
 * The archive: one `store()` for every way DICOM comes in (C-STORE, STOW-RS, import), and one interface,
 * `Archive`, through which DICOMweb, the workflow and the exchange read, list and keep chunks.
 *
 * Storing an instance: parse and validate the whole file as it arrives (dicom/part10.ts), an object larger than
 * a few chunks going to the pack log chunk by chunk meanwhile (incoming.ts), so no object is ever held whole;
 * then its chunks, its index records (records.ts) and its audit entry go to the pack log in a synced append
 * (commit.ts, chunks.ts, pack/); an image of one chunk starts its chunk's write before it is hashed, and its
 * commit entry follows. Instances stored at the same time share it (group commit). Only then does `store()`
 * resolve, so a C-STORE answered Success survives `kill -9` and power loss, and a crash before that leaves at
 * most unreferenced chunks, never a half-visible instance. The index records follow into LevelDB, and every
 * read of the index waits for them; the audit records go on to the audit log, unsynced and unwaited for.
 * After a power loss the pack log is replayed, and `recover()` puts back the store records the audit log lost.
 *
 * A second object with a SOP Instance UID already stored: identical bytes are a duplicate (Success, nothing
 * written); different bytes keep the first object, as DCMTK's storescp and Orthanc do by default, answer
 * Success so the sender does not retry for ever, and are logged and audited as `kept-existing`.
 */
import type { Logger } from 'pino'
import type { AuditActor, AuditEntry, AuditLog } from '../audit/log.ts'
import { INDEXED_SEQUENCES, INDEXED_TAGS, type IndexLevel } from '../dicom/dictionary.ts'
import { InvalidDicomError } from '../dicom/errors.ts'
import { type AttributeValue, type DicomInstance, InstanceParser } from '../dicom/part10.ts'
import type { Database } from '../store/database.ts'
import { CHUNK_SIZE, type ChunkStore } from './chunks.ts'
import { StudyCommits } from './commit.ts'
import { type IdentifiedObject, IncomingObject, type SealedObject } from './incoming.ts'
import type { SealedChunk, SealedPieces, StagedChunk, StagedWrite } from './pack/index.ts'
import { chunksOf, readRange, readWhole, type StoredFile } from './read.ts'
import {
  type Attributes,
  type InstanceRecord,
  RecordIndex,
  type Sequences,
  type SeriesRecord,
  type StudyRecord
} from './records.ts'
import type { StorageKey } from './sealing.ts'
import { StableStudies, type StudyStableEvent } from './stable.ts'

export type { StoredFile } from './read.ts'
export type { Attributes, InstanceRecord, SeriesRecord, StudyRecord } from './records.ts'
export type { StudyStableEvent } from './stable.ts'

/** Largest single object accepted: a multi-frame ultrasound or breast tomosynthesis fits; 4 GiB does not. */
export const MAX_INSTANCE_BYTES = 2 * 1024 * 1024 * 1024 - 1

const { study: STUDY_TAGS, series: SERIES_TAGS, instance: INSTANCE_TAGS } = INDEXED_TAGS

export type StoreOutcome = 'stored' | 'duplicate' | 'kept-existing'
export interface StoreResult {
  outcome: StoreOutcome
  instance: InstanceRecord
}

/** What an object a C-STORE request announced must be: the data set naming other UIDs is refused. */
export interface Announced {
  sopClassUid: string
  sopInstanceUid: string
}

/**
 * What an object must be to be stored: as its sender announced it (a C-STORE request names its UIDs), or the
 * SHA-256 a signed manifest lists for it (the archive hashes every object anyway, so the exchange does not
 * hash it a second time). `sha256Checked`: the caller hashed these very bytes and found `sha256` (the exchange,
 * checking a chunk that is a whole instance), so the archive takes that hash for an object of one chunk
 * instead of hashing it again.
 */
export type Expected = Partial<Announced> & { sha256?: string; sha256Checked?: boolean }

/**
 * What other capabilities may ask of the archive. Each takes only the slice it uses
 * (`Pick<Archive, 'instance' | 'read'>`), so a test can stand in for the archive with a few functions.
 */
export interface Archive {
  // Storing: every way DICOM comes in.
  /**
   * Validates and stores one Part 10 file; InvalidDicomError (with the reason) for a file it refuses, an
   * error for one that is not what `expected` says.
   */
  store(file: Uint8Array, actor: AuditActor, expected?: Expected): Promise<StoreResult>
  /** An object to write a Part 10 file into as it arrives, then give to `storeIncoming`. */
  incoming(sopUid?: string): IncomingObject
  /** `store` for a file written into `incoming()`; `expected`: e.g. the UIDs a C-STORE request announced. */
  storeIncoming(incoming: IncomingObject, actor: AuditActor, expected?: Expected): Promise<StoreResult>

  // Listing.
  instance(sopUid: string): Promise<InstanceRecord | undefined>
  study(studyUid: string): Promise<StudyRecord | undefined>
  series(studyUid: string, seriesUid: string): Promise<SeriesRecord | undefined>
  studies(): AsyncGenerator<StudyRecord>
  seriesOf(studyUid: string): AsyncGenerator<SeriesRecord>
  /** Instances of a study (or one series), in UID order. */
  instancesOf(studyUid: string, seriesUid?: string): AsyncGenerator<InstanceRecord>
  /** Calls `listener` when a study has had no new instance for a while; returns the unsubscribe. */
  onStudyStable(listener: (event: StudyStableEvent) => void): () => void
  /** Calls `listener` with the study's UID whenever a new instance of a study is stored; returns the unsubscribe. */
  onStudyGrew(listener: (studyUid: string) => void): () => void
  /** The study's stable event is due `--stable-after` from now (after a restart, for a study still arriving). */
  rearmStable(studyUid: string): void

  // Reading a stored file, verified: whole, a chunk at a time, or a range.
  read(instance: StoredFile): Promise<Buffer>
  /** The file's chunks in order (CHUNK_SIZE bytes each but the last): one in memory at a time. */
  chunksOf(instance: InstanceRecord): AsyncGenerator<Buffer>
  /** Bytes `start` to `end` (exclusive), reading only the chunks that hold them. */
  readRange(instance: InstanceRecord, start: number, end: number): Promise<Buffer>

  // Chunks kept for something not whole yet (a fetch in progress), addressed by their SHA-256.
  /** Keeps up to CHUNK_SIZE bytes, durable once it resolves, sealed like all the rest; returns their id. */
  keepChunk(bytes: Uint8Array): Promise<string>
  /** Whether the archive holds the chunk with this id (kept, or a chunk of a stored file). */
  hasChunk(id: string): Promise<boolean>
  /** The chunk with this id, verified against it. */
  readChunk(id: string): Promise<Buffer>
}

export interface ArchiveComponents {
  db: Database
  key: StorageKey
  /** the content store, opened (its pack log replayed) */
  chunks: ChunkStore
  audit: Pick<AuditLog, 'append'>
  log: Logger
}

export interface ArchiveInit {
  /** a study with no new instance for this long raises a study-stable event */
  stableAfterMs: number
}

const pick = (attributes: Attributes, tags: string[]): Attributes =>
  Object.fromEntries(
    tags.filter(tag => attributes[tag] !== undefined).map(tag => [tag, attributes[tag] as AttributeValue])
  )
/** The indexed sequences an instance has that belong to `level`'s record. */
function sequencesOf(parsed: DicomInstance, level: IndexLevel): Sequences {
  const sequences: Sequences = {}
  for (const { tag } of INDEXED_SEQUENCES.filter(s => s.level === level)) {
    const items = parsed.sequences[tag]
    if (items !== undefined) sequences[tag] = items
  }
  return sequences
}

interface Prefetched {
  sopUid: string
  committed: number
  lookup: Promise<InstanceRecord | undefined>
}

export class ArchiveService implements Archive {
  private readonly chunks: ChunkStore
  private readonly key: StorageKey
  private readonly audit: Pick<AuditLog, 'append'>
  private readonly log: Logger
  private readonly records: RecordIndex
  private readonly commits: StudyCommits
  private readonly stable: StableStudies
  /** SOP Instance UIDs being stored, from the lookup that found them new to their commit, and when that ends */
  private readonly storing = new Map<string, Promise<unknown>>()
  /** lookups of the SOP Instance UID a C-STORE announced, begun while its data set arrives */
  private readonly prefetched = new WeakMap<IncomingObject, Prefetched>()

  constructor(components: ArchiveComponents, init: ArchiveInit) {
    const { db, key, chunks, audit, log } = components
    this.chunks = chunks
    this.key = key
    this.audit = audit
    this.log = log
    this.records = new RecordIndex({
      db,
      key,
      indexed: async () => {
        await chunks.indexed()
      }
    })
    this.commits = new StudyCommits({ records: this.records, chunks, audit, log })
    this.stable = new StableStudies({ records: this.records, log }, init)
  }

  /**
   * An object to write a Part 10 file into as it arrives, then give to `storeIncoming`. With the SOP Instance
   * UID the sender announced (a C-STORE request has it), the archive looks it up while the bytes arrive.
   */
  incoming(sopUid?: string): IncomingObject {
    const incoming = new IncomingObject(this.key, MAX_INSTANCE_BYTES, {
      parser: new InstanceParser({ inflate: 'async', maxInflatedBytes: MAX_INSTANCE_BYTES }),
      // A large object goes to the pack log chunk by chunk as it arrives (see incoming.ts).
      spill: async chunk => await this.chunks.stage(chunk)
    })
    if (sopUid !== undefined && sopUid !== '') {
      const lookup = this.instance(sopUid).catch(() => undefined)
      this.prefetched.set(incoming, { sopUid, committed: this.commits.committed, lookup })
    }
    return incoming
  }

  /**
   * The instance stored under `sopUid`. The lookup begun by `incoming` is taken if it found it, or if no
   * commit came since it began; checked in the same synchronous step as the caller's `storing` check (no
   * store of this UID can complete unseen between the two).
   */
  private async lookup(
    sopUid: string,
    incoming: IncomingObject
  ): Promise<{ found: InstanceRecord | undefined; current: () => boolean }> {
    const prefetched = this.prefetched.get(incoming)
    this.prefetched.delete(incoming)
    if (prefetched?.sopUid !== sopUid) return { found: await this.instance(sopUid), current: () => true }
    const found = await prefetched.lookup
    return { found, current: () => found !== undefined || prefetched.committed === this.commits.committed }
  }

  /**
   * Validates and stores one Part 10 file. Throws InvalidDicomError (with the reason) for a file it
   * refuses; every outcome, refusals included, is audited. The archive keeps no reference to `file`: once this
   * settles, the caller may reuse or release it.
   */
  async store(file: Uint8Array, actor: AuditActor, expected?: Expected): Promise<StoreResult> {
    const incoming = this.incoming()
    incoming.write(file)
    return await this.storeIncoming(incoming, actor, expected)
  }

  /**
   * `store` for a file written into `incoming()` piece by piece. `expected`: the SOP Class and Instance UIDs
   * the sender announced (a C-STORE request names them): an object whose data set names others is refused
   * ('not-as-announced') before anything of it is stored.
   */
  async storeIncoming(incoming: IncomingObject, actor: AuditActor, expected?: Expected): Promise<StoreResult> {
    try {
      return await this.storeReceived(incoming, actor, expected)
    } finally {
      incoming.release()
    }
  }

  private async storeReceived(incoming: IncomingObject, actor: AuditActor, expected?: Expected): Promise<StoreResult> {
    let sealed: SealedObject
    let parsed: DicomInstance
    try {
      if (incoming.tooLarge) {
        throw new InvalidDicomError('too-large', 'the object is over 2 GiB; radmesh stores objects up to 2 GiB')
      }
      // Parsed as it arrived; for the deflated syntax this waits for the data set to inflate (off the event loop).
      parsed = await incoming.parsed()
      if (expected?.sopInstanceUid !== undefined && parsed.sopInstanceUid !== expected.sopInstanceUid) {
        throw new InvalidDicomError('not-as-announced', 'SOP Instance UID in data set differs from the request')
      }
      if (expected?.sopClassUid !== undefined && parsed.sopClassUid !== expected.sopClassUid) {
        throw new InvalidDicomError('not-as-announced', 'SOP Class UID in data set differs from the request')
      }
      sealed = incoming.seal()
      if (expected?.sha256 !== undefined && expected.sha256Checked === true) incoming.hashedAs(expected.sha256)
      if (expected?.sha256 !== undefined && incoming.identify().sha256 !== expected.sha256) {
        throw new Error(
          `the object's SHA-256 is not ${expected.sha256}, which its sender signed: nothing of it is kept`
        )
      }
    } catch (error) {
      // Not synced: a refusal stored nothing, and losing its record to a power cut loses no access to patient
      // data; a sender of thousands of bad parts is not held at one disk sync each (0.45 ms).
      const detail = `refused: ${(error as Error).message}`
      const refusal: AuditEntry = { event: 'instancesTransferred', action: 'C', outcome: 4, actor, detail }
      await this.audit.append(refusal, { durable: false })
      throw error
    }
    const sopUid = parsed.sopInstanceUid
    const looked = await this.lookup(sopUid, incoming)
    let existing = looked.current() ? looked.found : await this.instance(sopUid)
    // Two copies of one instance may race through one association or two: the second waits for the first.
    for (let first = this.storing.get(sopUid); existing === undefined && first !== undefined; ) {
      await first.catch(() => {})
      existing = await this.instance(sopUid)
      first = this.storing.get(sopUid)
    }
    if (existing !== undefined) {
      const outcome: StoreOutcome = existing.sha256 === incoming.identify().sha256 ? 'duplicate' : 'kept-existing'
      if (outcome === 'kept-existing') {
        const message = 'a different object with a known SOP Instance UID arrived; the first one is kept'
        this.log.warn({ event: 'kept-existing', sop: sopUid, study: parsed.studyInstanceUid }, message)
      }
      const { studyUid: study, seriesUid: series, sopUid: instance } = existing
      const entry = { study, series, instances: [instance], detail: outcome }
      await this.audit.append({ event: 'instancesTransferred', action: 'C', outcome: 0, actor, ...entry })
      return { outcome, instance: existing }
    }

    // An image of one chunk (up to 1 MiB) goes to disk now, and is hashed while the disk writes it; its commit
    // entry follows (see ChunkStore.stage): a tenth to a fifth off a 400-image ingest (docs/PERFORMANCE.md).
    const whole = sealed.bytes !== undefined && sealed.chunks.length === 1
    const staged = whole ? this.chunks.stage(sealed.chunks[0] as SealedPieces) : undefined
    const storing = this.storeNew(parsed, incoming.identify(), actor, staged)
    this.storing.set(sopUid, storing)
    try {
      const record = await storing
      this.stable.touch(record.studyUid)
      return { outcome: 'stored', instance: record }
    } finally {
      this.storing.delete(sopUid)
    }
  }

  /** Commits an instance not stored before: its chunks with its index records (see commit.ts). */
  private async storeNew(
    parsed: DicomInstance,
    received: IdentifiedObject,
    actor: AuditActor,
    staged: Promise<StagedWrite> | undefined
  ): Promise<InstanceRecord> {
    const record: InstanceRecord = {
      studyUid: parsed.studyInstanceUid,
      seriesUid: parsed.seriesInstanceUid,
      sopUid: parsed.sopInstanceUid,
      sopClassUid: parsed.sopClassUid,
      transferSyntaxUid: parsed.transferSyntaxUid,
      size: received.length,
      sha256: received.sha256,
      chunks: received.chunks.map(chunk => chunk.id),
      datasetOffset: parsed.datasetOffset,
      ...(parsed.pixelData === undefined ? {} : { pixelData: parsed.pixelData }),
      executablePreamble: parsed.executablePreamble,
      attributes: pick(parsed.attributes, INSTANCE_TAGS),
      storedAt: new Date().toISOString()
    }
    const chunks =
      staged === undefined
        ? received.chunks
        : [{ id: (received.chunks[0] as SealedChunk).id, staged } satisfies StagedChunk]
    const modality = parsed.attributes['00080060']
    await this.commits.add({
      record,
      studyAttributes: pick(parsed.attributes, STUDY_TAGS),
      seriesAttributes: pick(parsed.attributes, SERIES_TAGS),
      studySequences: sequencesOf(parsed, 'study'),
      seriesSequences: sequencesOf(parsed, 'series'),
      modality: typeof modality === 'string' && modality !== '' ? modality : undefined,
      chunks,
      actor
    })
    return record
  }

  onStudyStable(listener: (event: StudyStableEvent) => void): () => void {
    return this.stable.on(listener)
  }

  onStudyGrew(listener: (studyUid: string) => void): () => void {
    return this.stable.onGrew(listener)
  }

  rearmStable(studyUid: string): void {
    this.stable.rearm(studyUid)
  }

  stop(): void {
    this.stable.stop()
  }

  async instance(sopUid: string): Promise<InstanceRecord | undefined> {
    return await this.records.instance(sopUid)
  }

  async study(studyUid: string): Promise<StudyRecord | undefined> {
    return await this.records.study(studyUid)
  }

  async series(studyUid: string, seriesUid: string): Promise<SeriesRecord | undefined> {
    return await this.records.series(studyUid, seriesUid)
  }

  studies(): AsyncGenerator<StudyRecord> {
    return this.records.studies()
  }

  seriesOf(studyUid: string): AsyncGenerator<SeriesRecord> {
    return this.records.seriesOf(studyUid)
  }

  instancesOf(studyUid: string, seriesUid?: string): AsyncGenerator<InstanceRecord> {
    return this.records.instancesOf(studyUid, seriesUid)
  }

  chunksOf(instance: InstanceRecord): AsyncGenerator<Buffer> {
    return chunksOf(this.chunks, instance)
  }

  async readRange(instance: InstanceRecord, start: number, end: number): Promise<Buffer> {
    return await readRange(this.chunks, instance, start, end)
  }

  /** The instance's bytes, in a buffer of the caller's own: nothing else holds it, so it may be released (heap.ts). */
  async read(instance: StoredFile): Promise<Buffer> {
    return await readWhole(this.chunks, instance)
  }

  /**
   * A chunk kept through a commit of its own (the pack log's one way to make bytes visible), so it is replayed
   * after a power loss like any store. A chunk the archive holds already is not written again.
   */
  async keepChunk(bytes: Uint8Array): Promise<string> {
    const incoming = new IncomingObject(this.key, CHUNK_SIZE)
    incoming.write(bytes)
    const [chunk] = incoming.finish().chunks as [SealedChunk]
    incoming.release()
    if (!(await this.chunks.has(chunk.id))) {
      await this.chunks.commit({ chunks: [chunk], puts: [], note: { kept: chunk.id } })
    }
    return chunk.id
  }

  async hasChunk(id: string): Promise<boolean> {
    return await this.chunks.has(id)
  }

  /** A kept chunk's bytes, in a buffer of the caller's own (as `read`). */
  async readChunk(id: string): Promise<Buffer> {
    return await this.chunks.get(id)
  }
}
