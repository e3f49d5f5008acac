/**
 * The archive's index records, kept in the `archive` sublevel. Values hold patient data, so they are sealed
 * with the storage key like the chunks; keys are UIDs:
 *   i!SOP                     instance record
 *   s!STUDY                   study record (patient and study attributes, counts, modalities)
 *   r!STUDY!SERIES            series record
 *   m!STUDY!SERIES!SOP        listing key (empty value)
 *
 * Records are written only through the pack log's commits (see commit.ts); every read waits until the index
 * holds every commit made durable so far.
 */
import type { AttributeValue, PixelDataLocation, SequenceItems } from '../dicom/part10.ts'
import type { BinarySublevel, Database } from '../store/database.ts'
import type { IndexPut } from './pack/index.ts'
import type { StorageKey } from './sealing.ts'

export type Attributes = Record<string, AttributeValue>
/** The indexed sequences of a level (dictionary.ts INDEXED_SEQUENCES) by 8-hex tag; absent in older records. */
export type Sequences = Record<string, SequenceItems>

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

export interface SeriesRecord {
  studyUid: string
  seriesUid: string
  attributes: Attributes
  sequences?: Sequences
  instanceCount: number
  bytes: number
  updatedAt: string
}

export interface StudyRecord {
  studyUid: string
  attributes: Attributes
  sequences?: Sequences
  modalities: string[]
  seriesCount: number
  instanceCount: number
  bytes: number
  createdAt: string
  updatedAt: string
}

/** The archive's sublevel, named in the pack log's commits. */
const ARCHIVE_SUBLEVEL = 'archive'

export interface RecordIndexComponents {
  db: Database
  key: StorageKey
  /** resolves once the index holds every commit made durable so far */
  indexed(): Promise<void>
}

export class RecordIndex {
  private readonly store: BinarySublevel
  private readonly key: StorageKey
  private readonly indexed: () => Promise<void>

  constructor(components: RecordIndexComponents) {
    this.store = components.db.sublevel<string, Uint8Array>(ARCHIVE_SUBLEVEL, { valueEncoding: 'view' })
    this.key = components.key
    this.indexed = components.indexed
  }

  /** The record under `key`, opened. */
  async get<T>(key: string): Promise<T | undefined> {
    await this.indexed()
    const sealed = await this.store.get(key)
    if (sealed === undefined) return undefined
    return JSON.parse(this.key.open(sealed, `index:${key}`).toString('utf8')) as T
  }

  /** The put that makes `value` the record under `key`, sealed, for a commit. */
  put(key: string, value: unknown): IndexPut {
    return { sublevel: ARCHIVE_SUBLEVEL, key, value: this.key.seal(Buffer.from(JSON.stringify(value)), `index:${key}`) }
  }

  /** The listing key of an instance, for a commit. */
  listing(studyUid: string, seriesUid: string, sopUid: string): IndexPut {
    return { sublevel: ARCHIVE_SUBLEVEL, key: `m!${studyUid}!${seriesUid}!${sopUid}`, value: new Uint8Array() }
  }

  /** Keys that start with `prefix` (which ends in '!'), in order. */
  async *keys(prefix: string): AsyncGenerator<string> {
    await this.indexed()
    yield* this.store.keys({ gt: prefix, lt: `${prefix.slice(0, -1)}"` })
  }

  async instance(sopUid: string): Promise<InstanceRecord | undefined> {
    return await this.get<InstanceRecord>(`i!${sopUid}`)
  }

  async study(studyUid: string): Promise<StudyRecord | undefined> {
    return await this.get<StudyRecord>(`s!${studyUid}`)
  }

  async series(studyUid: string, seriesUid: string): Promise<SeriesRecord | undefined> {
    return await this.get<SeriesRecord>(`r!${studyUid}!${seriesUid}`)
  }

  async *studies(): AsyncGenerator<StudyRecord> {
    for await (const key of this.keys('s!')) {
      const study = await this.get<StudyRecord>(key)
      if (study !== undefined) yield study
    }
  }

  async *seriesOf(studyUid: string): AsyncGenerator<SeriesRecord> {
    for await (const key of this.keys(`r!${studyUid}!`)) {
      const series = await this.get<SeriesRecord>(key)
      if (series !== undefined) yield series
    }
  }

  /** Instances of a study (or one series), in UID order. */
  async *instancesOf(studyUid: string, seriesUid?: string): AsyncGenerator<InstanceRecord> {
    const prefix = seriesUid === undefined ? `m!${studyUid}!` : `m!${studyUid}!${seriesUid}!`
    for await (const key of this.keys(prefix)) {
      const instance = await this.instance(key.slice(key.lastIndexOf('!') + 1))
      if (instance !== undefined) yield instance
    }
  }
}
