/**
 * The connection gater: libp2p asks it at every stage of a connection's life. radmesh decides at the
 * encrypted stage, after the member handshake has verified the peer's certificate; the earlier hooks turn
 * away peers already known to be revoked or banned, so they cost no handshake at all.
 */
import type { ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { PeerPenalties } from '../p2p/penalties.ts'
import type { MembershipRegistry } from './registry.ts'

export function membershipGater(
  registry: MembershipRegistry,
  penalties: Pick<PeerPenalties, 'isBanned'>,
  log: Logger
): ConnectionGater {
  const deny = (stage: string, peer: PeerId, maConn?: MultiaddrConnection): boolean => {
    const peerId = peer.toString()
    const banned = penalties.isBanned(peerId)
    if (registry.isMember(peerId) && !banned) return false
    const code = registry.isRevoked(peerId) ? 'revoked' : banned ? 'banned' : 'not-a-member'
    const reason =
      code === 'revoked'
        ? 'revoked'
        : code === 'banned'
          ? 'banned for a cool-down after sending bad data'
          : 'no verified certificate'
    log.warn(
      { event: 'member-refused', stage, remotePeer: peerId, remoteAddr: maConn?.remoteAddr.toString(), code, reason },
      `gater refused ${peerId} at ${stage}: ${reason}`
    )
    return true
  }
  const known = (peer: PeerId): boolean => registry.isRevoked(peer.toString()) || penalties.isBanned(peer.toString())
  return {
    denyDialPeer: async peer => known(peer),
    denyOutboundConnection: async peer => known(peer),
    denyInboundEncryptedConnection: async (peer, maConn) => deny('inbound-encrypted', peer, maConn),
    denyOutboundEncryptedConnection: async (peer, maConn) => deny('outbound-encrypted', peer, maConn),
    denyInboundUpgradedConnection: async (peer, maConn) => deny('inbound-upgraded', peer, maConn),
    denyOutboundUpgradedConnection: async (peer, maConn) => deny('outbound-upgraded', peer, maConn)
  }
}
