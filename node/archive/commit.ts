/**
 * Committing new instances, study by study: each instance's chunks, its record, its listing key, its
 * series and study aggregates and its audit entry go to the pack log in one commit, so they become visible
 * together or not at all. Instances of one study that arrive while a commit of it runs go together in the
 * next, their aggregates computed in order (read-modify-write of the study and series records needs them
 * serialised anyway); commits of different studies share the pack log's group commit.
 */
import type { Logger } from 'pino'
import type { Json } from '../../protocol/json.ts'
import type { AuditActor, AuditEntry, AuditLog } from '../audit/log.ts'
import type { ChunkStore } from './chunks.ts'
import type { IndexPut, SealedChunk, StagedChunk } from './pack/index.ts'
import type { Attributes, InstanceRecord, RecordIndex, Sequences, SeriesRecord, StudyRecord } from './records.ts'

/** studies whose aggregates stay in memory after their last commit (enough for the associations of a busy site) */
const AGGREGATES_CACHED = 64

/** An instance not stored before, ready to commit. */
export interface NewInstance {
  record: InstanceRecord
  /** the study's and the series' attributes, kept if this instance is the first of its study or series */
  studyAttributes: Attributes
  seriesAttributes: Attributes
  /** the study's and the series' indexed sequences, kept likewise */
  studySequences: Sequences
  seriesSequences: Sequences
  modality: string | undefined
  chunks: Array<SealedChunk | StagedChunk>
  actor: AuditActor
}

interface Pending extends NewInstance {
  resolve: () => void
  reject: (error: Error) => void
}
interface Queue {
  pending: Pending[]
  running: boolean
}

export interface StudyCommitsComponents {
  records: Pick<RecordIndex, 'put' | 'listing' | 'study' | 'series'>
  chunks: Pick<ChunkStore, 'commit'>
  audit: Pick<AuditLog, 'append'>
  log: Logger
}

export class StudyCommits {
  private readonly components: StudyCommitsComponents
  /** index updates waiting, per study */
  private readonly queues = new Map<string, Queue>()
  /**
   * The study and series records of the studies stored to last, as last committed: `commit` is their only
   * writer, so a study arriving instance by instance is not read back from LevelDB for every instance.
   */
  private readonly aggregates = new Map<string, { study: StudyRecord; series: Map<string, SeriesRecord> }>()
  /** instances committed so far: a lookup made before the last commit may be stale */
  committed = 0

  constructor(components: StudyCommitsComponents) {
    this.components = components
  }

  /** Commits an instance with the others of its study arriving meanwhile; resolves once it is durable. */
  async add(instance: NewInstance): Promise<void> {
    const studyUid = instance.record.studyUid
    await new Promise<void>((resolve, reject) => {
      const queue = this.queues.get(studyUid) ?? { pending: [], running: false }
      this.queues.set(studyUid, queue)
      queue.pending.push({ ...instance, resolve, reject })
      if (!queue.running) void this.run(studyUid, queue)
    })
  }

  private async run(studyUid: string, queue: Queue): Promise<void> {
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
      if (this.queues.get(studyUid) === queue) this.queues.delete(studyUid)
    }
  }

  private async commit(studyUid: string, batch: Pending[]): Promise<void> {
    const { records, chunks, audit, log } = this.components
    const now = new Date().toISOString()
    const cached = this.aggregates.get(studyUid)
    let study = cached?.study ?? (await records.study(studyUid))
    const series = new Map<string, SeriesRecord | undefined>(cached?.series)
    const puts: IndexPut[] = []
    for (const { record, studyAttributes, seriesAttributes, studySequences, seriesSequences, modality } of batch) {
      if (!series.has(record.seriesUid)) series.set(record.seriesUid, await records.series(studyUid, record.seriesUid))
      const before = series.get(record.seriesUid)
      series.set(record.seriesUid, {
        studyUid,
        seriesUid: record.seriesUid,
        attributes: before?.attributes ?? seriesAttributes,
        sequences: before === undefined ? seriesSequences : (before.sequences ?? {}),
        instanceCount: (before?.instanceCount ?? 0) + 1,
        bytes: (before?.bytes ?? 0) + record.size,
        updatedAt: now
      })
      study = {
        studyUid,
        attributes: study?.attributes ?? studyAttributes,
        sequences: study === undefined ? studySequences : (study.sequences ?? {}),
        modalities: [...new Set([...(study?.modalities ?? []), ...(modality === undefined ? [] : [modality])])],
        seriesCount: (study?.seriesCount ?? 0) + (before === undefined ? 1 : 0),
        instanceCount: (study?.instanceCount ?? 0) + 1,
        bytes: (study?.bytes ?? 0) + record.size,
        createdAt: study?.createdAt ?? now,
        updatedAt: now
      }
      puts.push(records.put(`i!${record.sopUid}`, record), records.listing(studyUid, record.seriesUid, record.sopUid))
    }
    if (study === undefined) return
    for (const [seriesUid, record] of series) {
      if (record !== undefined && batch.some(entry => entry.record.seriesUid === seriesUid)) {
        puts.push(records.put(`r!${studyUid}!${seriesUid}`, record))
      }
    }
    puts.push(records.put(`s!${studyUid}`, study))
    const audits: AuditEntry[] = batch.map(({ record, actor }) => ({
      event: 'instancesTransferred',
      action: 'C',
      outcome: 0,
      actor,
      study: studyUid,
      series: record.seriesUid,
      instances: [record.sopUid],
      detail: 'stored'
    }))
    try {
      // Chunks, chunk locations, instances, aggregates and listings become visible together, or not at all.
      // The audit records are in the commit, durable with it: they go on to the audit log in commit order,
      // and the store is answered without waiting for that unsynced write (an append can wait on the file
      // system's journal: docs/PERFORMANCE.md has the figures). Were the write lost,
      // the restart appends the records again from the pack log (`recover`); were it to fail, the audit
      // log refuses every record after it, and with them the queries and retrievals it would record,
      // until a restart.
      await chunks.commit({
        chunks: batch.flatMap(entry => entry.chunks),
        puts,
        note: { audit: audits as unknown as Json },
        committed: ref => {
          for (const entry of audits) {
            audit.append({ ...entry, journal: ref }, { durable: false }).catch((error: unknown) => {
              log.error({ event: 'audit-write-failed', study: studyUid, err: error }, (error as Error).message)
            })
          }
        }
      })
      // Stored now, whatever follows: a lookup begun before this is stale (see Archive `lookup`).
      this.committed += batch.length
    } catch (error) {
      // The batch may or may not be on disk: read the aggregates back next time.
      this.aggregates.delete(studyUid)
      throw error
    }
    this.aggregates.delete(studyUid)
    const known = [...series].filter((entry): entry is [string, SeriesRecord] => entry[1] !== undefined)
    this.aggregates.set(studyUid, { study, series: new Map(known) })
    if (this.aggregates.size > AGGREGATES_CACHED) this.aggregates.delete(this.aggregates.keys().next().value as string)
  }
}
