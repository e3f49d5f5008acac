/**
 * Spreading small signed documents to every member without a centre (revocations, address records): on
 * contact, each side sends the other all it holds; what is new to a node is sent on to every member connected
 * to it (by its owner, through `sendToAll`), and what a node already has is never sent on again, so the flood
 * stops.
 *
 * A member passes on only what it has verified, so a document that does not verify is no accident: a list is
 * verified a few documents at a time, the event loop served between, and the rest of it is dropped at the
 * first batch holding one that fails (a list of thousands of forged signatures costs one batch, not
 * thousands); those count against the sender.
 *
 * The messages are small and matter (a revocation must reach a member behind a relay), so the protocol runs on
 * limited (relayed) connections too.
 */
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import { type PeerPenalties, type RefusalCode, refusalCodeOf } from './penalties.ts'
import { messageStream, TruncatedMessageError } from './wire.ts'

/** Documents verified in one go (a signature check is about 0.2 ms here) before the event loop is served. */
export const VERIFY_BATCH = 32

/** A flood protocol's wire: its id, its limits and its codec (from `protocol/`). */
export interface FloodWire<T> {
  protocol: string
  maxMessageBytes: number
  maxItemsPerMessage: number
  maxInboundStreams: number
  maxOutboundStreams: number
  timeoutMs: number
  encode(items: T[]): Uint8Array
  decode(bytes: Uint8Array): T[]
}

/** Where the documents live: the owner verifies and keeps them. */
export interface FloodStore<T> {
  /** everything worth sending a member on contact */
  all(): T[]
  /**
   * Verifies and keeps what is new; `invalid` counts documents that do not verify (forged, of another
   * consortium), not those merely old or of no use here. The owner sends on what was added.
   */
  add(items: T[], from: string): Promise<{ added: T[]; invalid: number }>
}

/** What the flood calls a document in logs, and the refusal a document that does not verify earns its sender. */
export interface FloodNames {
  /** plural, for log lines: "revocations", "address records" */
  what: string
  invalidCode: RefusalCode
  /** the log event of a refusal: "invalid-revocations" */
  invalidEvent: string
  /** the log event of documents learnt: "revocations-learnt" */
  learntEvent: string
}

export class Flood<T> {
  private readonly libp2p: Libp2p
  private readonly wire: FloodWire<T>
  private readonly store: FloodStore<T>
  private readonly names: FloodNames
  private readonly penalties: PeerPenalties
  private readonly log: Logger

  constructor(
    libp2p: Libp2p,
    wire: FloodWire<T>,
    store: FloodStore<T>,
    names: FloodNames,
    penalties: PeerPenalties,
    log: Logger
  ) {
    this.libp2p = libp2p
    this.wire = wire
    this.store = store
    this.names = names
    this.penalties = penalties
    this.log = log
  }

  async start(): Promise<void> {
    await this.libp2p.handle(this.wire.protocol, this.onStream, {
      maxInboundStreams: this.wire.maxInboundStreams,
      maxOutboundStreams: this.wire.maxOutboundStreams,
      runOnLimitedConnection: true
    })
    this.libp2p.addEventListener('connection:open', this.onConnection)
  }

  async stop(): Promise<void> {
    this.libp2p.removeEventListener('connection:open', this.onConnection)
    await this.libp2p.unhandle(this.wire.protocol)
  }

  /** Sends `items` on every open connection but those `skip` names (the peers they came from or concern). */
  sendToAll(items: T[], skip: (connection: Connection) => boolean = () => false): void {
    if (items.length === 0) return
    for (const connection of this.libp2p.getConnections()) {
      if (!skip(connection)) void this.send(connection, items)
    }
  }

  private readonly onConnection = (event: CustomEvent<Connection>): void => {
    const all = this.store.all()
    if (all.length > 0) void this.send(event.detail, all)
  }

  async send(connection: Connection, items: T[]): Promise<void> {
    if (connection.status !== 'open') return
    const signal = AbortSignal.timeout(this.wire.timeoutMs)
    try {
      for (let i = 0; i < items.length; i += this.wire.maxItemsPerMessage) {
        const stream = await connection.newStream(this.wire.protocol, { signal, runOnLimitedConnection: true })
        const message = this.wire.encode(items.slice(i, i + this.wire.maxItemsPerMessage))
        await lpStream(stream).write(message, { signal })
        await stream.close({ signal })
      }
    } catch (error) {
      this.log.debug(
        {
          event: 'flood-send-failed',
          protocol: this.wire.protocol,
          peer: connection.remotePeer.toString(),
          error: (error as Error).message
        },
        `could not send ${this.names.what}`
      )
    }
  }

  private readonly onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer.toString()
    const protocol = this.wire.protocol
    const signal = AbortSignal.timeout(this.wire.timeoutMs)
    try {
      const limits = { maxDataLength: this.wire.maxMessageBytes, messageTimeoutMs: this.wire.timeoutMs }
      const bytes = await messageStream(stream, limits).read(signal)
      if (bytes === undefined) throw new TruncatedMessageError(`the stream ended before the ${this.names.what}`)
      const list = this.wire.decode(bytes)
      let learnt = 0
      let invalid = 0
      for (let i = 0; i < list.length && invalid === 0; i += VERIFY_BATCH) {
        if (i > 0) await new Promise(resolve => setImmediate(resolve))
        const result = await this.store.add(list.slice(i, i + VERIFY_BATCH), peer)
        learnt += result.added.length
        invalid += result.invalid
      }
      if (invalid > 0) {
        this.penalties.refuse(this.log, {
          peer,
          protocol,
          code: this.names.invalidCode,
          weight: invalid,
          event: this.names.invalidEvent,
          error: `${invalid} of the ${this.names.what} do not verify; the rest of the list of ${list.length} was dropped`,
          detail: { invalid }
        })
      }
      if (learnt > 0) this.log.info({ event: this.names.learntEvent, peer, count: learnt }, `${this.names.what} learnt`)
      await stream.close({ signal })
    } catch (error) {
      const message = (error as Error).message
      const code = refusalCodeOf(error)
      if (code === undefined) this.log.info({ event: 'stream-failed', protocol, peer, error: message }, message)
      else this.penalties.refuse(this.log, { peer, protocol, code, event: 'bad-message', error: message })
      stream.abort(error as Error)
    }
  }
}
