/**
 * Keeps this node's Yjs documents in step with the members it shares them with, over `/radmesh/sync/2.0.0`
 * (protocol/collab/sync.ts). One outbound stream per connected member carries this node's messages; the
 * member's own stream carries its answers.
 *
 * Changes (local, or accepted from a peer) go out at once as updates to every connected member the document
 * is shared with, but the one it came from. What a dropped link missed is found by digests: when a member
 * connects, and every RESYNC_INTERVAL_MS to RESYNC_PEERS members in turn, this node sends the digest of the
 * live documents it shares with that member; a member whose own digest differs answers with its inventory
 * (each document with its state hash), this node with its own, and each side asks (step 1) for the documents
 * it lacks or holds in another state. So a node that nothing changed at sends a few small digests a round,
 * however many members the consortium has, and checks a document only with the members who share it.
 *
 * Nothing a peer sends touches a document before it was opened in the inspector (a worker) and passed the
 * document's own check (worklist.ts, reports.ts). A refused update is logged and, unless it may be an
 * honest race, counted against the sender; a malformed message resets the stream and is counted.
 *
 * What one member can make this node spend is bounded: a step 1 of a document is answered at most once a
 * second per member, and not while an answer to it is still queued; a digest or inventory at most once a
 * second; what is queued to a member is bounded in bytes; and a step 2 is at most MAX_STEP2_BYTES, within
 * every reader's read buffer (a larger difference goes as one message per author).
 */
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { createHash } from 'node:crypto'
import * as Y from 'yjs'
import {
  decodeDigest,
  decodeInventory,
  decodeSyncMessage,
  DIGEST_ANSWER_INTERVAL_MS,
  encodeDigest,
  encodeInventory,
  encodeSyncMessage,
  type InventoryEntry,
  MAX_INVENTORY_ENTRIES,
  MAX_STEP2_BYTES,
  MAX_SYNC_MESSAGE_BYTES,
  RESYNC_INTERVAL_MS,
  RESYNC_PEERS,
  STEP1_ANSWER_INTERVAL_MS,
  SYNC_MESSAGE,
  SYNC_MESSAGE_TIMEOUT_MS,
  SYNC_PROTOCOL,
  type SyncMessage
} from '../../protocol/collab/sync.ts'
import { MalformedMessageError } from '../../protocol/errors.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import { type PeerPenalties, refusalCodeOf } from '../p2p/penalties.ts'
import { type MessageStream, messageStream, ReadBufferOverflowError } from '../p2p/wire.ts'
import type { Documents, UpdateOrigin } from './documents.ts'
import { type InspectedUpdate, type UpdateInspector, UpdateRefusedError } from './inspect.ts'
import type { Presence, PresenceOrigin } from './presence.ts'

/** Messages queued to one member before its channel is dropped as too slow (the next resync catches up). */
const MAX_QUEUED_MESSAGES = 2_000
/** Bytes queued to one member before the same: several whole-document answers. */
const MAX_QUEUED_BYTES = 8 * MAX_STEP2_BYTES
/** Inventory entries taken from one member in one exchange (its pages are gathered until the last). */
const MAX_INVENTORY_TOTAL = 64 * MAX_INVENTORY_ENTRIES
const DIAL_TIMEOUT_MS = 10_000
/** The state vector of a document this node does not have. */
const EMPTY_STATE_VECTOR = Y.encodeStateVector(new Map())
/** Small messages to one member are written together, up to this many bytes at a time. */
const WRITE_BATCH_BYTES = 256 * 1024
/** A member's messages read ahead of the one being applied (their updates opened meanwhile). */
const IN_FLIGHT = 32
/** Bookkeeping per (member, document) is pruned past this many entries. */
const MAX_TRACKED = 4_096

/** The refusal codes of a document's own rules (worklist.ts, reports.ts, presence.ts). */
type RuleCode = 'refused-update' | 'refused-presence'

/** Why a channel ended. */
interface ChannelEnd {
  code: 'sync-stream-reset' | 'sync-queue-full' | 'sync-dial-failed' | 'sync-closed'
  reason: string
}

export interface SyncPolicy {
  /** The live documents this node shares with `peerId`: what a digest to it covers. */
  sharedWith (peerId: string): string[]
  /** Whether this node answers `peerId` about `docId` and sends it its updates. */
  mayShare (docId: string, peerId: string): boolean
  /** Whether this node takes updates of `docId` from `peerId` (their content is checked after). */
  mayReceive (docId: string, peerId: string): boolean
  /** Makes what the answers above need known (a closed case's document, loaded from disk). */
  prepare? (docId: string): Promise<void>
  /**
   * Calls back with documents whose members may have changed (a claim, a consult): this node then asks the
   * members it now shares them with for what it lacks, at once rather than at the next resync.
   */
  onSharingChange?: (listener: (docIds: string[]) => void) => () => void
  /** throws UpdateRefusedError when an update from a peer must not be applied */
  check (docId: string, update: Uint8Array, inspected: InspectedUpdate): Promise<void>
}

export interface SyncOptions {
  libp2p: Libp2p
  registry: MembershipRegistry
  penalties: PeerPenalties
  documents: Documents
  inspector: UpdateInspector
  policy: SyncPolicy
  log: Logger
  resyncIntervalMs?: number
  /** who has a report open where (message type 3); without it, presence messages are dropped */
  presence?: Presence
}

/** This node's outbound stream to one member: messages are written in order, one at a time. */
class Channel {
  readonly ready: Promise<boolean>
  /** messages waiting to be written; the writer takes all that wait at once (one write for many small ones) */
  private outbox: Array<{ bytes: Uint8Array, step2: string | undefined }> = []
  private writing = false
  private queued = 0
  private queuedBytes = 0
  private closed = false
  private lp: MessageStream | undefined
  private stream: Stream | undefined
  /** step 2s queued or being written, by document, with their size */
  private readonly step2Pending = new Map<string, number>()
  private readonly onEnd: (end: ChannelEnd) => void

  constructor (libp2p: Libp2p, peer: PeerId, onEnd: (end: ChannelEnd) => void, log: Logger) {
    this.onEnd = onEnd
    this.ready = (async () => {
      try {
        this.stream = await libp2p.dialProtocol(peer, SYNC_PROTOCOL, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
        // Nothing is read on this stream: the member answers on its own.
        this.lp = messageStream(this.stream, { maxDataLength: 0, maxBufferSize: 1, messageTimeoutMs: DIAL_TIMEOUT_MS })
        this.stream.addEventListener('close', (event: Event) => {
          const error = (event as Event & { error?: Error }).error
          if (error !== undefined) this.end('sync-stream-reset', error.message)
        })
        return true
      } catch (error) {
        log.debug({ event: 'sync-dial-failed', peer: peer.toString(), error: (error as Error).message }, 'could not open a sync stream')
        this.end('sync-dial-failed', (error as Error).message)
        return false
      }
    })()
  }

  /** Whether a step 2 of the document is queued or being written. */
  answering (docId: string): boolean {
    return this.step2Pending.has(docId)
  }

  send (message: SyncMessage): void {
    if (this.closed) return
    const bytes = encodeSyncMessage(message)
    this.queued++
    this.queuedBytes += bytes.byteLength
    if (this.queued > MAX_QUEUED_MESSAGES || this.queuedBytes > MAX_QUEUED_BYTES) {
      this.end('sync-queue-full', `the member took none of ${this.queued} messages, ${this.queuedBytes} bytes`)
      return
    }
    const step2 = message.type === SYNC_MESSAGE.step2 ? message.docId : undefined
    if (step2 !== undefined) this.step2Pending.set(step2, bytes.byteLength)
    this.outbox.push({ bytes, step2 })
    if (!this.writing) {
      this.writing = true
      this.write().catch((error: unknown) => { this.end('sync-stream-reset', (error as Error).message) }).finally(() => { this.writing = false })
    }
  }

  /** Writes what waits, in order: up to WRITE_BATCH_BYTES of messages at a time. */
  private async write (): Promise<void> {
    if (!await this.ready || this.lp === undefined) return
    while (this.outbox.length > 0 && !this.closed) {
      let bytes = 0
      let count = 0
      while (count < this.outbox.length && (count === 0 || bytes + (this.outbox[count]?.bytes.byteLength ?? 0) <= WRITE_BATCH_BYTES)) {
        bytes += (this.outbox[count] as { bytes: Uint8Array }).bytes.byteLength
        count++
      }
      const batch = this.outbox.splice(0, count)
      await this.lp.writeAll(batch.map(entry => entry.bytes))
      this.queued -= batch.length
      this.queuedBytes -= bytes
      for (const { step2 } of batch) if (step2 !== undefined) this.step2Pending.delete(step2)
    }
  }

  close (): void {
    this.end('sync-closed', 'closed by this node')
  }

  private end (code: ChannelEnd['code'], reason: string): void {
    if (this.closed) return
    this.closed = true
    this.stream?.abort(new Error(`sync channel closed: ${reason}`))
    this.onEnd({ code, reason })
  }
}

export class SyncService {
  private readonly o: SyncOptions
  private readonly channels = new Map<string, Channel>()
  /** when a step 1 of (member, document) was last answered */
  private readonly answered = new Map<string, number>()
  /** when a member's digest or first inventory was last answered */
  private readonly digestAnswered = new Map<string, number>()
  /** inventory pages of a member gathered until its last one */
  private readonly inventories = new Map<string, { answer: boolean, entries: InventoryEntry[] }>()
  /** where the round of digests goes on (members in turn) */
  private roundStart = 0
  /** remote updates are checked and applied one at a time, so each check sees the document it applies to */
  private applying: Promise<void> = Promise.resolve()
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined
  private unsubscribePresence: (() => void) | undefined
  private unsubscribeSharing: (() => void) | undefined

  constructor (options: SyncOptions) {
    this.o = options
  }

  async start (): Promise<void> {
    const { libp2p, documents } = this.o
    await libp2p.handle(SYNC_PROTOCOL, this.onStream, { maxInboundStreams: 4, maxOutboundStreams: 4 })
    this.unsubscribe = documents.onUpdate(this.relay)
    this.unsubscribePresence = this.o.presence?.onUpdate(this.relayPresence)
    this.unsubscribeSharing = this.o.policy.onSharingChange?.(docIds => { this.syncDocuments(docIds) })
    libp2p.addEventListener('peer:connect', this.onConnect)
    this.timer = setInterval(() => { this.round() }, this.o.resyncIntervalMs ?? RESYNC_INTERVAL_MS)
    this.timer.unref()
    for (const peer of this.connectedMembers()) this.sendDigest(peer)
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    this.unsubscribe?.()
    this.unsubscribePresence?.()
    this.unsubscribeSharing?.()
    this.o.libp2p.removeEventListener('peer:connect', this.onConnect)
    for (const channel of this.channels.values()) channel.close()
    await this.o.libp2p.unhandle(SYNC_PROTOCOL)
    await this.applying
  }

  /**
   * An update written by this node's own user in the viewer (a Yjs client the member bound to itself):
   * checked like a peer's, in the same queue, then applied as this node's own change (persisted, relayed).
   * Throws UpdateRefusedError with the reason when the document's rules refuse it.
   */
  async applyFromViewer (docId: string, update: Uint8Array): Promise<void> {
    const done = this.applying.then(async () => {
      const inspected = await this.o.inspector.inspect(update)
      await this.o.policy.check(docId, update, inspected)
      await this.o.documents.applyLocal(docId, update)
    })
    this.applying = done.catch(() => {})
    await done
  }

  /** Members this node has an open connection to now. */
  private connectedMembers (): string[] {
    const peers = new Set<string>()
    for (const connection of this.o.libp2p.getConnections()) {
      const peer = connection.remotePeer.toString()
      if (connection.status === 'open' && this.o.registry.isMember(peer)) peers.add(peer)
    }
    return [...peers]
  }

  private readonly onConnect = (event: CustomEvent<PeerId>): void => {
    this.sendDigest(event.detail.toString())
  }

  /** One round: a digest to each of the next RESYNC_PEERS connected members, in turn. */
  round (): void {
    const peers = this.connectedMembers().sort()
    if (peers.length === 0) return
    const count = Math.min(RESYNC_PEERS, peers.length)
    for (let i = 0; i < count; i++) this.sendDigest(peers[(this.roundStart + i) % peers.length] as string)
    this.roundStart = (this.roundStart + count) % peers.length
  }

  /** A digest to every connected member (tests; a node that wants to be in step with everyone at once). */
  syncAll (): void {
    for (const peer of this.connectedMembers()) this.sendDigest(peer)
  }

  /**
   * Sends these documents' state to every connected member they are shared with, by a digest: a member who
   * has just joined a case (or this node, just joined) gets what was written before, such as the bindings of
   * pages opened earlier, which the updates relayed from now on do not carry.
   */
  syncDocuments (docIds: string[]): void {
    const peers = new Set<string>()
    for (const peer of this.connectedMembers()) {
      if (docIds.some(docId => this.o.policy.mayShare(docId, peer))) peers.add(peer)
    }
    for (const peer of peers) this.sendDigest(peer)
  }

  /** The live documents shared with a member, with their state hashes, in id order. */
  private async inventoryFor (peer: string): Promise<InventoryEntry[]> {
    const entries: InventoryEntry[] = []
    for (const docId of this.o.policy.sharedWith(peer).sort()) {
      const doc = this.o.documents.get(docId) ?? await this.o.documents.open(docId)
      entries.push({ docId, stateHash: this.o.documents.stateHash(docId, doc) })
    }
    return entries
  }

  private static digestOf (entries: InventoryEntry[]): Uint8Array {
    const sha = createHash('sha256')
    for (const { docId, stateHash } of entries) sha.update(docId).update('\n').update(stateHash)
    return sha.digest()
  }

  private sendDigest (peer: string): void {
    if (!this.o.registry.isMember(peer)) return
    void (async () => {
      const entries = await this.inventoryFor(peer)
      const payload = encodeDigest({ count: entries.length, hash: SyncService.digestOf(entries) })
      this.channel(peer).send({ type: SYNC_MESSAGE.digest, docId: '', payload })
    })().catch(error => { this.o.log.warn({ err: error, peer }, 'could not send a sync digest') })
  }

  private sendInventory (peer: string, entries: InventoryEntry[], answer: boolean): void {
    const channel = this.channel(peer)
    for (let at = 0; at === 0 || at < entries.length; at += MAX_INVENTORY_ENTRIES) {
      const page = entries.slice(at, at + MAX_INVENTORY_ENTRIES)
      const last = at + MAX_INVENTORY_ENTRIES >= entries.length
      channel.send({ type: SYNC_MESSAGE.inventory, docId: '', payload: encodeInventory({ answer, last, entries: page }) })
    }
  }

  /** Whether a member's digest or first inventory may be answered now (at most once a second). */
  private answerable (peer: string): boolean {
    const now = Date.now()
    if (now - (this.digestAnswered.get(peer) ?? -Infinity) < DIGEST_ANSWER_INTERVAL_MS) return false
    prune(this.digestAnswered, at => now - at >= DIGEST_ANSWER_INTERVAL_MS)
    this.digestAnswered.set(peer, now)
    return true
  }

  private async receiveDigest (peer: string, payload: Uint8Array): Promise<void> {
    const digest = decodeDigest(payload)
    const mine = await this.inventoryFor(peer)
    const hash = SyncService.digestOf(mine)
    if (digest.count === mine.length && Buffer.from(digest.hash).equals(hash)) return
    if (!this.answerable(peer)) return
    this.sendInventory(peer, mine, false)
  }

  private async receiveInventory (peer: string, payload: Uint8Array): Promise<void> {
    const page = decodeInventory(payload)
    const gathered = this.inventories.get(peer) ?? { answer: page.answer, entries: [] }
    gathered.entries.push(...page.entries)
    if (gathered.entries.length > MAX_INVENTORY_TOTAL) {
      this.inventories.delete(peer)
      throw new MalformedMessageError(`an inventory of more than ${MAX_INVENTORY_TOTAL} documents`)
    }
    if (!page.last) {
      this.inventories.set(peer, gathered)
      return
    }
    this.inventories.delete(peer)
    const { documents, policy } = this.o
    const mine = await this.inventoryFor(peer)
    const myHashes = new Map(mine.map(entry => [entry.docId, entry.stateHash]))
    // What this node lacks, or holds in another state: asked for.
    const channel = this.channel(peer)
    for (const { docId, stateHash } of gathered.entries) {
      const held = myHashes.get(docId)
      if (held !== undefined && Buffer.from(held).equals(stateHash)) continue
      await policy.prepare?.(docId)
      if (!policy.mayReceive(docId, peer)) continue
      const doc = documents.get(docId) ?? (await documents.exists(docId) ? await documents.open(docId) : undefined)
      if (doc !== undefined && Buffer.from(documents.stateHash(docId, doc)).equals(stateHash)) continue
      channel.send({ type: SYNC_MESSAGE.step1, docId, payload: doc === undefined ? EMPTY_STATE_VECTOR : Y.encodeStateVector(doc) })
    }
    // A first inventory is answered with this node's own, so the member asks for what it lacks in turn.
    if (!gathered.answer && this.answerable(peer)) this.sendInventory(peer, mine, true)
  }

  private channel (peer: string): Channel {
    let channel = this.channels.get(peer)
    if (channel === undefined) {
      const created: Channel = new Channel(this.o.libp2p, peerIdFromString(peer), end => {
        if (this.channels.get(peer) === created) this.channels.delete(peer)
        this.channelEnded(peer, end)
      }, this.o.log)
      channel = created
      this.channels.set(peer, channel)
    }
    return channel
  }

  private channelEnded (peer: string, end: ChannelEnd): void {
    if (end.code === 'sync-queue-full') {
      this.o.log.warn({ event: 'sync-channel-dropped', code: end.code, peer, error: end.reason }, 'dropped a sync channel')
    }
  }

  /** Sends a change on to every connected member the document is shared with, except where it came from. */
  private readonly relay = (docId: string, update: Uint8Array, origin: UpdateOrigin): void => {
    const from = origin.kind === 'peer' ? origin.peerId : undefined
    for (const peer of this.connectedMembers()) {
      if (peer === from || !this.o.policy.mayShare(docId, peer)) continue
      this.channel(peer).send({ type: SYNC_MESSAGE.update, docId, payload: update })
    }
  }

  /**
   * This node's viewers' presence goes to the members the report is shared with. A peer's presence is not
   * passed on: each member sends its own, and a member checks that a state comes from the member it is bound to.
   */
  private readonly relayPresence = (docId: string, update: Uint8Array, origin: PresenceOrigin | 'timeout'): void => {
    if (origin === 'timeout' || origin.kind !== 'viewer') return
    for (const peer of this.connectedMembers()) {
      if (this.o.policy.mayShare(docId, peer)) this.channel(peer).send({ type: SYNC_MESSAGE.awareness, docId, payload: update })
    }
  }

  /**
   * A member's stream: its messages are applied one at a time, in order, while the next ones (up to
   * IN_FLIGHT) are read and their updates opened in the inspector meanwhile.
   */
  private readonly onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer.toString()
    const limits = { maxDataLength: MAX_SYNC_MESSAGE_BYTES, messageTimeoutMs: SYNC_MESSAGE_TIMEOUT_MS }
    const lp = messageStream(stream, limits)
    const inFlight = new Set<Promise<void>>()
    /** the first refusal a message of this stream met, which ends it */
    const failed: { error?: unknown } = {}
    const check = (): void => { if ('error' in failed) throw failed.error }
    try {
      for (;;) {
        check()
        if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight)
        check()
        const bytes = await lp.read()
        if (bytes === undefined) {
          await Promise.allSettled(inFlight)
          check()
          // The member closed its stream: close this side too, so the stream is gone on both.
          await stream.close().catch(() => {})
          return
        }
        const message = decodeSyncMessage(bytes)
        const changes = message.type === SYNC_MESSAGE.step2 || message.type === SYNC_MESSAGE.update
        const inspected = changes ? this.o.inspector.inspect(message.payload) : undefined
        inspected?.catch(() => {})
        const done = this.applying.then(async () => { await this.receive(peer, message, inspected) })
        this.applying = done.catch(() => {})
        const tracked: Promise<void> = done.catch((error: unknown) => {
          // This node's own failure (its store, a document) is no fault of the member's: the stream goes on.
          if (refusalCodeOf(error) !== undefined && !('error' in failed)) failed.error = error
          else this.o.log.error({ event: 'sync-receive-failed', peer, doc: message.docId, err: error }, 'could not take it')
        }).finally(() => { inFlight.delete(tracked) })
        inFlight.add(tracked)
      }
    } catch (error) {
      this.streamFailed(stream, peer, error)
    }
  }

  /** Every end of a member's sync stream but a clean one is logged with a code; what the member caused is counted. */
  private streamFailed (stream: Stream, peer: string, error: unknown): void {
    const { log, penalties } = this.o
    const message = (error as Error).message
    const code = refusalCodeOf(error)
    if (error instanceof ReadBufferOverflowError) {
      // Within the protocol's limit (a large step 2): the sender is told by the reset and holds that answer back.
      log.warn({ event: 'sync-stream-failed', code: 'sync-read-overflow', peer, bytes: error.length }, message)
    } else if (code !== undefined) {
      penalties.refuse(log, { peer, protocol: SYNC_PROTOCOL, code, event: 'sync-stream-refused', error: message })
    } else {
      log.info({ event: 'sync-stream-failed', code: 'sync-stream-failed', peer, error: message }, 'stream failed')
    }
    stream.abort(error as Error)
  }

  private async receive (peer: string, message: SyncMessage, inspecting?: Promise<InspectedUpdate>): Promise<void> {
    const { documents, policy, log } = this.o
    if (message.type === SYNC_MESSAGE.digest) {
      await this.receiveDigest(peer, message.payload)
      return
    }
    if (message.type === SYNC_MESSAGE.inventory) {
      await this.receiveInventory(peer, message.payload)
      return
    }
    await policy.prepare?.(message.docId)
    const allowed = message.type === SYNC_MESSAGE.step1 ? policy.mayShare(message.docId, peer) : policy.mayReceive(message.docId, peer)
    if (!allowed) {
      log.debug({ event: 'sync-not-shared', peer, doc: message.docId }, 'a member sent or asked about a document this node does not share with it')
      return
    }
    if (message.type === SYNC_MESSAGE.step1) {
      try {
        Y.decodeStateVector(message.payload)
      } catch {
        throw new MalformedMessageError('a sync step 1 whose state vector does not decode')
      }
      const key = `${peer} ${message.docId}`
      const now = Date.now()
      const recent = now - (this.answered.get(key) ?? -Infinity) < STEP1_ANSWER_INTERVAL_MS
      if (recent || this.channels.get(peer)?.answering(message.docId) === true) {
        log.debug({ event: 'sync-step1-too-soon', peer, doc: message.docId }, 'answered less than a second ago')
        return
      }
      prune(this.answered, at => now - at >= STEP1_ANSWER_INTERVAL_MS)
      this.answered.set(key, now)
      const doc = await documents.open(message.docId)
      for (const part of step2Parts(doc, message.payload)) {
        if (part.byteLength > MAX_STEP2_BYTES) {
          const line = { event: 'sync-document-too-large', code: 'sync-document-too-large', doc: message.docId, bytes: part.byteLength }
          log.error(line, `one author's part of ${message.docId} is over the ${MAX_STEP2_BYTES} bytes a sync message holds; it is not sent`)
          continue
        }
        this.channel(peer).send({ type: SYNC_MESSAGE.step2, docId: message.docId, payload: part })
      }
      return
    }
    if (message.type === SYNC_MESSAGE.awareness) {
      if (this.o.presence === undefined || !policy.mayShare(message.docId, peer)) return
      try {
        await this.o.presence.apply(message.docId, message.payload, { kind: 'peer', peerId: peer })
      } catch (error) {
        if (!(error instanceof UpdateRefusedError)) throw error
        this.refused(peer, message.docId, 'refused-presence', 'presence-refused', error)
      }
      return
    }
    try {
      const inspected = await (inspecting ?? this.o.inspector.inspect(message.payload))
      if (inspected.items.length === 0 && inspected.otherStructs === 0 && documents.knowsOnly(message.docId, inspected.deletes)) return
      await policy.check(message.docId, message.payload, inspected)
      await documents.applyRemote(message.docId, message.payload, peer)
    } catch (error) {
      if (!(error instanceof UpdateRefusedError)) throw error
      this.refused(peer, message.docId, 'refused-update', 'sync-update-refused', error)
    }
  }

  /** A refusal the document's rules made: counted and logged when it cannot be honest, else only noted (debug). */
  private refused (peer: string, doc: string, code: RuleCode, event: string, error: UpdateRefusedError): void {
    const detail = { doc, reason: error.message }
    const weight = error.penalty
    if (weight > 0) {
      const protocol = SYNC_PROTOCOL
      this.o.penalties.refuse(this.o.log, { peer, protocol, code, weight, event, error: error.message, detail })
    } else {
      this.o.log.debug({ event, code, peer, penalty: 0, ...detail }, `held back (it may be honest): ${error.message}`)
    }
  }
}

/**
 * The difference a member with state vector `remote` lacks, in messages of at most MAX_STEP2_BYTES: whole
 * when it fits, else one update per author (Yjs client) holding that client's part and the delete set (each
 * applies on its own; Yjs waits for what one depends on). Nothing when the member lacks nothing.
 */
export function step2Parts (doc: Y.Doc, remote: Uint8Array): Uint8Array[] {
  const whole = Y.encodeStateAsUpdate(doc, remote)
  if (whole.byteLength <= 2) return []
  if (whole.byteLength <= MAX_STEP2_BYTES) return [whole]
  const theirs = Y.decodeStateVector(remote)
  const mine = Y.decodeStateVector(Y.encodeStateVector(doc))
  const parts: Uint8Array[] = []
  for (const [client, clock] of mine) {
    if (clock <= (theirs.get(client) ?? 0)) continue
    // Every other client at its end: what is left is this client's part.
    const others = new Map(mine)
    others.set(client, theirs.get(client) ?? 0)
    parts.push(Y.encodeStateAsUpdate(doc, Y.encodeStateVector(others)))
  }
  return parts
}

/** Deletes the entries `stale` says are done with, once a map has grown past MAX_TRACKED. */
function prune<V> (map: Map<string, V>, stale: (value: V) => boolean): void {
  if (map.size < MAX_TRACKED) return
  for (const [key, value] of map) if (stale(value)) map.delete(key)
}
