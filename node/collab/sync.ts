/**
 * Keeps this node's Yjs documents in step with the members it shares them with, over `/radmesh/sync/1.0.0`
 * (protocol/collab/sync.ts). One outbound stream per connected member carries this node's messages; the
 * member's own stream carries its answers. On connect and every RESYNC_INTERVAL_MS each side sends a step 1
 * for every document it shares with the other, and for a document whose members change (a claim, a
 * consult) at once; changes (local, or accepted from a peer) go out as updates to every member the document
 * is shared with but the one it came from.
 *
 * Nothing a peer sends touches a document before it was opened in the inspector (a worker) and passed the
 * document's own check (worklist.ts, reports.ts). A refused update is logged and, unless it may be an
 * honest race, counted against the sender; a malformed message resets the stream and is counted.
 *
 * What one member can make this node spend is bounded: a step 1 of a document is answered at most once a
 * second per member, and not while an answer to it is still queued; what is queued to a member is bounded
 * in bytes; and a step 2 larger than a member's read buffer that never reached it (its stream failed on the
 * way, issue 14) is logged and not sent to that member again for a backoff that doubles, so a document too
 * large for a member is not sent to it every resync.
 */
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import * as Y from 'yjs'
import {
  decodeSyncMessage,
  encodeSyncMessage,
  MAX_STEP2_BYTES,
  MAX_SYNC_MESSAGE_BYTES,
  RESYNC_INTERVAL_MS,
  STEP1_ANSWER_INTERVAL_MS,
  SYNC_MESSAGE,
  SYNC_MESSAGE_TIMEOUT_MS,
  SYNC_PROTOCOL,
  type SyncMessage
} from '../../protocol/collab/sync.ts'
import { MalformedMessageError } from '../../protocol/errors.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import { type PeerPenalties, refusalCodeOf } from '../p2p/penalties.ts'
import { type MessageStream, messageStream, READ_BUFFER_BYTES, ReadBufferOverflowError } from '../p2p/wire.ts'
import type { Documents, UpdateOrigin } from './documents.ts'
import { type InspectedUpdate, type UpdateInspector, UpdateRefusedError } from './inspect.ts'
import type { Presence, PresenceOrigin } from './presence.ts'

/** Messages queued to one member before its channel is dropped as too slow (the next resync catches up). */
const MAX_QUEUED_MESSAGES = 2_000
/** Bytes queued to one member before the same: two whole-document answers. */
const MAX_QUEUED_BYTES = 2 * MAX_STEP2_BYTES
const DIAL_TIMEOUT_MS = 10_000
/** A channel that fails this soon after a step 2 was written lost it too (its reader resets on seeing the length). */
const DELIVERY_WINDOW_MS = 10_000
/**
 * Only a step 2 larger than this is held back once lost: no reader with libp2p's 4 MiB read buffer can take it,
 * while a smaller one lost with a dropped link is simply sent again at the next step 1.
 */
const UNDELIVERABLE_BYTES = READ_BUFFER_BYTES
/** A step 2 that did not reach a member is not sent to it again for this long, doubling on each loss up to the max. */
export const UNDELIVERED_BACKOFF_MS = 30_000
export const UNDELIVERED_BACKOFF_MAX_MS = 10 * 60_000
/** Bookkeeping per (member, document) is pruned past this many entries. */
const MAX_TRACKED = 4_096

/** The refusal codes of a document's own rules (worklist.ts, reports.ts, presence.ts). */
type RuleCode = 'refused-update' | 'refused-presence'

/** Why a channel ended, and the step 2s that were lost with it. */
interface ChannelEnd {
  code: 'sync-stream-reset' | 'sync-queue-full' | 'sync-dial-failed' | 'sync-closed'
  reason: string
  undelivered: Array<{ docId: string, bytes: number }>
}

export interface SyncPolicy {
  /**
   * The documents this node shares with `peerId` now: all of them on connect (`everything`), and on the
   * periodic resync only those that may still change (so a year of closed cases costs nothing every 5 s).
   */
  sharedWith (peerId: string, everything: boolean): string[]
  mayShare (docId: string, peerId: string): boolean
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
  private writing: Promise<void> = Promise.resolve()
  private queued = 0
  private queuedBytes = 0
  private closed = false
  private lp: MessageStream | undefined
  private stream: Stream | undefined
  /** step 2s queued or being written, by document, with their size */
  private readonly step2Pending = new Map<string, number>()
  /** step 2s written, by document: when, and their size */
  private readonly step2Sent = new Map<string, { at: number, bytes: number }>()
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
    this.writing = this.writing.then(async () => {
      if (this.closed || !await this.ready || this.lp === undefined) return
      await this.lp.write(bytes)
      this.queued--
      this.queuedBytes -= bytes.byteLength
      if (step2 !== undefined) {
        this.step2Pending.delete(step2)
        const size = bytes.byteLength
        if (size > UNDELIVERABLE_BYTES) this.step2Sent.set(step2, { at: Date.now(), bytes: size })
      }
    }).catch((error: unknown) => { this.end('sync-stream-reset', (error as Error).message) })
  }

  close (): void {
    this.end('sync-closed', 'closed by this node')
  }

  private end (code: ChannelEnd['code'], reason: string): void {
    if (this.closed) return
    this.closed = true
    this.stream?.abort(new Error(`sync channel closed: ${reason}`))
    const since = Date.now() - DELIVERY_WINDOW_MS
    const lost = code === 'sync-closed' || code === 'sync-dial-failed'
      ? []
      : [
          ...[...this.step2Pending].map(([docId, bytes]) => ({ docId, bytes })),
          ...[...this.step2Sent].filter(([, sent]) => sent.at >= since).map(([docId, { bytes }]) => ({ docId, bytes }))
        ]
    this.onEnd({ code, reason, undelivered: lost.filter(({ bytes }) => bytes > UNDELIVERABLE_BYTES) })
  }
}

export class SyncService {
  private readonly o: SyncOptions
  private readonly channels = new Map<string, Channel>()
  /** when a step 1 of (member, document) was last answered */
  private readonly answered = new Map<string, number>()
  /** (member, document) whose step 2 was lost: not sent again until `until` */
  private readonly held = new Map<string, { delay: number, until: number }>()
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
    this.timer = setInterval(() => { this.syncAll() }, this.o.resyncIntervalMs ?? RESYNC_INTERVAL_MS)
    this.timer.unref()
    this.syncAll()
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
    this.syncPeer(event.detail.toString(), true)
  }

  /** Sends a step 1 for every shared document that may still change to every connected member. */
  syncAll (): void {
    for (const peer of this.connectedMembers()) this.syncPeer(peer, false)
  }

  /**
   * Sends a step 1 for each of these documents to every connected member it is shared with: a member who
   * has just joined a case (or this node, just joined) gets what was written before, such as the bindings
   * of pages opened earlier, which the updates relayed from now on do not carry.
   */
  syncDocuments (docIds: string[]): void {
    const peers = this.connectedMembers()
    for (const docId of docIds) {
      const to = peers.filter(peer => this.o.policy.mayShare(docId, peer))
      if (to.length === 0) continue
      void (async () => {
        const doc = await this.o.documents.open(docId)
        const stateVector = Y.encodeStateVector(doc)
        for (const peer of to) this.channel(peer).send({ type: SYNC_MESSAGE.step1, docId, payload: stateVector })
      })().catch(error => { this.o.log.warn({ err: error, doc: docId }, 'could not send a sync step 1 for a document whose members changed') })
    }
  }

  private syncPeer (peer: string, everything: boolean): void {
    if (!this.o.registry.isMember(peer)) return
    const docIds = this.o.policy.sharedWith(peer, everything)
    if (docIds.length === 0) return
    const channel = this.channel(peer)
    void (async () => {
      for (const docId of docIds) {
        const doc = await this.o.documents.open(docId)
        channel.send({ type: SYNC_MESSAGE.step1, docId, payload: Y.encodeStateVector(doc) })
      }
    })()
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

  /** A large step 2 lost with a channel is held back from that member, for longer each time it is lost again. */
  private channelEnded (peer: string, end: ChannelEnd): void {
    const now = Date.now()
    const { log } = this.o
    if (end.code === 'sync-queue-full') {
      log.warn({ event: 'sync-channel-dropped', code: end.code, peer, error: end.reason }, 'dropped a sync channel')
    }
    for (const { docId, bytes } of end.undelivered) {
      const key = `${peer} ${docId}`
      const previous = this.held.get(key)
      const again = previous !== undefined && now - previous.until < 2 * previous.delay
      const delay = again ? Math.min(2 * previous.delay, UNDELIVERED_BACKOFF_MAX_MS) : UNDELIVERED_BACKOFF_MS
      prune(this.held, entry => entry.until + 2 * entry.delay < now)
      this.held.set(key, { delay, until: now + delay })
      const line = { event: 'sync-step2-undelivered', code: 'sync-undelivered', peer, doc: docId, bytes }
      log.warn({ ...line, retryInMs: delay, cause: end.code, error: end.reason }, 'a sync answer was lost')
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

  private readonly onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer.toString()
    const limits = { maxDataLength: MAX_SYNC_MESSAGE_BYTES, messageTimeoutMs: SYNC_MESSAGE_TIMEOUT_MS }
    const lp = messageStream(stream, limits)
    try {
      for (;;) {
        const bytes = await lp.read()
        if (bytes === undefined) {
          // The member closed its stream: close this side too, so the stream is gone on both.
          await stream.close().catch(() => {})
          return
        }
        const message = decodeSyncMessage(bytes)
        const done = this.applying.then(async () => { await this.receive(peer, message) })
        this.applying = done.catch(() => {})
        try {
          await done
        } catch (error) {
          // This node's own failure (its store, a document) is no fault of the member's: the stream goes on.
          if (refusalCodeOf(error) !== undefined) throw error
          this.o.log.error({ event: 'sync-receive-failed', peer, doc: message.docId, err: error }, 'could not take it')
        }
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

  private async receive (peer: string, message: SyncMessage): Promise<void> {
    const { documents, policy, log } = this.o
    if (!policy.mayShare(message.docId, peer)) {
      log.debug({ event: 'sync-not-shared', peer, doc: message.docId }, 'a member asked about a document this node does not share with it')
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
      const held = this.held.get(key)
      if (held !== undefined && held.until > now) {
        log.debug({ event: 'sync-step1-held', peer, doc: message.docId, untilMs: held.until - now }, 'last answer lost')
        return
      }
      const recent = now - (this.answered.get(key) ?? -Infinity) < STEP1_ANSWER_INTERVAL_MS
      if (recent || this.channels.get(peer)?.answering(message.docId) === true) {
        log.debug({ event: 'sync-step1-too-soon', peer, doc: message.docId }, 'answered less than a second ago')
        return
      }
      prune(this.answered, at => now - at >= STEP1_ANSWER_INTERVAL_MS)
      this.answered.set(key, now)
      const doc = await documents.open(message.docId)
      const diff = Y.encodeStateAsUpdate(doc, message.payload)
      if (diff.byteLength <= 2) return
      if (diff.byteLength > MAX_STEP2_BYTES) {
        log.error({ event: 'sync-document-too-large', doc: message.docId, bytes: diff.byteLength }, 'a document is too large to send in one sync step')
        return
      }
      this.channel(peer).send({ type: SYNC_MESSAGE.step2, docId: message.docId, payload: diff })
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
      const inspected = await this.o.inspector.inspect(message.payload)
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

/** Deletes the entries `stale` says are done with, once a map has grown past MAX_TRACKED. */
function prune<V> (map: Map<string, V>, stale: (value: V) => boolean): void {
  if (map.size < MAX_TRACKED) return
  for (const [key, value] of map) if (stale(value)) map.delete(key)
}
