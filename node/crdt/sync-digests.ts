/**
 * What differs between this node's documents and a member's, found by digests and inventories (sync.ts): the
 * digest of the live documents shared with a member, the inventory (each document with its state hash) a member
 * whose digest differs answers with, and the step 1s asking for what this node lacks or holds in another state.
 */
import type { Logger } from 'pino'
import * as Y from 'yjs'
import {
  decodeDigest,
  decodeInventory,
  DIGEST_ANSWER_INTERVAL_MS,
  encodeDigest,
  encodeInventory,
  type InventoryEntry,
  SYNC_MESSAGE
} from '../../protocol/collab/sync.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { Documents } from './documents.ts'
import type { UpdateInspector } from './inspect.ts'
import { AnswerLimit, digestOf, InventoryPages, inventoryPages } from './inventory.ts'
import type { Channel } from './sync-channel.ts'
import type { SyncPolicy } from './sync-policy.ts'

/** The state vector of a document this node does not have. */
const EMPTY_STATE_VECTOR = Y.encodeStateVector(new Map())
/** Documents of an inventory read from disk at once before their step 1s go out. */
const PREPARED_AT_ONCE = 64

/** What of the sync service's options (sync.ts) the comparison uses. */
export interface DigestOptions {
  registry: MembershipRegistry
  documents: Documents
  inspector: UpdateInspector
  policy: SyncPolicy
  log: Logger
}

export class Digests {
  private readonly o: DigestOptions
  private readonly channelTo: (peer: string) => Channel
  /** a member's digest or first inventory is answered at most once a second */
  private readonly digestAnswers = new AnswerLimit(DIGEST_ANSWER_INTERVAL_MS)
  /** inventory pages of a member gathered until its last one */
  private readonly inventories = new InventoryPages()

  constructor(options: DigestOptions, channelTo: (peer: string) => Channel) {
    this.o = options
    this.channelTo = channelTo
  }

  /** Cancels the digests waiting to go out. */
  stop(): void {
    this.digestAnswers.clear()
  }

  /** The live documents shared with a member, with their state hashes, in id order. */
  async inventoryFor(peer: string): Promise<InventoryEntry[]> {
    const entries: InventoryEntry[] = []
    for (const docId of this.o.policy.sharedWith(peer).sort()) {
      const doc = this.o.documents.get(docId) ?? (await this.o.documents.open(docId))
      entries.push({ docId, stateHash: this.o.documents.stateHash(docId, doc) })
    }
    return entries
  }

  sendDigest(peer: string): void {
    if (!this.o.registry.isMember(peer)) return
    void (async () => {
      const entries = await this.inventoryFor(peer)
      const payload = encodeDigest({ count: entries.length, hash: digestOf(entries) })
      this.channelTo(peer).send({ type: SYNC_MESSAGE.digest, docId: '', payload })
      this.o.log.debug({ event: 'sync-digest-sent', peer, documents: entries.length }, 'sent a sync digest')
    })().catch(error => {
      this.o.log.warn({ err: error, peer }, 'could not send a sync digest')
    })
  }

  private sendInventory(peer: string, entries: InventoryEntry[], answer: boolean): void {
    const channel = this.channelTo(peer)
    for (const page of inventoryPages(entries, answer))
      channel.send({ type: SYNC_MESSAGE.inventory, docId: '', payload: encodeInventory(page) })
  }

  async receiveDigest(peer: string, payload: Uint8Array): Promise<void> {
    const digest = decodeDigest(payload)
    const mine = await this.inventoryFor(peer)
    const hash = digestOf(mine)
    const same = digest.count === mine.length && Buffer.from(digest.hash).equals(hash)
    const answered = !same && this.digestAnswers.take(peer)
    this.o.log.debug({ event: 'sync-digest-received', peer, documents: digest.count, same, answered }, 'a digest')
    if (answered) this.sendInventory(peer, mine, false)
    // Answered a moment ago: this node's own digest goes once it may answer again, so the member answers it.
    else if (!same) this.digestAnswers.later(peer, () => this.sendDigest(peer))
  }

  async receiveInventory(peer: string, payload: Uint8Array): Promise<void> {
    const gathered = this.inventories.gather(peer, decodeInventory(payload))
    if (gathered === undefined) return
    const { documents, policy } = this.o
    const mine = await this.inventoryFor(peer)
    const myHashes = new Map(mine.map(entry => [entry.docId, entry.stateHash]))
    // A first inventory is answered with this node's own, so the member asks for what it lacks in turn.
    if (!gathered.answer && this.digestAnswers.take(peer)) this.sendInventory(peer, mine, true)
    // What this node lacks, or holds in another state: asked for, PREPARED_AT_ONCE documents read at once (their
    // step 1s go out while the next are read; a new reader lacks a site's thousand).
    const lacking = gathered.entries.filter(({ docId, stateHash }) => {
      const held = myHashes.get(docId)
      return held === undefined || !Buffer.from(held).equals(stateHash)
    })
    if (lacking.length > 0) this.o.inspector.warm()
    const channel = this.channelTo(peer)
    for (let at = 0; at < lacking.length; at += PREPARED_AT_ONCE) {
      const page = lacking.slice(at, at + PREPARED_AT_ONCE)
      await Promise.all(
        page.map(async ({ docId }) => {
          await policy.prepare?.(docId)
          await documents.exists(docId)
        })
      )
      for (const { docId, stateHash } of page) {
        if (!policy.mayReceive(docId, peer)) continue
        const doc = documents.get(docId) ?? ((await documents.exists(docId)) ? await documents.open(docId) : undefined)
        if (doc !== undefined && Buffer.from(documents.stateHash(docId, doc)).equals(stateHash)) continue
        channel.send({
          type: SYNC_MESSAGE.step1,
          docId,
          payload: doc === undefined ? EMPTY_STATE_VECTOR : Y.encodeStateVector(doc)
        })
      }
    }
    this.o.log.debug(
      {
        event: 'sync-inventory-received',
        peer,
        documents: gathered.entries.length,
        answer: gathered.answer,
        lacking: lacking.length
      },
      'an inventory'
    )
  }
}
