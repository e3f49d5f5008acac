/**
 * Spreads revocations (`/radmesh/revocations/1.0.0`) with the members' flood (p2p/flood.ts): on contact,
 * every member sends the other all it holds; a revocation new to a node is forwarded to every member connected
 * to it. A node that learns of a revocation closes its connections to the revoked peer at once, and the gater
 * keeps it out. A list with a revocation that does not verify is dropped from that batch on, and counts against
 * its sender.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import { Flood } from '../p2p/flood.ts'
import type { PeerPenalties } from '../p2p/penalties.ts'
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

export class RevocationSpreader {
  private readonly libp2p: Libp2p
  private readonly registry: MembershipRegistry
  private readonly log: Logger
  private readonly flood: Flood<Revocation>
  private unsubscribe = (): void => {}

  constructor(libp2p: Libp2p, registry: MembershipRegistry, penalties: PeerPenalties, log: Logger) {
    this.libp2p = libp2p
    this.registry = registry
    this.log = log
    this.flood = new Flood(
      libp2p,
      {
        protocol: REVOCATIONS_PROTOCOL,
        maxMessageBytes: MAX_REVOCATIONS_MESSAGE_BYTES,
        maxItemsPerMessage: MAX_REVOCATIONS_PER_MESSAGE,
        maxInboundStreams: REVOCATIONS_MAX_INBOUND_STREAMS,
        maxOutboundStreams: REVOCATIONS_MAX_OUTBOUND_STREAMS,
        timeoutMs: REVOCATIONS_TIMEOUT_MS,
        encode: encodeRevocationList,
        decode: decodeRevocationList
      },
      { all: () => registry.allRevocations(), add: async list => await registry.addRevocations(list) },
      {
        what: 'revocations',
        invalidCode: 'invalid-revocation',
        invalidEvent: 'invalid-revocations',
        learntEvent: 'revocations-learnt'
      },
      penalties,
      log
    )
  }

  async start(): Promise<void> {
    await this.flood.start()
    this.unsubscribe = this.registry.onRevoked(this.onRevoked)
  }

  async stop(): Promise<void> {
    this.unsubscribe()
    await this.flood.stop()
  }

  /** Hands in revocations from outside the network (the administrator's `revoke --home`). */
  async submit(revocations: Revocation[]): Promise<{ added: Revocation[]; invalid: number }> {
    return await this.registry.addRevocations(revocations)
  }

  private readonly onRevoked = (revocation: Revocation): void => {
    const name = this.registry.certificateOf(revocation.peerId)?.name ?? 'unknown member'
    this.log.warn(
      { event: 'member-revoked', peer: revocation.peerId, name, revokedAt: revocation.revokedAt },
      `revoked: ${name} (${revocation.peerId}); closing its connections`
    )
    const ofRevoked = (connection: { remotePeer: { toString(): string } }): boolean =>
      connection.remotePeer.toString() === revocation.peerId
    for (const connection of this.libp2p.getConnections()) {
      if (ofRevoked(connection)) void connection.close().catch(() => connection.abort(new Error('revoked')))
    }
    this.flood.sendToAll([revocation], ofRevoked)
  }
}
