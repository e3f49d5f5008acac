/**
 * The connection gater: libp2p asks it at every stage of a connection's life. radmesh decides at the
 * encrypted stage, after the member handshake has verified the peer's certificate; the earlier hooks turn
 * away peers already known to be revoked, so they cost no handshake at all.
 */
import type { ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { MembershipRegistry } from './registry.ts'

export function membershipGater (registry: MembershipRegistry, log: Logger): ConnectionGater {
  const deny = (stage: string, peer: PeerId, maConn?: MultiaddrConnection): boolean => {
    const peerId = peer.toString()
    if (registry.isMember(peerId)) return false
    const reason = registry.isRevoked(peerId) ? 'revoked' : 'no verified certificate'
    log.warn({ event: 'member-refused', stage, remotePeer: peerId, remoteAddr: maConn?.remoteAddr.toString(), code: reason === 'revoked' ? 'revoked' : 'not-a-member', reason }, `gater refused ${peerId} at ${stage}: ${reason}`)
    return true
  }
  return {
    denyDialPeer: async (peer) => registry.isRevoked(peer.toString()),
    denyOutboundConnection: async (peer) => registry.isRevoked(peer.toString()),
    denyInboundEncryptedConnection: async (peer, maConn) => deny('inbound-encrypted', peer, maConn),
    denyOutboundEncryptedConnection: async (peer, maConn) => deny('outbound-encrypted', peer, maConn),
    denyInboundUpgradedConnection: async (peer, maConn) => deny('inbound-upgraded', peer, maConn),
    denyOutboundUpgradedConnection: async (peer, maConn) => deny('outbound-upgraded', peer, maConn)
  }
}
