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
 */
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import * as Y from 'yjs'
import {
  decodeSyncMessage,
  encodeSyncMessage,
  MAX_STEP2_BYTES,
  MAX_SYNC_MESSAGE_BYTES,
  RESYNC_INTERVAL_MS,
  SYNC_MESSAGE,
  SYNC_PROTOCOL,
  type SyncMessage
} from '../../protocol/collab/sync.ts'
import { MalformedMessageError } from '../../protocol/errors.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { PeerPenalties } from '../p2p/penalties.ts'
import type { Documents, UpdateOrigin } from './documents.ts'
import { type InspectedUpdate, type UpdateInspector, UpdateRefusedError } from './inspect.ts'
import type { Presence, PresenceOrigin } from './presence.ts'

/** Messages queued to one member before its channel is dropped as too slow (the next resync catches up). */
const MAX_QUEUED_MESSAGES = 2_000
const DIAL_TIMEOUT_MS = 10_000

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
  private closed = false
  private lp: ReturnType<typeof lpStream> | undefined
  private stream: Stream | undefined
  private readonly onClose: () => void

  constructor (libp2p: Libp2p, peer: PeerId, onClose: () => void, log: Logger) {
    this.onClose = onClose
    this.ready = (async () => {
      try {
        this.stream = await libp2p.dialProtocol(peer, SYNC_PROTOCOL, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
        this.lp = lpStream(this.stream, { maxDataLength: MAX_SYNC_MESSAGE_BYTES })
        return true
      } catch (error) {
        log.debug({ event: 'sync-dial-failed', peer: peer.toString(), error: (error as Error).message }, 'could not open a sync stream')
        this.close()
        return false
      }
    })()
  }

  send (message: SyncMessage): void {
    if (this.closed) return
    if (++this.queued > MAX_QUEUED_MESSAGES) {
      this.close()
      return
    }
    const bytes = encodeSyncMessage(message)
    this.writing = this.writing.then(async () => {
      if (this.closed || !await this.ready || this.lp === undefined) return
      await this.lp.write(bytes)
      this.queued--
    }).catch(() => { this.close() })
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    this.stream?.abort(new Error('sync channel closed'))
    this.onClose()
  }
}

export class SyncService {
  private readonly o: SyncOptions
  private readonly channels = new Map<string, Channel>()
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
      const created: Channel = new Channel(this.o.libp2p, peerIdFromString(peer), () => {
        if (this.channels.get(peer) === created) this.channels.delete(peer)
      }, this.o.log)
      channel = created
      this.channels.set(peer, channel)
    }
    return channel
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
    const lp = lpStream(stream, { maxDataLength: MAX_SYNC_MESSAGE_BYTES })
    try {
      for (;;) {
        let bytes: Uint8Array
        try {
          bytes = (await lp.read()).subarray()
        } catch (error) {
          if (error instanceof MalformedMessageError || (error as { name?: string }).name === 'InvalidDataLengthError') throw error
          return
        }
        const message = decodeSyncMessage(bytes)
        const done = this.applying.then(async () => { await this.receive(peer, message) })
        this.applying = done.catch(() => {})
        await done
      }
    } catch (error) {
      this.o.penalties.penalise(peer, 'malformed-sync-message')
      this.o.log.warn({ event: 'sync-stream-refused', peer, error: (error as Error).message }, 'a sync stream sent something malformed; it was reset')
      stream.abort(error as Error)
    }
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
        if (error.penalty > 0) this.o.penalties.penalise(peer, 'refused-presence', error.penalty)
        log.debug({ event: 'presence-refused', peer, doc: message.docId, reason: error.message }, `refused presence in ${message.docId} from ${peer}: ${error.message}`)
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
      if (error.penalty > 0) this.o.penalties.penalise(peer, 'refused-update', error.penalty)
      log[error.penalty > 0 ? 'warn' : 'debug']({ event: 'sync-update-refused', peer, doc: message.docId, penalty: error.penalty, reason: error.message }, `refused an update of ${message.docId} from ${peer}: ${error.message}`)
    }
  }
}
