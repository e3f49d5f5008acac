/**
 * Every case this node has seen, in LevelDB: what its records say (its `CaseState`) and when it last changed
 * here, so that a year of closed cases is queried from disk and never held in memory or synced.
 *
 * A case is *live* while it is open, or for LIVE_AFTER_CLOSE_MS after it last changed (an addendum, a late
 * co-signature): live cases are loaded when the node starts and kept in step with the members they concern;
 * the others stay on disk, and come back to life when a change reaches them. Values are sealed with the
 * storage key like the rest of HOME. Layout in the `cases` sublevel:
 *   s!CASEID                  the case (sealed JSON: state and changedAt)
 *   t!CREATEDAT!CASEID        listing by creation time (empty value)
 *   l!CASEID                  live (empty value)
 */
import type { AbstractSublevel } from 'abstract-level'
import type { StorageKey } from '../archive/sealing.ts'
import type { Database } from '../store/database.ts'
import type { CaseState, CaseStatus } from './cases.ts'

/** A closed case stays live (loaded, kept in step) this long after its last change. */
export const LIVE_AFTER_CLOSE_MS = 7 * 24 * 3600_000

export interface IndexedCase {
  state: CaseState
  changedAt: string
}

export interface CaseQuery {
  status?: CaseStatus
  /** created at or after (ISO 8601) */
  from?: string
  /** created before (ISO 8601) */
  to?: string
  /** at most this many, newest first */
  limit: number
  /** the `next` of an earlier page */
  after?: string
  /** only cases this member is on (site, reader, consultant) */
  member?: string
}

type BinarySublevel = AbstractSublevel<Database, string | Uint8Array, string, Uint8Array>

export const isOpen = (state: CaseState): boolean => state.status === 'SCHEDULED' || state.status === 'IN PROGRESS'

export function isLive(state: CaseState, changedAt: string, now = Date.now()): boolean {
  return isOpen(state) || now - Date.parse(changedAt) < LIVE_AFTER_CLOSE_MS
}

export class CaseIndex {
  private readonly level: BinarySublevel
  private readonly key: StorageKey
  /** writes in order (a later state must not land before an earlier one), gathered into one batch per turn */
  private writing: Promise<void> = Promise.resolve()
  private batch: Array<{ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }> = []

  constructor(db: Database, key: StorageKey) {
    this.level = db.sublevel<string, Uint8Array>('cases', { valueEncoding: 'view' })
    this.key = key
  }

  private seal(entry: IndexedCase): Uint8Array {
    return this.key.seal(Buffer.from(JSON.stringify(entry)), `cases:${entry.state.caseId}`)
  }

  private open(caseId: string, sealed: Uint8Array): IndexedCase {
    return JSON.parse(this.key.open(sealed, `cases:${caseId}`).toString('utf8')) as IndexedCase
  }

  /** Records a case as it is now (written with the others of this turn; `flushed` waits for them). */
  put(state: CaseState, changedAt: string, live: boolean): void {
    const empty = new Uint8Array()
    this.queue(
      { type: 'put', key: `s!${state.caseId}`, value: this.seal({ state, changedAt }) },
      { type: 'put', key: `t!${state.createdAt}!${state.caseId}`, value: empty },
      live ? { type: 'put', key: `l!${state.caseId}`, value: empty } : { type: 'del', key: `l!${state.caseId}` }
    )
  }

  /** Marks a case no longer live (it stays indexed). */
  retire(caseId: string): void {
    this.queue({ type: 'del', key: `l!${caseId}` })
  }

  /** Operations wait for the end of this turn, and go to LevelDB in one batch, after the batches before. */
  private queue(...operations: CaseIndex['batch']): void {
    const first = this.batch.length === 0
    this.batch.push(...operations)
    if (!first) return
    this.writing = this.writing.then(async () => {
      await new Promise(resolve => setImmediate(resolve))
      const batch = this.batch
      this.batch = []
      await this.level.batch(batch as never)
    })
    this.writing.catch(() => {})
  }

  async flushed(): Promise<void> {
    await this.writing
  }

  async get(caseId: string): Promise<IndexedCase | undefined> {
    await this.flushed()
    return await this.read(caseId)
  }

  private async read(caseId: string): Promise<IndexedCase | undefined> {
    const sealed = await this.level.get(`s!${caseId}`)
    return sealed === undefined ? undefined : this.open(caseId, sealed)
  }

  /** The cases marked live. */
  async liveIds(): Promise<string[]> {
    await this.flushed()
    const ids: string[] = []
    for await (const key of this.level.keys({ gt: 'l!', lt: 'l"' })) ids.push(key.slice(2))
    return ids
  }

  /** Whether any case is indexed (an index made by this version of radmesh). */
  async isEmpty(): Promise<boolean> {
    await this.flushed()
    for await (const _ of this.level.keys({ gt: 's!', lt: 's"', limit: 1 })) return false
    return true
  }

  /**
   * Cases by creation time, newest first, filtered; a page of at most `limit`, and the cursor of the next
   * page. Reads the listing in creation order, so a filter that matches few cases reads more of it: a query
   * stops after MAX_SCANNED entries and says where to go on.
   */
  async query(query: CaseQuery): Promise<{ cases: IndexedCase[]; next: string | undefined }> {
    await this.flushed()
    const cases: IndexedCase[] = []
    const range = {
      gte: `t!${query.from ?? ''}`,
      lt: query.after !== undefined ? query.after : `t!${query.to ?? '\uffff'}`,
      reverse: true
    }
    let scanned = 0
    let last: string | undefined
    for await (const key of this.level.keys(range)) {
      last = key
      if (++scanned > MAX_SCANNED) return { cases, next: last }
      const caseId = key.slice(key.lastIndexOf('!') + 1)
      const entry = await this.read(caseId)
      if (entry === undefined) continue
      const { state } = entry
      if (query.status !== undefined && state.status !== query.status) continue
      const { member } = query
      if (
        member !== undefined &&
        state.site !== member &&
        !state.readers.includes(member) &&
        !state.consultants.includes(member)
      ) {
        continue
      }
      cases.push(entry)
      if (cases.length === query.limit) return { cases, next: key }
    }
    return { cases, next: undefined }
  }
}

/** Index entries one query reads at most before it answers with a cursor. */
export const MAX_SCANNED = 20_000
