/**
 * Yjs documents on disk: each accepted update is appended to LevelDB, sealed with the storage key (reports
 * hold patient text); past COMPACT_AFTER updates a document's log is replaced, in one batch, by a single
 * update holding its whole state (Y.encodeStateAsUpdate of the node's own document: merging untrusted
 * updates is never needed). Layout in the `collab` sublevel (SEQ zero-padded):
 *   v!DOCID!SEQ        a sealed update of a document in use (loaded since it was last let go of)
 *   u!DOCID!SEQ        a sealed update of a document at rest (let go of: a retired case; or written before v!)
 *   e!DOCID            `FIRST SPLIT NEXT`: the document's updates are keyed in [FIRST, SPLIT) under u! and in
 *                      [SPLIT, NEXT) under v! (a failed write may leave a gap)
 *   meta!exists        set once the `e!` keys of a store written before them were made
 * A site's year of history is at rest and its thousand live cases in use: these sit together on disk, so
 * loading them at start reads a few table files, not a block of each (LevelDB maps the table files it reads
 * into memory, and what a read touched stays in the node's RSS). A document loads by point reads, which
 * LevelDB's bloom filters keep to the table holding each key; a document at rest is moved in use when loaded
 * and back when let go of. Asking whether a document exists is one read (a reader joining a site asks it of
 * each of a thousand cases). An empty `e!` value (a store written before ranges) means everything is under u!:
 * that document is read with an iterator once, and moved in use. Figures: docs/PERFORMANCE.md, Scale.
 */
import type { AbstractSublevel } from 'abstract-level'
import type { StorageKey } from '../archive/sealing.ts'
import { type Database, SYNCED_WRITE } from '../store/database.ts'

export const COMPACT_AFTER = 200
const SEQ_DIGITS = 12

type BinarySublevel = AbstractSublevel<Database, string | Uint8Array, string, Uint8Array>
type Operation = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }
/** Where a document's updates are (see the layout above), and how many are stored. */
type Log = { first: number; split: number; next: number; count: number }

const AT_REST = 'u'
const IN_USE = 'v'
const updateKey = (part: string, docId: string, seq: number): string =>
  `${part}!${docId}!${String(seq).padStart(SEQ_DIGITS, '0')}`
const newLog = (): Log => ({ first: 0, split: 0, next: 0, count: 0 })
const seqsOf = (from: number, to: number): number[] =>
  Array.from({ length: Math.max(0, to - from) }, (_, at) => from + at)

/** The range in an `e!` value; undefined for the empty value of a store written before ranges. */
function rangeOf(value: Uint8Array): Omit<Log, 'count'> | undefined {
  const [first, split, next] = Buffer.from(value).toString('latin1').split(' ').map(Number)
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(split) || !Number.isSafeInteger(next)) return undefined
  return { first: first as number, split: split as number, next: next as number }
}

export class DocStore {
  private readonly level: BinarySublevel
  private readonly key: StorageKey
  private readonly logs = new Map<string, Log>()
  /** documents being moved at rest: loaded once that is done */
  private readonly moving = new Map<string, Promise<void>>()
  /** the `e!` keys made for a store written before them */
  private markers: Promise<void> | undefined
  /** operations waiting for this turn's batch */
  private pending: Array<{
    docId: string
    operations: Operation[]
    sync: boolean
    resolve: () => void
    reject: (error: Error) => void
  }> = []
  private flushing: Promise<void> = Promise.resolve()

  constructor(db: Database, key: StorageKey) {
    this.level = db.sublevel<string, Uint8Array>('collab', { valueEncoding: 'view' })
    this.key = key
  }

  /** Every document with something stored. */
  async docIds(): Promise<string[]> {
    this.markers ??= this.makeMarkers()
    await this.markers
    return (await this.level.keys({ gt: 'e!', lt: 'e"' }).all()).map(key => key.slice(2))
  }

  /** Whether anything of a document is stored. */
  async exists(docId: string): Promise<boolean> {
    const log = this.logs.get(docId)
    if (log !== undefined) return log.count > 0
    this.markers ??= this.makeMarkers()
    await this.markers
    const found = (await this.level.get(`e!${docId}`)) !== undefined
    // Not there: remembered, so asking again costs nothing (an append makes it there).
    if (!found && !this.logs.has(docId)) this.logs.set(docId, newLog())
    return found
  }

  /** A store written before the `e!` keys (everything under u!) gets them, once; one that has them keeps them. */
  private async makeMarkers(): Promise<void> {
    if ((await this.level.get('meta!exists')) !== undefined) return
    const ids = new Set<string>()
    for await (const key of this.level.keys({ gt: 'u!', lt: 'u"' })) ids.add(key.slice(2, key.lastIndexOf('!')))
    const batch = this.level.batch()
    const held = await this.level.getMany([...ids].map(docId => `e!${docId}`))
    for (const [at, docId] of [...ids].entries()) if (held[at] === undefined) batch.put(`e!${docId}`, new Uint8Array())
    batch.put('meta!exists', new Uint8Array())
    await batch.write(SYNCED_WRITE)
  }

  /** Deletes a document's stored updates (synced). */
  async remove(docId: string): Promise<void> {
    await this.flushing
    const batch = this.level.batch()
    for (const part of [AT_REST, IN_USE]) {
      for await (const key of this.level.keys({ gt: `${part}!${docId}!`, lt: `${part}!${docId}!~` })) batch.del(key)
    }
    batch.del(`e!${docId}`)
    await batch.write(SYNCED_WRITE)
    this.logs.set(docId, newLog())
  }

  /** The stored updates of a document, in the order they were accepted; a document at rest is moved in use. */
  async load(docId: string): Promise<Uint8Array[]> {
    const known = this.logs.get(docId)
    // Known to hold nothing (asked before, or removed): no read. A reader taking a site's worklist opens a
    // thousand new documents, each asked about first.
    if (known?.count === 0) return []
    await this.moving.get(docId)
    this.markers ??= this.makeMarkers()
    await this.markers
    const marker = await this.level.get(`e!${docId}`)
    if (marker === undefined) {
      this.logs.set(docId, known ?? newLog())
      return []
    }
    const range = rangeOf(marker)
    const found: Array<{ seq: number; atRest: boolean; sealed: Uint8Array }> = []
    if (range === undefined) {
      for (const part of [AT_REST, IN_USE]) {
        const keys = { gt: `${part}!${docId}!`, lt: `${part}!${docId}!~` }
        for await (const [key, sealed] of this.level.iterator(keys)) {
          found.push({ seq: Number(key.slice(key.lastIndexOf('!') + 1)), atRest: part === AT_REST, sealed })
        }
      }
      found.sort((a, b) => a.seq - b.seq)
    } else {
      const wanted = [
        ...seqsOf(range.first, range.split).map(seq => ({ seq, atRest: true })),
        ...seqsOf(Math.max(range.first, range.split), range.next).map(seq => ({ seq, atRest: false }))
      ]
      const values = await this.level.getMany(
        wanted.map(({ seq, atRest }) => updateKey(atRest ? AT_REST : IN_USE, docId, seq))
      )
      values.forEach((sealed, at) => {
        if (sealed !== undefined) found.push({ ...(wanted[at] as { seq: number; atRest: boolean }), sealed })
      })
    }
    const first = range?.first ?? found[0]?.seq ?? 0
    const next = Math.max(range?.next ?? (found.at(-1)?.seq ?? -1) + 1, known?.next ?? 0)
    const log = { first, split: first, next, count: found.length }
    this.logs.set(docId, log)
    // In use now: what was at rest moves (the range written with it, by the next batch).
    const moves: Operation[] = found
      .filter(({ atRest }) => atRest)
      .flatMap(
        ({ seq, sealed }) =>
          [
            { type: 'del', key: updateKey(AT_REST, docId, seq) },
            { type: 'put', key: updateKey(IN_USE, docId, seq), value: sealed }
          ] as const
      )
    if (moves.length > 0 || range === undefined) void this.queue(docId, moves, false).catch(() => {})
    return found.map(({ sealed }) => this.key.open(sealed, `collab:${docId}`))
  }

  /** A document let go of (no longer loaded) is moved at rest, away from those in use. */
  async putAtRest(docId: string): Promise<void> {
    const log = this.logs.get(docId)
    if (log === undefined || log.count === 0 || this.moving.has(docId)) return
    const move = (async () => {
      await this.flushing
      const seqs = seqsOf(Math.max(log.first, log.split), log.next)
      const values = await this.level.getMany(seqs.map(seq => updateKey(IN_USE, docId, seq)))
      const moves: Operation[] = []
      values.forEach((sealed, at) => {
        if (sealed === undefined) return
        moves.push(
          { type: 'del', key: updateKey(IN_USE, docId, seqs[at] as number) },
          { type: 'put', key: updateKey(AT_REST, docId, seqs[at] as number), value: sealed }
        )
      })
      log.split = Math.max(log.split, (seqs.at(-1) ?? log.split - 1) + 1)
      await this.queue(docId, moves, false)
    })()
    this.moving.set(docId, move)
    try {
      await move
    } finally {
      this.moving.delete(docId)
    }
  }

  /** Appends an update; `sync` makes it durable before the promise resolves (a user's acknowledged edit). */
  async append(docId: string, update: Uint8Array, sync: boolean): Promise<{ count: number }> {
    const log = this.logs.get(docId) ?? newLog()
    this.logs.set(docId, log)
    const seq = log.next++
    log.count++
    const sealed = this.key.seal(update, `collab:${docId}`)
    const count = log.count
    await this.queue(docId, [{ type: 'put', key: updateKey(IN_USE, docId, seq), value: sealed }], sync)
    return { count }
  }

  /** Operations for this turn's batch, which also writes the range of each document they touch. */
  private async queue(docId: string, operations: Operation[], sync: boolean): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.pending.push({ docId, operations, sync, resolve, reject })
      if (this.pending.length === 1)
        this.flushing = this.flushing.then(async () => {
          await this.flush()
        })
    })
  }

  /**
   * The operations of one turn go to LevelDB in one batch, synced if any of them must be (a sync costs the
   * same for one write as for a hundred): a reader taking a site's worklist writes a thousand small documents.
   */
  private async flush(): Promise<void> {
    await new Promise(resolve => setImmediate(resolve))
    const appends = this.pending
    this.pending = []
    const operations = appends.flatMap(append => append.operations)
    // Each document's range as it is now, after its updates (a range that covers more is harmless; less, not).
    for (const docId of new Set(appends.map(append => append.docId))) {
      const log = this.logs.get(docId)
      if (log !== undefined) operations.push({ type: 'put', key: `e!${docId}`, value: rangeValue(log) })
    }
    try {
      await this.level.batch(operations as never, { sync: appends.some(append => append.sync) } as object)
      for (const append of appends) append.resolve()
    } catch (error) {
      for (const append of appends) append.reject(error as Error)
    }
  }

  /** Replaces a document's log by one update holding its whole state (synced). */
  async compact(docId: string, state: Uint8Array): Promise<void> {
    await this.flushing
    const log = this.logs.get(docId) ?? newLog()
    this.logs.set(docId, log)
    const upTo = log.next
    const seq = log.next++
    const batch = this.level.batch()
    // The log's range, known since load, is deleted by key: no iterator through every level.
    for (const old of seqsOf(log.first, upTo)) {
      batch.del(updateKey(AT_REST, docId, old)).del(updateKey(IN_USE, docId, old))
    }
    batch.put(updateKey(IN_USE, docId, seq), this.key.seal(state, `collab:${docId}`))
    batch.put(`e!${docId}`, rangeValue({ first: seq, split: seq, next: log.next, count: 1 }))
    await batch.write(SYNCED_WRITE)
    // Appends batched from now on start the range here (one batched before starts it earlier: harmless).
    log.first = Math.max(log.first, seq)
    log.split = Math.max(log.split, seq)
    log.count = log.next - seq
  }
}

const rangeValue = (log: Log): Uint8Array => Buffer.from(`${log.first} ${log.split} ${log.next}`)
