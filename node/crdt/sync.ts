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
 * Digests, inventories and step 1s change no document: they go in turn beside updates, so a new reader's pass
 * over a site's inventory does not hold back step 2s, nor an update waiting for the inspector the site's answers
 * (one lacking an update not yet applied is made whole when it is relayed; figures: docs/PERFORMANCE.md, Scale).
 *
 * Nothing a peer sends touches a document before it was opened in the inspector (a worker) and passed the
 * document's own check (the sync policy's `check`). A refused update is logged and, unless it may be an
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
import * as Y from 'yjs'
import {
  decodeSyncMessage,
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
import { messageStream } from '../p2p/wire.ts'
import type { Documents, UpdateOrigin } from './documents.ts'
import { type InspectedUpdate, type UpdateInspector, UpdateRefusedError } from './inspect.ts'
import { AnswerLimit } from './inventory.ts'
import { Digests } from './sync-digests.ts'
import type { Presence, PresenceOrigin } from './presence.ts'
import { step2Sendable } from './step2.ts'
import { refused, streamFailed } from './sync-refusals.ts'
import { Channel, type ChannelEnd } from './sync-channel.ts'
import type { SyncPolicy } from './sync-policy.ts'

/** A member's messages read ahead of the one being applied (their updates opened meanwhile). */
const IN_FLIGHT = 32

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

export class SyncService {
  private readonly o: SyncOptions
  private readonly channels = new Map<string, Channel>()
  /** a step 1 of (member, document) is answered at most once a second */
  private readonly step1Answers = new AnswerLimit(STEP1_ANSWER_INTERVAL_MS)
  /** digests and inventories: what differs from a member's documents */
  private readonly digests: Digests
  /** where the round of digests goes on (members in turn) */
  private roundStart = 0
  /** remote updates are checked and applied one at a time, so each check sees the document it applies to */
  private applying: Promise<void> = Promise.resolve()
  /** digests, inventories, step 1s (they change no document) in order beside `applying`, not behind it */
  private comparing: Promise<void> = Promise.resolve()
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined
  private unsubscribePresence: (() => void) | undefined
  private unsubscribeSharing: (() => void) | undefined

  constructor(options: SyncOptions) {
    this.o = options
    this.digests = new Digests(options, peer => this.channel(peer))
  }

  async start(): Promise<void> {
    const { libp2p, documents } = this.o
    // Also over a relay with limits (a member behind NAT whose relay set --relay-data-limit): documents are small
    // next to studies, and the worklist and reports must reach it however it is connected.
    await libp2p.handle(SYNC_PROTOCOL, this.onStream, {
      maxInboundStreams: 4,
      maxOutboundStreams: 4,
      runOnLimitedConnection: true
    })
    this.unsubscribe = documents.onUpdate(this.relay)
    this.unsubscribePresence = this.o.presence?.onUpdate(this.relayPresence)
    this.unsubscribeSharing = this.o.policy.onSharingChange?.(docIds => {
      this.syncDocuments(docIds)
    })
    libp2p.addEventListener('peer:connect', this.onConnect)
    this.timer = setInterval(() => {
      this.round()
    }, this.o.resyncIntervalMs ?? RESYNC_INTERVAL_MS)
    this.timer.unref()
    for (const peer of this.connectedMembers()) this.digests.sendDigest(peer)
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.digests.stop()
    this.unsubscribe?.()
    this.unsubscribePresence?.()
    this.unsubscribeSharing?.()
    this.o.libp2p.removeEventListener('peer:connect', this.onConnect)
    for (const channel of this.channels.values()) channel.close()
    await this.o.libp2p.unhandle(SYNC_PROTOCOL)
    await Promise.all([this.applying, this.comparing])
  }

  /**
   * An update written by this node's own user in the viewer (a Yjs client the member bound to itself):
   * checked like a peer's, in the same queue, then applied as this node's own change (persisted, relayed).
   * Throws UpdateRefusedError with the reason when the document's rules refuse it.
   */
  async applyFromViewer(docId: string, update: Uint8Array): Promise<void> {
    const done = this.applying.then(async () => {
      const inspected = await this.o.inspector.inspect(update)
      await this.o.policy.check(docId, update, inspected)
      await this.o.documents.applyLocal(docId, update)
    })
    this.applying = done.catch(() => {})
    await done
  }

  /** Members this node has an open connection to now. */
  private connectedMembers(): string[] {
    const peers = new Set<string>()
    for (const connection of this.o.libp2p.getConnections()) {
      const peer = connection.remotePeer.toString()
      if (connection.status === 'open' && this.o.registry.isMember(peer)) peers.add(peer)
    }
    return [...peers]
  }

  private readonly onConnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail.toString()
    // Its updates come next: the inspector's worker starts now, not when the first of them waits for it.
    if (this.o.registry.isMember(peer)) this.o.inspector.warm()
    this.digests.sendDigest(peer)
  }

  /** One round: a digest to each of the next RESYNC_PEERS connected members, in turn. */
  round(): void {
    const peers = this.connectedMembers().sort()
    if (peers.length === 0) return
    const count = Math.min(RESYNC_PEERS, peers.length)
    for (let i = 0; i < count; i++) this.digests.sendDigest(peers[(this.roundStart + i) % peers.length] as string)
    this.roundStart = (this.roundStart + count) % peers.length
  }

  /**
   * Sends these documents' state to every connected member they are shared with, by a digest: a member who
   * has just joined a case (or this node, just joined) gets what was written before, such as the bindings of
   * pages opened earlier, which the updates relayed from now on do not carry.
   */
  syncDocuments(docIds: string[]): void {
    const peers = new Set<string>()
    for (const peer of this.connectedMembers()) {
      if (docIds.some(docId => this.o.policy.mayShare(docId, peer))) peers.add(peer)
    }
    for (const peer of peers) this.digests.sendDigest(peer)
  }

  private channel(peer: string): Channel {
    let channel = this.channels.get(peer)
    if (channel === undefined) {
      const created: Channel = new Channel(
        this.o.libp2p,
        peerIdFromString(peer),
        end => {
          if (this.channels.get(peer) === created) this.channels.delete(peer)
          this.channelEnded(peer, end)
        },
        this.o.log
      )
      channel = created
      this.channels.set(peer, channel)
    }
    return channel
  }

  private channelEnded(peer: string, end: ChannelEnd): void {
    if (end.code !== 'sync-queue-full') return
    this.o.log.warn(
      { event: 'sync-channel-dropped', code: end.code, peer, error: end.reason },
      'dropped a sync channel'
    )
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
      if (this.o.policy.mayShare(docId, peer)) {
        this.channel(peer).send({ type: SYNC_MESSAGE.awareness, docId, payload: update })
      }
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
    const check = (): void => {
      if ('error' in failed) throw failed.error
    }
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
        const compares = !changes && message.type !== SYNC_MESSAGE.awareness
        const done = (compares ? this.comparing : this.applying).then(async () => {
          await this.receive(peer, message, inspected)
        })
        if (compares) this.comparing = done.catch(() => {})
        else this.applying = done.catch(() => {})
        const tracked: Promise<void> = done
          .catch((error: unknown) => {
            // This node's own failure (its store, a document) is no fault of the member's: the stream goes on.
            if (refusalCodeOf(error) !== undefined && !('error' in failed)) failed.error = error
            else
              this.o.log.error(
                { event: 'sync-receive-failed', peer, doc: message.docId, err: error },
                'could not take it'
              )
          })
          .finally(() => {
            inFlight.delete(tracked)
          })
        inFlight.add(tracked)
      }
    } catch (error) {
      streamFailed(stream, peer, error, this.o)
    }
  }

  private async receive(peer: string, message: SyncMessage, inspecting?: Promise<InspectedUpdate>): Promise<void> {
    const { documents, policy, log } = this.o
    if (message.type === SYNC_MESSAGE.digest) {
      await this.digests.receiveDigest(peer, message.payload)
      return
    }
    if (message.type === SYNC_MESSAGE.inventory) {
      await this.digests.receiveInventory(peer, message.payload)
      return
    }
    await policy.prepare?.(message.docId)
    const allowed =
      message.type === SYNC_MESSAGE.step1
        ? policy.mayShare(message.docId, peer)
        : policy.mayReceive(message.docId, peer)
    if (!allowed) {
      log.debug(
        { event: 'sync-not-shared', peer, doc: message.docId },
        'a member sent or asked about a document this node does not share with it'
      )
      return
    }
    if (message.type === SYNC_MESSAGE.step1) {
      try {
        Y.decodeStateVector(message.payload)
      } catch {
        throw new MalformedMessageError('a sync step 1 whose state vector does not decode')
      }
      // Not while an answer to it is still queued; else at most once a second.
      if (
        this.channels.get(peer)?.answering(message.docId) === true ||
        !this.step1Answers.take(`${peer} ` + `${message.docId}`)
      ) {
        log.debug({ event: 'sync-step1-too-soon', peer, doc: message.docId }, 'answered less than a second ago')
        return
      }
      const doc = await documents.open(message.docId)
      for (const part of step2Sendable(doc, message.docId, message.payload, log)) {
        this.channel(peer).send({ type: SYNC_MESSAGE.step2, docId: message.docId, payload: part })
      }
      log.debug({ event: 'sync-step1-answered', peer, doc: message.docId }, 'answered a step 1')
      return
    }
    if (message.type === SYNC_MESSAGE.awareness) {
      if (this.o.presence === undefined || !policy.mayShare(message.docId, peer)) return
      try {
        await this.o.presence.apply(message.docId, message.payload, { kind: 'peer', peerId: peer })
      } catch (error) {
        if (!(error instanceof UpdateRefusedError)) throw error
        refused(peer, message.docId, 'refused-presence', 'presence-refused', error, this.o)
      }
      return
    }
    try {
      const inspected = await (inspecting ?? this.o.inspector.inspect(message.payload))
      const empty = inspected.items.length === 0 && inspected.otherStructs === 0
      if (empty && documents.knowsOnly(message.docId, inspected.deletes)) {
        return
      }
      await policy.check(message.docId, message.payload, inspected)
      await documents.applyRemote(message.docId, message.payload, peer)
      log.debug({ event: 'sync-applied', peer, doc: message.docId, type: message.type }, 'applied')
    } catch (error) {
      if (!(error instanceof UpdateRefusedError)) throw error
      refused(peer, message.docId, 'refused-update', 'sync-update-refused', error, this.o)
    }
  }
}
