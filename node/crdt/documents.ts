/**
 * The node's Yjs documents: loaded from disk on first use (a node holds the documents of its live cases, not
 * every document it ever had), changed locally (persisted, synced to disk, before the change is
 * acknowledged) or by a peer's accepted update (persisted), and announced to listeners (the sync service
 * sends them on; the worklist and reports re-read themselves). Each open document's state hash (what the sync
 * digests compare) is kept and renewed when it changes.
 */
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import * as Y from 'yjs'
import { STATE_HASH_BYTES } from '../../protocol/collab/sync.ts'
import { COMPACT_AFTER, type DocStore } from './store.ts'

export type UpdateOrigin = { kind: 'local' } | { kind: 'peer'; peerId: string }
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
  /** documents let go of, being moved at rest */
  private readonly resting = new Set<Promise<void>>()
  /** state hashes of open documents, dropped when they change */
  private readonly hashes = new Map<string, Uint8Array>()

  constructor(store: DocStore, log: Logger) {
    this.store = store
    this.log = log
  }

  /** Every document stored on disk. */
  async storedIds(): Promise<string[]> {
    return await this.store.docIds()
  }

  /** The documents open now. */
  ids(): string[] {
    return [...this.docs.keys()]
  }

  get(docId: string): Y.Doc | undefined {
    return this.docs.get(docId)
  }

  isOpen(docId: string): boolean {
    return this.docs.has(docId)
  }

  /** Whether a document is open or has something stored. */
  async exists(docId: string): Promise<boolean> {
    return this.docs.has(docId) || (await this.store.exists(docId))
  }

  /**
   * Closes a document (its updates are on disk, moved at rest, away from the documents in use: store.ts):
   * opened again from disk when next asked for.
   */
  unload(docId: string): void {
    const doc = this.docs.get(docId)
    if (doc === undefined) return
    const write = this.writes.get(docId) ?? Promise.resolve()
    this.docs.delete(docId)
    this.hashes.delete(docId)
    const resting: Promise<void> = write
      .then(async () => {
        if (this.docs.has(docId) || this.opening.has(docId)) return
        doc.destroy()
        await this.store.putAtRest(docId)
      })
      .catch((error: unknown) => {
        this.log.warn({ err: error, doc: docId }, 'could not move a document at rest; it stays with those in use')
      })
      .finally(() => {
        this.resting.delete(resting)
      })
    this.resting.add(resting)
  }

  /** Deletes a document, on disk too (the worklist of an earlier radmesh, once carried over). */
  async remove(docId: string): Promise<void> {
    await this.writes.get(docId)
    this.docs.get(docId)?.destroy()
    this.docs.delete(docId)
    this.hashes.delete(docId)
    await this.store.remove(docId)
  }

  /**
   * What a document holds, in 16 bytes: the SHA-256 of its state vector and delete set, both in a canonical
   * order, so two nodes holding the same document have the same hash whatever order its updates came in.
   * (A deletion does not move a state vector: the delete set is needed too.)
   */
  stateHash(docId: string, doc: Y.Doc): Uint8Array {
    let hash = this.hashes.get(docId)
    if (hash !== undefined) return hash
    const sha = createHash('sha256')
    const clients = [...Y.decodeStateVector(Y.encodeStateVector(doc))].sort((a, b) => a[0] - b[0])
    for (const [client, clock] of clients) sha.update(`${client}:${clock};`)
    sha.update('|')
    const deletes = [...Y.createDeleteSetFromStructStore(doc.store).clients].sort((a, b) => a[0] - b[0])
    for (const [client, ranges] of deletes) {
      sha.update(`${client}:`)
      for (const range of ranges) sha.update(`${range.clock}+${range.len},`)
    }
    hash = sha.digest().subarray(0, STATE_HASH_BYTES)
    this.hashes.set(docId, hash)
    return hash
  }

  async open(docId: string): Promise<Y.Doc> {
    const doc = this.docs.get(docId)
    if (doc !== undefined) return doc
    let opening = this.opening.get(docId)
    if (opening === undefined) {
      opening = this.load(docId)
      this.opening.set(docId, opening)
    }
    return await opening
  }

  private async load(docId: string): Promise<Y.Doc> {
    // Named by its id: a Y.Doc makes itself a random guid otherwise (one system call each, for a thousand cases).
    const doc = new Y.Doc({ guid: docId })
    const updates = await this.store.load(docId)
    doc.transact(() => {
      for (const update of updates) Y.applyUpdate(doc, update, LOADING)
    }, LOADING)
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      this.persistAndAnnounce(docId, doc, update, origin)
    })
    this.docs.set(docId, doc)
    this.opening.delete(docId)
    return doc
  }

  private persistAndAnnounce(docId: string, doc: Y.Doc, update: Uint8Array, origin: unknown): void {
    if (origin === LOADING) return
    this.hashes.delete(docId)
    const from = (origin as UpdateOrigin | null)?.kind === 'peer' ? (origin as UpdateOrigin) : LOCAL
    const write = (this.writes.get(docId) ?? Promise.resolve())
      .then(async () => {
        const { count } = await this.store.append(docId, update, from.kind === 'local')
        if (count > COMPACT_AFTER) await this.store.compact(docId, Y.encodeStateAsUpdate(doc))
      })
      .catch(error => {
        this.log.error({ err: error, doc: docId }, 'could not persist a document update')
      })
    this.writes.set(docId, write)
    for (const listener of this.listeners) listener(docId, update, from)
  }

  /** A local change, made in one transaction; resolves once it is durable on disk. */
  async change(docId: string, change: (doc: Y.Doc) => void): Promise<void> {
    const doc = await this.open(docId)
    doc.transact(() => {
      change(doc)
    }, LOCAL)
    await this.flushed(docId)
  }

  /**
   * Applies an update made by this node's own user elsewhere (the viewer), already validated; durable when it
   * resolves.
   */
  async applyLocal(docId: string, update: Uint8Array): Promise<void> {
    const doc = await this.open(docId)
    Y.applyUpdate(doc, update, LOCAL)
    await this.flushed(docId)
  }

  /** Applies an update a peer sent, already validated. */
  async applyRemote(docId: string, update: Uint8Array, peerId: string): Promise<void> {
    const doc = await this.open(docId)
    Y.applyUpdate(doc, update, { kind: 'peer', peerId } satisfies UpdateOrigin)
  }

  /**
   * Whether an update made only of these deletions would change nothing here. A step 2 always carries the
   * sender's whole delete set (deletions do not move a state vector), so most resync answers are this.
   */
  knowsOnly(docId: string, deletes: Array<{ client: number; clock: number; length: number }>): boolean {
    const doc = this.docs.get(docId)
    if (doc === undefined) return deletes.length === 0
    const known = Y.createDeleteSetFromStructStore(doc.store).clients
    return deletes.every(({ client, clock, length }) =>
      (known.get(client) ?? []).some(range => range.clock <= clock && clock + length <= range.clock + range.len)
    )
  }

  /** Waits until every update of the document so far is on disk. */
  async flushed(docId: string): Promise<void> {
    await this.writes.get(docId)
  }

  onUpdate(listener: UpdateListener): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.writes.values()])
    await Promise.all([...this.resting])
    for (const doc of this.docs.values()) doc.destroy()
  }
}
