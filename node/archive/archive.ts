/**
 * The archive: one `store()` for every way DICOM comes in (C-STORE, STOW-RS, import), and reads for
 * DICOMweb and the exchange.
 *
 * Storing an instance: parse and validate the whole file as it arrives (dicom/part10.ts), an object larger than
 * a few chunks going to the pack log chunk by chunk meanwhile (incoming.ts), so no object is ever held whole;
 * then its chunks, its index records (the instance,
 * its series and study aggregates, the listing key) and its audit entry go to the pack log in a synced
 * append (see chunks.ts); an image of one chunk starts its chunk's write before it is hashed, and its commit
 * entry follows. Instances stored at the same time share it (group commit). Only then does
 * `store()` resolve, so a C-STORE answered Success survives `kill -9` and power loss, and a crash before
 * that leaves at most unreferenced chunks, never a half-visible instance. The index records follow into
 * LevelDB, and every read of the index waits for them; the audit records go on to the audit log, unsynced
 * and unwaited for. After a power loss the pack log is replayed, and `recover()` puts back the store records
 * the audit log lost.
 *
 * Index values hold patient data, so they are sealed with the storage key like the chunks; keys are UIDs.
 * Layout in the `archive` sublevel:
 *   i!SOP                     instance record
 *   s!STUDY                   study record (patient and study attributes, counts, modalities)
 *   r!STUDY!SERIES            series record
 *   m!STUDY!SERIES!SOP        listing key (empty value)
 *
 * A second object with a SOP Instance UID already stored: identical bytes are a duplicate (Success, nothing
 * written); different bytes keep the first object, as DCMTK's storescp and Orthanc do by default, answer
 * Success so the sender does not retry for ever, and are logged and audited as `kept-existing`.
 */
import type { AbstractSublevel } from 'abstract-level'
import type { Logger } from 'pino'
import type { Json } from '../../protocol/json.ts'
import type { AuditActor, AuditEntry, AuditLog } from '../audit/log.ts'
import { InvalidDicomError } from '../dicom/errors.ts'
import { type AttributeValue, type DicomInstance, InstanceParser, type PixelDataLocation } from '../dicom/part10.ts'
import type { Database } from '../store/database.ts'
import { compareRefs } from '../store/pack-ref.ts'
import { CHUNK_SIZE, type ChunkStore, type IndexPut, type ReplayedCommit, type SealedChunk, type SealedPieces, type StagedChunk, type StagedWrite, sha256Hex } from './chunks.ts'
import { type IdentifiedObject, IncomingObject, type SealedObject } from './incoming.ts'
import type { StorageKey } from './sealing.ts'

/** Largest single object accepted: a multi-frame ultrasound or breast tomosynthesis fits; 4 GiB does not. */
export const MAX_INSTANCE_BYTES = 2 * 1024 * 1024 * 1024 - 1

const STUDY_TAGS = ['00080005', '00080020', '00080030', '00080050', '00080090', '00081030', '00100010', '00100020', '00100030', '00100040', '0020000D', '00200010']
const SERIES_TAGS = ['00080060', '0008103E', '0020000E', '00200011', '00180015', '00400244']
const INSTANCE_TAGS = ['00080016', '00080018', '00200013', '00280002', '00280004', '00280008', '00280010', '00280011', '00280100', '00280103']

export type Attributes = Record<string, AttributeValue>

export interface InstanceRecord {
  studyUid: string
  seriesUid: string
  sopUid: string
  sopClassUid: string
  transferSyntaxUid: string
  size: number
  sha256: string
  chunks: string[]
  datasetOffset: number
  pixelData?: PixelDataLocation
  executablePreamble: boolean
  attributes: Attributes
  storedAt: string
}

export interface SeriesRecord { studyUid: string, seriesUid: string, attributes: Attributes, instanceCount: number, bytes: number, updatedAt: string }
export interface StudyRecord { studyUid: string, attributes: Attributes, modalities: string[], seriesCount: number, instanceCount: number, bytes: number, createdAt: string, updatedAt: string }

export type StoreOutcome = 'stored' | 'duplicate' | 'kept-existing'
export interface StoreResult { outcome: StoreOutcome, instance: InstanceRecord }

export interface StudyStableEvent { studyUid: string, instanceCount: number, seriesCount: number, bytes: number }

export interface ArchiveOptions {
  db: Database
  chunks: ChunkStore
  key: StorageKey
  audit: AuditLog
  log: Logger
  /** a study with no new instance for this long raises a study-stable event */
  stableAfterMs: number
}

const pick = (attributes: Attributes, tags: string[]): Attributes =>
  Object.fromEntries(tags.filter(tag => attributes[tag] !== undefined).map(tag => [tag, attributes[tag] as AttributeValue]))

/** the archive's sublevel, named in the pack log's commits */
const ARCHIVE_SUBLEVEL = 'archive'
/** studies whose aggregates stay in memory after their last commit (enough for the associations of a busy site) */
const AGGREGATES_CACHED = 64

interface PendingCommit {
  record: InstanceRecord
  attributes: Attributes
  chunks: Array<SealedChunk | StagedChunk>
  actor: AuditActor
  resolve: () => void
  reject: (error: Error) => void
}
interface CommitQueue { pending: PendingCommit[], running: boolean }

type BinarySublevel = AbstractSublevel<Database, string | Uint8Array, string, Uint8Array>

export class Archive {
  private readonly store_: BinarySublevel
  private readonly chunks: ChunkStore
  private readonly key: StorageKey
  private readonly audit: AuditLog
  private readonly log: Logger
  private readonly stableAfterMs: number
  private readonly stableTimers = new Map<string, NodeJS.Timeout>()
  private readonly stableListeners = new Set<(event: StudyStableEvent) => void>()
  /** index updates waiting, per study (see commitStudy) */
  private readonly commits = new Map<string, CommitQueue>()
  /**
   * The study and series records of the studies stored to last, as last committed: `commit` is their only
   * writer, so a study arriving instance by instance is not read back from LevelDB for every instance.
   */
  private readonly aggregates = new Map<string, { study: StudyRecord, series: Map<string, SeriesRecord> }>()
  /** SOP Instance UIDs being stored, from the lookup that found them new to their commit, and when that ends */
  private readonly storing = new Map<string, Promise<unknown>>()
  /** instances committed so far: a lookup made before the last commit may be stale */
  private committed = 0
  /** lookups of the SOP Instance UID a C-STORE announced, begun while its data set arrives */
  private readonly prefetched = new WeakMap<IncomingObject, { sopUid: string, committed: number, lookup: Promise<InstanceRecord | undefined> }>()

  constructor (options: ArchiveOptions) {
    this.store_ = options.db.sublevel<string, Uint8Array>(ARCHIVE_SUBLEVEL, { valueEncoding: 'view' })
    this.chunks = options.chunks
    this.key = options.key
    this.audit = options.audit
    this.log = options.log
    this.stableAfterMs = options.stableAfterMs
  }

  private async getSealed<T> (key: string): Promise<T | undefined> {
    await this.chunks.indexed()
    const sealed = await this.store_.get(key)
    if (sealed === undefined) return undefined
    return JSON.parse(this.key.open(sealed, `index:${key}`).toString('utf8')) as T
  }

  private sealed (key: string, value: unknown): IndexPut {
    return { sublevel: ARCHIVE_SUBLEVEL, key, value: this.key.seal(Buffer.from(JSON.stringify(value)), `index:${key}`) }
  }

  /**
   * Index updates of one study are group-committed: instances that arrive while a commit is running go
   * together in the next, with their aggregates computed in order, in one commit (read-modify-write
   * of the study and series records needs them serialised anyway).
   */
  private async commitStudy (studyUid: string, queue: CommitQueue): Promise<void> {
    queue.running = true
    try {
      while (queue.pending.length > 0) {
        const batch = queue.pending
        queue.pending = []
        try {
          await this.commit(studyUid, batch)
          for (const entry of batch) entry.resolve()
        } catch (error) {
          for (const entry of batch) entry.reject(error as Error)
        }
      }
    } finally {
      queue.running = false
      if (this.commits.get(studyUid) === queue) this.commits.delete(studyUid)
    }
  }

  private async commit (studyUid: string, batch: PendingCommit[]): Promise<void> {
    const now = new Date().toISOString()
    const cached = this.aggregates.get(studyUid)
    let study = cached?.study ?? await this.study(studyUid)
    const series = new Map<string, SeriesRecord | undefined>(cached?.series)
    const puts: IndexPut[] = []
    for (const entry of batch) {
      const { record, attributes } = entry
      if (!series.has(record.seriesUid)) series.set(record.seriesUid, await this.series(studyUid, record.seriesUid))
      const before = series.get(record.seriesUid)
      const modality = attributes['00080060']
      const nextSeries: SeriesRecord = {
        studyUid,
        seriesUid: record.seriesUid,
        attributes: before?.attributes ?? pick(attributes, SERIES_TAGS),
        instanceCount: (before?.instanceCount ?? 0) + 1,
        bytes: (before?.bytes ?? 0) + record.size,
        updatedAt: now
      }
      series.set(record.seriesUid, nextSeries)
      study = {
        studyUid,
        attributes: study?.attributes ?? pick(attributes, STUDY_TAGS),
        modalities: [...new Set([...(study?.modalities ?? []), ...(typeof modality === 'string' && modality !== '' ? [modality] : [])])],
        seriesCount: (study?.seriesCount ?? 0) + (before === undefined ? 1 : 0),
        instanceCount: (study?.instanceCount ?? 0) + 1,
        bytes: (study?.bytes ?? 0) + record.size,
        createdAt: study?.createdAt ?? now,
        updatedAt: now
      }
      puts.push(this.sealed(`i!${record.sopUid}`, record), { sublevel: ARCHIVE_SUBLEVEL, key: `m!${studyUid}!${record.seriesUid}!${record.sopUid}`, value: new Uint8Array() })
    }
    if (study !== undefined) {
      for (const [seriesUid, record] of series) {
        if (record !== undefined && batch.some(entry => entry.record.seriesUid === seriesUid)) puts.push(this.sealed(`r!${studyUid}!${seriesUid}`, record))
      }
      puts.push(this.sealed(`s!${studyUid}`, study))
      const audits: AuditEntry[] = batch.map(({ record, actor }) => ({ event: 'instancesTransferred', action: 'C', outcome: 0, actor, study: studyUid, series: record.seriesUid, instances: [record.sopUid], detail: 'stored' }))
      try {
        // Chunks, chunk locations, instances, aggregates and listings become visible together, or not at all.
        // The audit records are in the commit, durable with it: they go on to the audit log in commit order,
        // and the store is answered without waiting for that unsynced write (400 instances, medians of
        // alternated runs: 1.23 s against 1.42 s while this machine's disk was slow, 1.00 s against
        // 1.00 s while it was not; an append can wait on the file system's journal). Were the write lost,
        // the restart appends the records again from the pack log (`recover`); were it to fail, the audit
        // log refuses every record after it, and with them the queries and retrievals it would record,
        // until a restart.
        await this.chunks.commit({
          chunks: batch.flatMap(entry => entry.chunks),
          puts,
          note: { audit: audits as unknown as Json },
          committed: ref => {
            for (const entry of audits) {
              this.audit.append({ ...entry, journal: ref }, { durable: false }).catch((error: unknown) => {
                this.log.error({ event: 'audit-write-failed', study: studyUid, err: error }, (error as Error).message)
              })
            }
          }
        })
        // Stored now, whatever follows: a lookup begun before this is stale (see `lookup`).
        this.committed += batch.length
      } catch (error) {
        // The batch may or may not be on disk: read the aggregates back next time.
        this.aggregates.delete(studyUid)
        throw error
      }
      this.aggregates.delete(studyUid)
      this.aggregates.set(studyUid, { study, series: new Map([...series].filter((entry): entry is [string, SeriesRecord] => entry[1] !== undefined)) })
      if (this.aggregates.size > AGGREGATES_CACHED) this.aggregates.delete(this.aggregates.keys().next().value as string)
    }
  }

  /**
   * After the chunk store replayed its pack log (`ChunkStore.open`): the store records of replayed commits
   * past the last one the audit log holds are appended again, so a power loss loses no record of a store.
   * Returns how many were.
   */
  async recover (replayed: ReplayedCommit[]): Promise<number> {
    const last = this.audit.lastJournal
    // Appended in commit order (each append takes its place in the chain at once) and synced together.
    const appends = replayed
      .filter(({ ref }) => last === undefined || compareRefs(ref, last) > 0)
      .flatMap(({ ref, note }) => ((note as { audit?: AuditEntry[] }).audit ?? []).map(async entry =>
        await this.audit.append({ ...entry, journal: ref, detail: `${entry.detail ?? 'stored'}; recorded at restart from the pack log, which the audit log had lost in a crash` })))
    await Promise.all(appends)
    const appended = appends.length
    if (appended > 0) this.log.warn({ event: 'audit-recovered', records: appended }, `the audit log had lost ${appended} store records in a crash; they are appended again from the pack log`)
    return appended
  }

  /**
   * An object to write a Part 10 file into as it arrives, then give to `storeIncoming`. With the SOP Instance
   * UID the sender announced (a C-STORE request has it), the archive looks it up while the bytes arrive.
   */
  incoming (sopUid?: string): IncomingObject {
    const incoming = new IncomingObject(this.key, MAX_INSTANCE_BYTES, {
      parser: new InstanceParser({ inflate: 'async', maxInflatedBytes: MAX_INSTANCE_BYTES }),
      // A large object goes to the pack log chunk by chunk as it arrives (see incoming.ts).
      spill: async chunk => await this.chunks.stage(chunk)
    })
    if (sopUid !== undefined && sopUid !== '') {
      this.prefetched.set(incoming, { sopUid, committed: this.committed, lookup: this.instance(sopUid).catch(() => undefined) })
    }
    return incoming
  }

  /**
   * The instance stored under `sopUid`. The lookup begun by `incoming` is taken if it found it, or if no
   * commit came since it began; checked in the same synchronous step as the caller's `storing` check (no
   * store of this UID can complete unseen between the two).
   */
  private async lookup (sopUid: string, incoming: IncomingObject): Promise<{ found: InstanceRecord | undefined, current: () => boolean }> {
    const prefetched = this.prefetched.get(incoming)
    this.prefetched.delete(incoming)
    if (prefetched?.sopUid !== sopUid) return { found: await this.instance(sopUid), current: () => true }
    const found = await prefetched.lookup
    return { found, current: () => found !== undefined || prefetched.committed === this.committed }
  }

  /**
   * Validates and stores one Part 10 file. Throws InvalidDicomError (with the reason) for a file it
   * refuses; every outcome, refusals included, is audited.
   */
  async store (file: Uint8Array, actor: AuditActor): Promise<StoreResult> {
    const incoming = this.incoming()
    incoming.write(file)
    return await this.storeIncoming(incoming, actor)
  }

  /**
   * `store` for a file written into `incoming()` piece by piece. `expected`: the SOP Class and Instance UIDs
   * the sender announced (a C-STORE request names them): an object whose data set names others is refused
   * ('not-as-announced') before anything of it is stored.
   */
  async storeIncoming (incoming: IncomingObject, actor: AuditActor, expected?: { sopClassUid: string, sopInstanceUid: string }): Promise<StoreResult> {
    try {
      return await this.storeReceived(incoming, actor, expected)
    } finally {
      incoming.release()
    }
  }

  private async storeReceived (incoming: IncomingObject, actor: AuditActor, expected?: { sopClassUid: string, sopInstanceUid: string }): Promise<StoreResult> {
    let sealed: SealedObject
    let parsed: DicomInstance
    try {
      if (incoming.tooLarge) throw new InvalidDicomError('too-large', 'the object is over 2 GiB; radmesh stores objects up to 2 GiB')
      // Parsed as it arrived; for the deflated syntax this waits for the data set to inflate (off the event loop).
      parsed = await incoming.parsed()
      if (expected !== undefined && parsed.sopInstanceUid !== expected.sopInstanceUid) {
        throw new InvalidDicomError('not-as-announced', 'SOP Instance UID in data set differs from the request')
      }
      if (expected !== undefined && parsed.sopClassUid !== expected.sopClassUid) {
        throw new InvalidDicomError('not-as-announced', 'SOP Class UID in data set differs from the request')
      }
      sealed = incoming.seal()
    } catch (error) {
      // Not synced: a refusal stored nothing, and losing its record to a power cut loses no access to patient
      // data; a sender of thousands of bad parts is not held at one disk sync each (0.45 ms).
      await this.audit.append({ event: 'instancesTransferred', action: 'C', outcome: 4, actor, detail: `refused: ${(error as Error).message}` }, { durable: false })
      throw error
    }
    const looked = await this.lookup(parsed.sopInstanceUid, incoming)
    let existing = looked.current() ? looked.found : await this.instance(parsed.sopInstanceUid)
    // Two copies of one instance may race through one association or two: the second waits for the first.
    for (let first = this.storing.get(parsed.sopInstanceUid); existing === undefined && first !== undefined; first = this.storing.get(parsed.sopInstanceUid)) {
      await first.catch(() => {})
      existing = await this.instance(parsed.sopInstanceUid)
    }
    if (existing !== undefined) {
      const outcome: StoreOutcome = existing.sha256 === incoming.identify().sha256 ? 'duplicate' : 'kept-existing'
      if (outcome === 'kept-existing') this.log.warn({ event: 'kept-existing', sop: parsed.sopInstanceUid, study: parsed.studyInstanceUid }, 'a different object with a known SOP Instance UID arrived; the first one is kept')
      await this.audit.append({ event: 'instancesTransferred', action: 'C', outcome: 0, actor, study: existing.studyUid, series: existing.seriesUid, instances: [existing.sopUid], detail: outcome })
      return { outcome, instance: existing }
    }

    // An image of one chunk (up to 1 MiB) goes to disk now, and is hashed while the disk writes it; its commit
    // entry follows (see ChunkStore.stage). 400 instances by storescu, alternated runs: 0.81 s against 1.02 s
    // (medians of 8), and 1.03 s against 1.16 s (medians of 7) while this machine was slower.
    const staged = sealed.bytes !== undefined && sealed.chunks.length === 1 ? this.chunks.stage(sealed.chunks[0] as SealedPieces) : undefined
    const storing = this.storeNew(parsed, incoming.identify(), actor, staged)
    this.storing.set(parsed.sopInstanceUid, storing)
    try {
      const record = await storing
      this.touchStudy(record.studyUid)
      return { outcome: 'stored', instance: record }
    } finally {
      this.storing.delete(parsed.sopInstanceUid)
    }
  }

  /** Commits an instance not stored before: its chunks with its index records (see commitStudy). */
  private async storeNew (parsed: DicomInstance, received: IdentifiedObject, actor: AuditActor, staged: Promise<StagedWrite> | undefined): Promise<InstanceRecord> {
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
    await new Promise<void>((resolve, reject) => {
      const queue = this.commits.get(record.studyUid) ?? { pending: [], running: false }
      this.commits.set(record.studyUid, queue)
      const chunks = staged === undefined ? received.chunks : [{ id: (received.chunks[0] as SealedChunk).id, staged } satisfies StagedChunk]
      queue.pending.push({ record, attributes: parsed.attributes, chunks, actor, resolve, reject })
      if (!queue.running) void this.commitStudy(record.studyUid, queue)
    })
    return record
  }

  private touchStudy (studyUid: string): void {
    clearTimeout(this.stableTimers.get(studyUid))
    const timer = setTimeout(() => {
      this.stableTimers.delete(studyUid)
      void this.study(studyUid).then(study => {
        if (study === undefined) return
        const event: StudyStableEvent = { studyUid, instanceCount: study.instanceCount, seriesCount: study.seriesCount, bytes: study.bytes }
        this.log.info({ event: 'study-stable', study: studyUid, instances: study.instanceCount, series: study.seriesCount }, 'study stable')
        for (const listener of this.stableListeners) listener(event)
      }).catch((error: unknown) => { this.log.error({ err: error, study: studyUid }, 'study-stable check failed') })
    }, this.stableAfterMs)
    timer.unref()
    this.stableTimers.set(studyUid, timer)
  }

  /** Calls `listener` when a study has had no new instance for `stableAfterMs`; returns the unsubscribe. */
  onStudyStable (listener: (event: StudyStableEvent) => void): () => void {
    this.stableListeners.add(listener)
    return () => { this.stableListeners.delete(listener) }
  }

  stop (): void {
    for (const timer of this.stableTimers.values()) clearTimeout(timer)
    this.stableTimers.clear()
  }

  async instance (sopUid: string): Promise<InstanceRecord | undefined> {
    return await this.getSealed<InstanceRecord>(`i!${sopUid}`)
  }

  async study (studyUid: string): Promise<StudyRecord | undefined> {
    return await this.getSealed<StudyRecord>(`s!${studyUid}`)
  }

  async series (studyUid: string, seriesUid: string): Promise<SeriesRecord | undefined> {
    return await this.getSealed<SeriesRecord>(`r!${studyUid}!${seriesUid}`)
  }

  async * studies (): AsyncGenerator<StudyRecord> {
    await this.chunks.indexed()
    for await (const key of this.store_.keys({ gt: 's!', lt: 's"' })) {
      const study = await this.getSealed<StudyRecord>(key)
      if (study !== undefined) yield study
    }
  }

  async * seriesOf (studyUid: string): AsyncGenerator<SeriesRecord> {
    await this.chunks.indexed()
    for await (const key of this.store_.keys({ gt: `r!${studyUid}!`, lt: `r!${studyUid}"` })) {
      const series = await this.getSealed<SeriesRecord>(key)
      if (series !== undefined) yield series
    }
  }

  /** Instances of a study (or one series), in UID order. */
  async * instancesOf (studyUid: string, seriesUid?: string): AsyncGenerator<InstanceRecord> {
    const prefix = seriesUid === undefined ? `m!${studyUid}!` : `m!${studyUid}!${seriesUid}!`
    await this.chunks.indexed()
    for await (const key of this.store_.keys({ gt: prefix, lt: `${prefix.slice(0, -1)}"` })) {
      const instance = await this.instance(key.slice(key.lastIndexOf('!') + 1))
      if (instance !== undefined) yield instance
    }
  }

  /**
   * The stored file's chunks in order (CHUNK_SIZE bytes each but the last), each verified against its id as it
   * is read: one chunk in memory at a time, whatever the object's size.
   */
  async * chunksOf (instance: InstanceRecord): AsyncGenerator<Buffer> {
    let length = 0
    for (const id of instance.chunks) {
      const chunk = await this.chunks.get(id)
      length += chunk.byteLength
      yield chunk
    }
    if (length !== instance.size) throw new Error(`instance ${instance.sopUid} does not match its recorded size: the archive is damaged`)
  }

  /** Bytes `start` to `end` (exclusive) of the stored file, reading only the chunks that hold them. */
  async readRange (instance: InstanceRecord, start: number, end: number): Promise<Buffer> {
    if (start < 0 || end > instance.size || start > end) throw new RangeError(`bytes ${start}-${end} are not within instance ${instance.sopUid} (${instance.size} bytes)`)
    if (start === end) return Buffer.alloc(0)
    const first = Math.floor(start / CHUNK_SIZE)
    const last = Math.floor((end - 1) / CHUNK_SIZE)
    const parts: Buffer[] = []
    for (let i = first; i <= last; i++) parts.push(await this.chunks.get(instance.chunks[i] as string))
    const joined = parts.length === 1 ? parts[0] as Buffer : Buffer.concat(parts)
    return joined.subarray(start - first * CHUNK_SIZE, end - first * CHUNK_SIZE)
  }

  /** The stored file, exactly as received, verified chunk by chunk and as a whole (for objects read whole). */
  async read (instance: InstanceRecord): Promise<Buffer> {
    const file = await this.chunks.read(instance.chunks)
    // A one-chunk object was verified whole by its chunk id, which is its SHA-256.
    const verified = instance.chunks.length === 1 && instance.chunks[0] === instance.sha256
    if (file.byteLength !== instance.size || (!verified && sha256Hex(file) !== instance.sha256)) {
      throw new Error(`instance ${instance.sopUid} does not match its recorded size and SHA-256: the archive is damaged`)
    }
    return file
  }
}
