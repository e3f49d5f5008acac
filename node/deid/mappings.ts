/**
 * The way back from a de-identified copy to its original, kept by the site that made it and nowhere else: one
 * record per copy in the `deid` sublevel of the node's database, keyed by the copy's Study Instance UID and
 * sealed under the node's storage key (like the archive's index records, with associated data naming the key,
 * so a record moved under another key does not open). It is never part of what the exchange sends; a report
 * written on the copy finds the original case through it.
 */
import type { StorageKey } from '../archive/sealing.ts'
import { SealedRecords } from '../archive/sealed-records.ts'
import type { Database } from '../store/database.ts'

export const DEID_SUBLEVEL = 'deid'

/** One copy's way back. */
export interface DeidMapping {
  copyStudyUid: string
  originalStudyUid: string
  /** every original UID the copy replaced, with the copy's UID for it */
  uidMap: Array<[original: string, copy: string]>
  /** days the copy's dates were moved by (0 unless the Modified Dates option was chosen) */
  dateOffsetDays: number
  /** ISO 8601 time the copy was made */
  madeAt: string
  /** the members the copy was shared with: its case's only readers (absent in mappings made before there were any) */
  sharedWith?: string[]
  /** the version of the copy's report (its FINAL signature and number of addenda) last joined to the original */
  returned?: string
}

export class DeidMappings {
  private readonly records: SealedRecords<DeidMapping>

  constructor(db: Database, key: StorageKey) {
    this.records = new SealedRecords(db, DEID_SUBLEVEL, key)
  }

  /** Keeps `mapping` durably (fsync'd) before the copy is shared. */
  async keep(mapping: DeidMapping): Promise<void> {
    await this.records.put(mapping.copyStudyUid, mapping)
  }

  /** The way back from the copy `copyStudyUid`, if this node made it. */
  async get(copyStudyUid: string): Promise<DeidMapping | undefined> {
    return await this.records.get(copyStudyUid)
  }

  /**
   * Every copy this node made of `originalStudyUid`, oldest first. Reads every mapping: a site makes a handful
   * of copies a week, not thousands; an index by original would be the next step if that changes.
   */
  async copiesOf(originalStudyUid: string): Promise<DeidMapping[]> {
    const found: DeidMapping[] = []
    for await (const mapping of this.records.entries()) {
      if (mapping.originalStudyUid === originalStudyUid) found.push(mapping)
    }
    return found.sort((a, b) => a.madeAt.localeCompare(b.madeAt))
  }
}
