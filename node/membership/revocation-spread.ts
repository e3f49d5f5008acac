/**
 * Spreads revocations (`/radmesh/revocations/1.0.0`): on contact, every member sends the other all it
 * holds; a revocation new to a node is forwarded to every member connected to it. A node that learns
 * of a revocation closes its connections to the revoked peer at once, and the gater keeps it out.
 */
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
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
import type { PeerPenalties } from '../p2p/penalties.ts'
import type { MembershipRegistry } from './registry.ts'

export class RevocationSpreader {
  private readonly libp2p: Libp2p
  private readonly registry: MembershipRegistry
  private readonly penalties: PeerPenalties
  private readonly log: Logger
  private unsubscribe = (): void => {}

  constructor (libp2p: Libp2p, registry: MembershipRegistry, penalties: PeerPenalties, log: Logger) {
    this.libp2p = libp2p
    this.registry = registry
    this.penalties = penalties
    this.log = log
  }

  async start (): Promise<void> {
    await this.libp2p.handle(REVOCATIONS_PROTOCOL, this.onStream, {
      maxInboundStreams: REVOCATIONS_MAX_INBOUND_STREAMS,
      maxOutboundStreams: REVOCATIONS_MAX_OUTBOUND_STREAMS
    })
    this.libp2p.addEventListener('connection:open', this.onConnection)
    this.unsubscribe = this.registry.onRevoked(this.onRevoked)
  }

  async stop (): Promise<void> {
    this.libp2p.removeEventListener('connection:open', this.onConnection)
    this.unsubscribe()
    await this.libp2p.unhandle(REVOCATIONS_PROTOCOL)
  }

  /** Hands in revocations from outside the network (the administrator's `revoke --home`). */
  async submit (revocations: Revocation[]): Promise<{ added: Revocation[], invalid: number }> {
    return await this.registry.addRevocations(revocations)
  }

  private readonly onConnection = (event: CustomEvent<Connection>): void => {
    const all = this.registry.allRevocations()
    if (all.length > 0) void this.send(event.detail, all)
  }

  private readonly onRevoked = (revocation: Revocation): void => {
    const name = this.registry.certificateOf(revocation.peerId)?.name ?? 'unknown member'
    this.log.warn({ event: 'member-revoked', peer: revocation.peerId, name, revokedAt: revocation.revokedAt }, `revoked: ${name} (${revocation.peerId}); closing its connections`)
    for (const connection of this.libp2p.getConnections()) {
      if (connection.remotePeer.toString() === revocation.peerId) {
        void connection.close().catch(() => connection.abort(new Error('revoked')))
      } else {
        void this.send(connection, [revocation])
      }
    }
  }

  private async send (connection: Connection, revocations: Revocation[]): Promise<void> {
    if (connection.status !== 'open') return
    const signal = AbortSignal.timeout(REVOCATIONS_TIMEOUT_MS)
    try {
      for (let i = 0; i < revocations.length; i += MAX_REVOCATIONS_PER_MESSAGE) {
        const stream = await connection.newStream(REVOCATIONS_PROTOCOL, { signal })
        await lpStream(stream).write(encodeRevocationList(revocations.slice(i, i + MAX_REVOCATIONS_PER_MESSAGE)), { signal })
        await stream.close({ signal })
      }
    } catch (error) {
      this.log.debug({ event: 'revocations-send-failed', peer: connection.remotePeer.toString(), error: (error as Error).message }, 'could not send revocations')
    }
  }

  private readonly onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer.toString()
    const signal = AbortSignal.timeout(REVOCATIONS_TIMEOUT_MS)
    try {
      const bytes = await lpStream(stream, { maxDataLength: MAX_REVOCATIONS_MESSAGE_BYTES }).read({ signal })
      const { added, invalid } = await this.registry.addRevocations(decodeRevocationList(bytes.subarray()))
      if (invalid > 0) {
        this.penalties.penalise(peer, 'invalid-revocation', invalid)
        this.log.warn({ event: 'invalid-revocations', peer, invalid }, `${peer} sent ${invalid} revocations that do not verify`)
      }
      if (added.length > 0) this.log.info({ event: 'revocations-learnt', peer, count: added.length }, `learnt ${added.length} revocation(s) from ${peer}`)
      await stream.close({ signal })
    } catch (error) {
      this.penalties.penalise(peer, 'malformed-message')
      this.log.warn({ event: 'bad-message', protocol: REVOCATIONS_PROTOCOL, peer, error: (error as Error).message }, `reset a revocations stream from ${peer}: ${(error as Error).message}`)
      stream.abort(error as Error)
    }
  }
}
