/**
 * The node's Yjs documents: loaded from disk on first use, changed locally (persisted, synced to disk, before
 * the change is acknowledged) or by a peer's accepted update (persisted), and announced to listeners (the
 * sync service sends them on; the worklist and reports re-read themselves).
 */
import type { Logger } from 'pino'
import * as Y from 'yjs'
import { COMPACT_AFTER, type DocStore } from './store.ts'

export type UpdateOrigin = { kind: 'local' } | { kind: 'peer', peerId: string }
export type UpdateListener = (docId: string, update: Uint8Array, origin: UpdateOrigin) => void

const LOCAL: UpdateOrigin = { kind: 'local' }
/** Marks the updates a document is loaded from, which are neither persisted again nor announced. */
const LOADING = Symbol('loading')

export class Documents {
  private readonly store: DocStore
  private readonly log: Logger
  private readonly docs = new Map<string, Y.Doc>()
  private readonly opening = new Map<string, Promise<Y.Doc>>()
  private readonly listeners = new Set<UpdateListener>()
  /** persistence of each document, in order */
  private readonly writes = new Map<string, Promise<unknown>>()

  constructor (store: DocStore, log: Logger) {
    this.store = store
    this.log = log
  }

  /** Opens every document stored on disk (at start). */
  async openAll (): Promise<void> {
    for (const docId of await this.store.docIds()) await this.open(docId)
  }

  ids (): string[] {
    return [...this.docs.keys()]
  }

  get (docId: string): Y.Doc | undefined {
    return this.docs.get(docId)
  }

  async open (docId: string): Promise<Y.Doc> {
    const doc = this.docs.get(docId)
    if (doc !== undefined) return doc
    let opening = this.opening.get(docId)
    if (opening === undefined) {
      opening = this.load(docId)
      this.opening.set(docId, opening)
    }
    return await opening
  }

  private async load (docId: string): Promise<Y.Doc> {
    const doc = new Y.Doc()
    const updates = await this.store.load(docId)
    doc.transact(() => {
      for (const update of updates) Y.applyUpdate(doc, update, LOADING)
    }, LOADING)
    doc.on('update', (update: Uint8Array, origin: unknown) => { this.persistAndAnnounce(docId, doc, update, origin) })
    this.docs.set(docId, doc)
    this.opening.delete(docId)
    return doc
  }

  private persistAndAnnounce (docId: string, doc: Y.Doc, update: Uint8Array, origin: unknown): void {
    if (origin === LOADING) return
    const from = (origin as UpdateOrigin | null)?.kind === 'peer' ? origin as UpdateOrigin : LOCAL
    const write = (this.writes.get(docId) ?? Promise.resolve()).then(async () => {
      const { count } = await this.store.append(docId, update, from.kind === 'local')
      if (count > COMPACT_AFTER) await this.store.compact(docId, Y.encodeStateAsUpdate(doc))
    }).catch(error => { this.log.error({ err: error, doc: docId }, 'could not persist a document update') })
    this.writes.set(docId, write)
    for (const listener of this.listeners) listener(docId, update, from)
  }

  /** A local change, made in one transaction; resolves once it is durable on disk. */
  async change (docId: string, change: (doc: Y.Doc) => void): Promise<void> {
    const doc = await this.open(docId)
    doc.transact(() => { change(doc) }, LOCAL)
    await this.flushed(docId)
  }

  /** Applies an update made by this node's own user elsewhere (the viewer), already validated; durable when it resolves. */
  async applyLocal (docId: string, update: Uint8Array): Promise<void> {
    const doc = await this.open(docId)
    Y.applyUpdate(doc, update, LOCAL)
    await this.flushed(docId)
  }

  /** Applies an update a peer sent, already validated. */
  async applyRemote (docId: string, update: Uint8Array, peerId: string): Promise<void> {
    const doc = await this.open(docId)
    Y.applyUpdate(doc, update, { kind: 'peer', peerId } satisfies UpdateOrigin)
  }

  /**
   * Whether an update made only of these deletions would change nothing here. A step 2 always carries the
   * sender's whole delete set (deletions do not move a state vector), so most resync answers are this.
   */
  knowsOnly (docId: string, deletes: Array<{ client: number, clock: number, length: number }>): boolean {
    const doc = this.docs.get(docId)
    if (doc === undefined) return deletes.length === 0
    const known = Y.createDeleteSetFromStructStore(doc.store).clients
    return deletes.every(({ client, clock, length }) =>
      (known.get(client) ?? []).some(range => range.clock <= clock && clock + length <= range.clock + range.len))
  }

  /** Waits until every update of the document so far is on disk. */
  async flushed (docId: string): Promise<void> {
    await this.writes.get(docId)
  }

  onUpdate (listener: UpdateListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  async close (): Promise<void> {
    await Promise.all([...this.writes.values()])
    for (const doc of this.docs.values()) doc.destroy()
  }
}
