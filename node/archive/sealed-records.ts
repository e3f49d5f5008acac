/**
 * JSON records in a sublevel of the node's database, each sealed under the node's storage key with associated
 * data naming its sublevel and key (like the archive's index records, so a record moved under another key does
 * not open), written synced: what the site keeps that must survive a crash and stay unreadable on disk (the HL7
 * outbox, the de-identification mappings).
 */
import { type BinarySublevel, type Database, SYNCED_WRITE } from '../store/database.ts'
import type { StorageKey } from './sealing.ts'

export class SealedRecords<T> {
  private readonly store: BinarySublevel
  private readonly sublevel: string
  private readonly key: StorageKey

  constructor(db: Database, sublevel: string, key: StorageKey) {
    this.store = db.sublevel<string, Uint8Array>(sublevel, { valueEncoding: 'view' })
    this.sublevel = sublevel
    this.key = key
  }

  /** Keeps `value` under `key` durably (fsync'd). */
  async put(key: string, value: T): Promise<void> {
    await this.store.put(key, this.key.seal(Buffer.from(JSON.stringify(value)), this.#data(key)), SYNCED_WRITE)
  }

  async get(key: string): Promise<T | undefined> {
    const sealed = await this.store.get(key)
    return sealed === undefined ? undefined : this.#opened(key, sealed)
  }

  /** Every record whose key is within the range given (all when none), in key order. */
  async all(range: { gt?: string; lt?: string } = {}): Promise<T[]> {
    const records: T[] = []
    for await (const record of this.entries(range)) records.push(record)
    return records
  }

  /** Every record whose key is within the range given (all when none), in key order, one at a time. */
  async *entries(range: { gt?: string; lt?: string } = {}): AsyncGenerator<T> {
    for await (const [key, sealed] of this.store.iterator(range)) yield this.#opened(key, sealed)
  }

  #data(key: string): string {
    return `${this.sublevel}:${key}`
  }

  #opened(key: string, sealed: Uint8Array): T {
    return JSON.parse(this.key.open(sealed, this.#data(key)).toString('utf8')) as T
  }
}
