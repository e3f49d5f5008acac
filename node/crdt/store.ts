/**
 * Yjs documents on disk: each accepted update is appended to LevelDB, sealed with the storage key (reports
 * hold patient text); past COMPACT_AFTER updates a document's log is replaced, in one batch, by a single
 * update holding its whole state (Y.encodeStateAsUpdate of the node's own document: merging untrusted
 * updates is never needed). Layout in the `collab` sublevel: `u!DOCID!SEQ` (SEQ zero-padded) -> sealed update;
 * `e!DOCID` -> empty, for every document with something stored (asking whether a document exists is one
 * read, not an iterator: a reader joining a site asks it of each of a thousand cases); `meta!exists`, set
 * once the `e!` keys of a store written before them were made.
 */
import type { AbstractSublevel } from 'abstract-level'
import type { StorageKey } from '../archive/sealing.ts'
import { type Database, SYNCED_WRITE } from '../store/database.ts'

export const COMPACT_AFTER = 200
const SEQ_DIGITS = 12

type BinarySublevel = AbstractSublevel<Database, string | Uint8Array, string, Uint8Array>
type Operation = { type: 'put', key: string, value: Uint8Array }

const updateKey = (docId: string, seq: number): string => `u!${docId}!${String(seq).padStart(SEQ_DIGITS, '0')}`

export class DocStore {
  private readonly level: BinarySublevel
  private readonly key: StorageKey
  /** the next sequence number and the number of stored updates, per document */
  private readonly logs = new Map<string, { next: number, count: number }>()
  /** the `e!` keys made for a store written before them */
  private markers: Promise<void> | undefined
  /** appends waiting for this turn's batch */
  private pending: Array<{
    operations: Operation[], sync: boolean, resolve: () => void, reject: (error: Error) => void
  }> = []
  private flushing: Promise<void> = Promise.resolve()

  constructor (db: Database, key: StorageKey) {
    this.level = db.sublevel<string, Uint8Array>('collab', { valueEncoding: 'view' })
    this.key = key
  }

  /** Every document with something stored. */
  async docIds (): Promise<string[]> {
    const ids = new Set<string>()
    for await (const key of this.level.keys({ gt: 'u!', lt: 'u"' })) ids.add(key.slice(2, key.lastIndexOf('!')))
    return [...ids]
  }

  /** Whether anything of a document is stored. */
  async exists (docId: string): Promise<boolean> {
    const log = this.logs.get(docId)
    if (log !== undefined) return log.count > 0
    this.markers ??= this.makeMarkers()
    await this.markers
    const found = await this.level.get(`e!${docId}`) !== undefined
    // Not there: remembered, so asking again costs nothing (an append makes it there).
    if (!found && !this.logs.has(docId)) this.logs.set(docId, { next: 0, count: 0 })
    return found
  }

  /** A store written before the `e!` keys gets them, once. */
  private async makeMarkers (): Promise<void> {
    if (await this.level.get('meta!exists') !== undefined) return
    const batch = this.level.batch()
    for (const docId of await this.docIds()) batch.put(`e!${docId}`, new Uint8Array())
    batch.put('meta!exists', new Uint8Array())
    await batch.write(SYNCED_WRITE)
  }

  /** Deletes a document's stored updates (synced). */
  async remove (docId: string): Promise<void> {
    await this.flushing
    const batch = this.level.batch()
    for await (const key of this.level.keys({ gt: `u!${docId}!`, lt: `u!${docId}!~` })) batch.del(key)
    batch.del(`e!${docId}`)
    await batch.write(SYNCED_WRITE)
    this.logs.set(docId, { next: 0, count: 0 })
  }

  /** The stored updates of a document, in the order they were accepted. */
  async load (docId: string): Promise<Uint8Array[]> {
    const updates: Uint8Array[] = []
    let next = 0
    // Known to hold nothing (asked before, or removed): no read. A reader taking a site's worklist opens a
    // thousand new documents, each asked about first.
    if (this.logs.get(docId)?.count === 0 || !await this.exists(docId)) {
      this.logs.set(docId, this.logs.get(docId) ?? { next: 0, count: 0 })
      return updates
    }
    for await (const [key, sealed] of this.level.iterator({ gt: `u!${docId}!`, lt: `u!${docId}!~` })) {
      updates.push(this.key.open(sealed, `collab:${docId}`))
      next = Number(key.slice(key.lastIndexOf('!') + 1)) + 1
    }
    this.logs.set(docId, { next, count: updates.length })
    return updates
  }

  /** Appends an update; `sync` makes it durable before the promise resolves (a user's acknowledged edit). */
  async append (docId: string, update: Uint8Array, sync: boolean): Promise<{ count: number }> {
    const log = this.logs.get(docId) ?? { next: 0, count: 0 }
    this.logs.set(docId, log)
    const seq = log.next++
    const first = log.count === 0
    log.count++
    const sealed = this.key.seal(update, `collab:${docId}`)
    const operations: Operation[] = [{ type: 'put', key: updateKey(docId, seq), value: sealed }]
    if (first) operations.push({ type: 'put', key: `e!${docId}`, value: Buffer.alloc(0) })
    const count = log.count
    await new Promise<void>((resolve, reject) => {
      this.pending.push({ operations, sync, resolve, reject })
      if (this.pending.length === 1) this.flushing = this.flushing.then(async () => { await this.flush() })
    })
    return { count }
  }

  /**
   * The appends of one turn go to LevelDB in one batch, synced if any of them must be (a sync costs the same
   * for one write as for a hundred): a reader taking a site's worklist writes a thousand small documents.
   */
  private async flush (): Promise<void> {
    await new Promise(resolve => setImmediate(resolve))
    const appends = this.pending
    this.pending = []
    try {
      await this.level.batch(appends.flatMap(append => append.operations) as never,
        { sync: appends.some(append => append.sync) } as object)
      for (const append of appends) append.resolve()
    } catch (error) {
      for (const append of appends) append.reject(error as Error)
    }
  }

  /** Replaces a document's log by one update holding its whole state (synced). */
  async compact (docId: string, state: Uint8Array): Promise<void> {
    await this.flushing
    const log = this.logs.get(docId) ?? { next: 0, count: 0 }
    const upTo = log.next
    const seq = log.next++
    const batch = this.level.batch()
    for await (const key of this.level.keys({ gt: `u!${docId}!`, lt: updateKey(docId, upTo) })) batch.del(key)
    batch.put(updateKey(docId, seq), this.key.seal(state, `collab:${docId}`))
    await batch.write(SYNCED_WRITE)
    log.count = 1
  }
}
