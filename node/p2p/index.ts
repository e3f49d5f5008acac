/**
 * @packageDocumentation
 * The libp2p host and staying connected: transports, muxer, limits (with their reasons), redial with
 * backoff through dropped links, and penalties for peers that send bad data.
 */
export { createHost, type RadmeshHost } from './host.ts'
export { P2P_LIMITS, REDIAL_POLICY } from './limits.ts'
export { PeerPenalties } from './penalties.ts'
export { backoffDelay, Redialer } from './redial.ts'
