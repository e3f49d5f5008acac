/**
 * Spreads revocations (`/radmesh/revocations/1.0.0`): on contact, every member sends the other all it
 * holds; a revocation new to a node is forwarded to every member connected to it. A node that learns
 * of a revocation closes its connections to the revoked peer at once, and the gater keeps it out.
 *
 * A member passes on only revocations it has verified, so one that does not verify is no accident: a list
 * is verified a few revocations at a time, the event loop served between, and the rest of it is dropped at
 * the first one that fails (a list of thousands of forged signatures costs one batch, not thousands).
 */
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import { type PeerPenalties, refusalCodeOf } from '../p2p/penalties.ts'
import { messageStream, TruncatedMessageError } from '../p2p/wire.ts'
import {
  decodeRevocationList,
  encodeRevocationList,
  MAX_REVOCATIONS_MESSAGE_BYTES,
  MAX_REVOCATIONS_PER_MESSAGE,
  REVOCATIONS_MAX_INBOUND_STREAMS,
  REVOCATIONS_MAX_OUTBOUND_STREAMS,
  REVOCATIONS_PROTOCOL,
  REVOCATIONS_TIMEOUT_MS,
  type Revocation
} from '../../protocol/membership/index.ts'
import type { MembershipRegistry } from './registry.ts'

/** Revocations verified in one go (about 0.2 ms each here) before the event loop is served again. */
const VERIFY_BATCH = 32

export class RevocationSpreader {
  private readonly libp2p: Libp2p
  private readonly registry: MembershipRegistry
  private readonly penalties: PeerPenalties
  private readonly log: Logger
  private unsubscribe = (): void => {}

  constructor(libp2p: Libp2p, registry: MembershipRegistry, penalties: PeerPenalties, log: Logger) {
    this.libp2p = libp2p
    this.registry = registry
    this.penalties = penalties
    this.log = log
  }

  async start(): Promise<void> {
    await this.libp2p.handle(REVOCATIONS_PROTOCOL, this.onStream, {
      maxInboundStreams: REVOCATIONS_MAX_INBOUND_STREAMS,
      maxOutboundStreams: REVOCATIONS_MAX_OUTBOUND_STREAMS
    })
    this.libp2p.addEventListener('connection:open', this.onConnection)
    this.unsubscribe = this.registry.onRevoked(this.onRevoked)
  }

  async stop(): Promise<void> {
    this.libp2p.removeEventListener('connection:open', this.onConnection)
    this.unsubscribe()
    await this.libp2p.unhandle(REVOCATIONS_PROTOCOL)
  }

  /** Hands in revocations from outside the network (the administrator's `revoke --home`). */
  async submit(revocations: Revocation[]): Promise<{ added: Revocation[]; invalid: number }> {
    return await this.registry.addRevocations(revocations)
  }

  private readonly onConnection = (event: CustomEvent<Connection>): void => {
    const all = this.registry.allRevocations()
    if (all.length > 0) void this.send(event.detail, all)
  }

  private readonly onRevoked = (revocation: Revocation): void => {
    const name = this.registry.certificateOf(revocation.peerId)?.name ?? 'unknown member'
    this.log.warn(
      { event: 'member-revoked', peer: revocation.peerId, name, revokedAt: revocation.revokedAt },
      `revoked: ${name} (${revocation.peerId}); closing its connections`
    )
    for (const connection of this.libp2p.getConnections()) {
      if (connection.remotePeer.toString() === revocation.peerId) {
        void connection.close().catch(() => connection.abort(new Error('revoked')))
      } else {
        void this.send(connection, [revocation])
      }
    }
  }

  private async send(connection: Connection, revocations: Revocation[]): Promise<void> {
    if (connection.status !== 'open') return
    const signal = AbortSignal.timeout(REVOCATIONS_TIMEOUT_MS)
    try {
      for (let i = 0; i < revocations.length; i += MAX_REVOCATIONS_PER_MESSAGE) {
        const stream = await connection.newStream(REVOCATIONS_PROTOCOL, { signal })
        await lpStream(stream).write(encodeRevocationList(revocations.slice(i, i + MAX_REVOCATIONS_PER_MESSAGE)), {
          signal
        })
        await stream.close({ signal })
      }
    } catch (error) {
      this.log.debug(
        { event: 'revocations-send-failed', peer: connection.remotePeer.toString(), error: (error as Error).message },
        'could not send revocations'
      )
    }
  }

  private readonly onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer.toString()
    const signal = AbortSignal.timeout(REVOCATIONS_TIMEOUT_MS)
    try {
      const limits = { maxDataLength: MAX_REVOCATIONS_MESSAGE_BYTES, messageTimeoutMs: REVOCATIONS_TIMEOUT_MS }
      const lp = messageStream(stream, limits)
      const bytes = await lp.read(signal)
      if (bytes === undefined) throw new TruncatedMessageError('the stream ended before the revocation list')
      const list = decodeRevocationList(bytes)
      let learnt = 0
      let invalid = 0
      for (let i = 0; i < list.length && invalid === 0; i += VERIFY_BATCH) {
        if (i > 0) await new Promise(resolve => setImmediate(resolve))
        const result = await this.registry.addRevocations(list.slice(i, i + VERIFY_BATCH))
        learnt += result.added.length
        invalid += result.invalid
      }
      if (invalid > 0) {
        this.penalties.refuse(this.log, {
          peer,
          protocol: REVOCATIONS_PROTOCOL,
          code: 'invalid-revocation',
          weight: invalid,
          event: 'invalid-revocations',
          error: `${invalid} revocation(s) that do not verify; the rest of the list of ${list.length} was dropped`,
          detail: { invalid }
        })
      }
      if (learnt > 0) this.log.info({ event: 'revocations-learnt', peer, count: learnt }, 'revocations learnt')
      await stream.close({ signal })
    } catch (error) {
      const message = (error as Error).message
      const code = refusalCodeOf(error)
      const protocol = REVOCATIONS_PROTOCOL
      if (code === undefined) this.log.info({ event: 'stream-failed', protocol, peer, error: message }, message)
      else this.penalties.refuse(this.log, { peer, protocol, code, event: 'bad-message', error: message })
      stream.abort(error as Error)
    }
  }
}
