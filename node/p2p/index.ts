/**
 * @packageDocumentation
 * The libp2p host and staying connected: transports, muxer, limits (with their reasons), redial with
 * backoff through dropped links, penalties for peers that send bad data, relays among members (Circuit
 * Relay v2, for members behind NAT), and how each member is reached (direct or relayed, since when).
 */
export { createHost, type RadmeshHost } from './host.ts'
export { P2P_LIMITS, REDIAL_POLICY } from './limits.ts'
export { connectedMembers } from './links.ts'
export { PeerPenalties } from './penalties.ts'
export { backoffDelay, Redialer } from './redial.ts'
export { linkOf, RELAY_LIMITS, relayGate, relayPeers, type RelayServeOptions, relayService } from './relay.ts'
