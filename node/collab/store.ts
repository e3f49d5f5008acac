/**
 * Yjs documents on disk: each accepted update is appended to LevelDB, sealed with the storage key (reports
 * hold patient text); past COMPACT_AFTER updates a document's log is replaced, in one batch, by a single
 * update holding its whole state (Y.encodeStateAsUpdate of the node's own document: merging untrusted
 * updates is never needed). Layout in the `collab` sublevel: `u!DOCID!SEQ` (SEQ zero-padded) -> sealed update.
 */
import type { AbstractSublevel } from 'abstract-level'
import type { StorageKey } from '../archive/sealing.ts'
import { type Database, SYNCED_WRITE } from '../store/database.ts'

export const COMPACT_AFTER = 200
const SEQ_DIGITS = 12

type BinarySublevel = AbstractSublevel<Database, string | Uint8Array, string, Uint8Array>

const updateKey = (docId: string, seq: number): string => `u!${docId}!${String(seq).padStart(SEQ_DIGITS, '0')}`

export class DocStore {
  private readonly level: BinarySublevel
  private readonly key: StorageKey
  /** the next sequence number and the number of stored updates, per document */
  private readonly logs = new Map<string, { next: number, count: number }>()

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

  /** The stored updates of a document, in the order they were accepted. */
  async load (docId: string): Promise<Uint8Array[]> {
    const updates: Uint8Array[] = []
    let next = 0
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
    log.count++
    await this.level.put(updateKey(docId, seq), this.key.seal(update, `collab:${docId}`), { sync } as object)
    return { count: log.count }
  }

  /** Replaces a document's log by one update holding its whole state (synced). */
  async compact (docId: string, state: Uint8Array): Promise<void> {
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
