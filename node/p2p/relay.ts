/**
 * Relays among members, with libp2p's own Circuit Relay v2 (no server outside the consortium):
 *
 * - a member started with `--relay` serves the hop protocol: it gives reservations to members only, and
 *   joins a member to a member only. A non-member cannot even connect to it (the member handshake refuses
 *   it first); the gate below holds again at the relay's own decisions, and at the destination;
 * - a member behind NAT (`--relay-via`) keeps a reservation on a member relay and advertises its
 *   `/p2p/RELAY/p2p-circuit` address;
 * - the relayed connection is upgraded end to end like any other, with the member handshake (Noise and
 *   certificates): the relay forwards bytes it cannot read, and is never trusted with who is on the other side.
 *
 * A relay for members is unlimited unless it says otherwise: a study is hundreds of megabytes, and libp2p's
 * default limits (2 minutes, 128 KiB) are made for a public relay that strangers use to find a direct path.
 */
import { networkInterfaces } from 'node:os'
import { circuitRelayServer, type CircuitRelayService } from '@libp2p/circuit-relay-v2'
import type { Connection, ConnectionGater, Libp2p, PeerId } from '@libp2p/interface'
import { isPrivate } from '@libp2p/utils'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { PeerPenalties } from './penalties.ts'

/** What `radmesh start --relay` serves. */
export interface RelayServeOptions {
  /** bytes one relayed connection may carry (both ways together); unlimited when absent */
  dataLimit?: bigint
  /** how long one relayed connection may stay open, in ms; unlimited when absent */
  durationLimitMs?: number
}

export const RELAY_LIMITS = {
  /** Reservations one relay holds at once: a consortium's members behind NAT, not the public. */
  maxReservations: 256,
  /**
   * With one limit set and not the other, the other is this large (libp2p applies both or neither):
   * 2^62 bytes; 2^31 - 1 ms (setTimeout's ceiling, about 24.8 days).
   */
  noDataLimit: 2n ** 62n,
  noDurationLimitMs: 2 ** 31 - 1
} as const

/** The relay service for libp2p's `services`, limited for members only when the operator said so. */
export function relayService(options: RelayServeOptions): ReturnType<typeof circuitRelayServer> {
  const limited = options.dataLimit !== undefined || options.durationLimitMs !== undefined
  return circuitRelayServer({
    reservations: {
      maxReservations: RELAY_LIMITS.maxReservations,
      applyDefaultLimit: limited,
      ...(limited
        ? {
            defaultDataLimit: options.dataLimit ?? RELAY_LIMITS.noDataLimit,
            defaultDurationLimit: options.durationLimitMs ?? RELAY_LIMITS.noDurationLimitMs
          }
        : {})
    }
  })
}

type RelayHook = 'denyInboundRelayReservation' | 'denyOutboundRelayedConnection' | 'denyInboundRelayedConnection'

/**
 * The gater's relay hooks: reservations and relayed connections for current members only (not revoked,
 * not banned). On a relay, both ends of a circuit must be members; at the destination, the relay must be.
 */
export function relayGate(
  registry: Pick<MembershipRegistry, 'isMember'>,
  penalties: Pick<PeerPenalties, 'isBanned'>,
  log: Logger
): Pick<ConnectionGater, RelayHook> {
  const member = (peer: PeerId): boolean => registry.isMember(peer.toString()) && !penalties.isBanned(peer.toString())
  const refuse = (stage: string, peers: Record<string, string>): true => {
    log.warn({ event: 'relay-refused', stage, ...peers }, `relay refused at ${stage}: not a current member`)
    return true
  }
  return {
    denyInboundRelayReservation: source =>
      member(source) ? false : refuse('reservation', { remotePeer: source.toString() }),
    denyOutboundRelayedConnection: (source, destination) =>
      member(source) && member(destination)
        ? false
        : refuse('relay-connect', { remotePeer: source.toString(), destination: destination.toString() }),
    denyInboundRelayedConnection: (relay, remotePeer) =>
      member(relay) ? false : refuse('relayed-inbound', { relay: relay.toString(), remotePeer: remotePeer.toString() })
  }
}

/** How a connection reaches its peer: straight, or through a relay (whose peer id it names). */
export interface LinkKind {
  link: 'direct' | 'relayed'
  relay?: string
  /** a direct link over WebRTC (UDP, hole punched through both NATs; see host.ts) */
  transport?: 'webrtc'
}

/** Whether `addr` names a WebRTC link or address (`…/p2p-circuit/webrtc/p2p/PEER`, or `/webrtc/p2p/PEER`). */
export const isWebRTC = (addr: Multiaddr): boolean => addr.getComponents().some(c => c.name === 'webrtc')

/** Whether `addr` goes through a relay: a relayed address, or the signalling address of a WebRTC one. */
export const throughRelay = (addr: Multiaddr): boolean => addr.getComponents().some(c => c.name === 'p2p-circuit')

export function linkOf(connection: Pick<Connection, 'remoteAddr'>): LinkKind {
  // A WebRTC link is signalled through a relay (the dialler's remote address keeps `/p2p-circuit/webrtc`),
  // but its data flows straight between the two members.
  if (isWebRTC(connection.remoteAddr)) return { link: 'direct', transport: 'webrtc' }
  const components = connection.remoteAddr.getComponents()
  const circuit = components.findIndex(c => c.name === 'p2p-circuit')
  if (circuit < 0) return { link: 'direct' }
  const relay = components.slice(0, circuit).findLast(c => c.name === 'p2p')?.value
  return relay === undefined ? { link: 'relayed' } : { link: 'relayed', relay }
}

/**
 * The relays this node holds a reservation on (its own `/p2p/RELAY/p2p-circuit` addresses), and, on a relay,
 * the members holding one here: links to either are kept open, since a reservation lives on its connection.
 */
export function relayPeers(libp2p: Pick<Libp2p, 'getMultiaddrs'>, server?: CircuitRelayService): Set<string> {
  const peers = new Set<string>()
  for (const addr of libp2p.getMultiaddrs()) {
    const { link, relay } = linkOf({ remoteAddr: addr })
    if (link === 'relayed' && relay !== undefined) peers.add(relay)
  }
  for (const peer of server?.reservations.keys() ?? []) peers.add(peer.toString())
  return peers
}

/** Reservations a node with no public address keeps on member relays it is connected to, unless told otherwise. */
export const AUTO_RESERVATIONS = 2

/**
 * Whether this node listens on an address others could dial from the internet: a listen address, or (for a
 * wildcard one) an address of a network interface, outside the private, loopback and link-local ranges.
 */
export function hasPublicAddress(
  listen: string[],
  interfaces: Record<
    string,
    Array<{ address: string; family: string; internal: boolean }> | undefined
  > = networkInterfaces()
): boolean {
  const local = Object.values(interfaces)
    .flatMap(list => list ?? [])
    .filter(i => !i.internal)
    .map(i => (i.family === 'IPv4' ? `/ip4/${i.address}` : `/ip6/${i.address}`))
  for (const text of listen) {
    const ip = multiaddr(text).getComponents()[0]
    if (ip === undefined || (ip.name !== 'ip4' && ip.name !== 'ip6')) continue
    const wildcard = ip.value === '0.0.0.0' || ip.value === '::'
    const candidates = wildcard ? local.filter(a => a.startsWith(`/${ip.name}/`)) : [`/${ip.name}/${ip.value}`]
    if (candidates.some(a => isPrivate(multiaddr(`${a}/tcp/1`)) === false)) return true
  }
  return false
}

/**
 * How many relay reservations to keep: what `--relay-reservations` says; else none on a node that is a relay
 * or can be dialled (a public listen address, or `--announce`), and `AUTO_RESERVATIONS` on one that cannot be
 * (every address private: behind NAT or on a LAN), so members elsewhere reach it through a member relay; at least
 * one with `--relay-via`.
 */
export function reservationsWanted(o: {
  explicit?: number
  serving: boolean
  announced: boolean
  listen: string[]
  relayVia: number
}): number {
  const floor = o.relayVia > 0 ? 1 : 0
  if (o.explicit !== undefined) return Math.max(o.explicit, floor)
  if (o.serving || o.announced || hasPublicAddress(o.listen)) return floor
  return Math.max(AUTO_RESERVATIONS, floor)
}
