/**
 * The libp2p host of a radmesh node: TCP, WebSockets and circuit relay, the member handshake (Noise +
 * certificates) in place of bare Noise, Yamux, identify, ping, optional mDNS, the membership gater, and the
 * relay service on a node that serves one (see relay.ts), and with `--webrtc` WebRTC (see below).
 *
 * WebRTC (`@libp2p/webrtc`, private-to-private): two members both behind NAT cannot hole punch over TCP in
 * js-libp2p (direct-upgrade.ts), but can over UDP. One dials the other's `/p2p-circuit/webrtc` address: the SDP
 * offer, answer and ICE candidates go over their relayed link (already through the member handshake), ICE punches
 * through both NATs, and the WebRTC link (DTLS, SCTP data channels; its certificate fingerprints were exchanged
 * over the member-handshaked relayed link) replaces the relayed one. libp2p skips the connection encrypter on
 * it, so the member handshake does not run again, but the gater's encrypted and upgraded hooks do (with the peer
 * of the relayed link). Each member finds its NAT's public address and port with STUN, asked of the member
 * relays it holds a reservation on (node/p2p/stun.ts): no server outside the consortium, and never libp2p's
 * default STUN servers (Google's, Twilio's, Cloudflare's, Mozilla's).
 */
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport, type CircuitRelayService } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identify } from '@libp2p/identify'
import type { Libp2p } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { ping, type Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { uPnPNAT } from '@libp2p/upnp-nat'
import { webSockets } from '@libp2p/websockets'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import type { Logger } from 'pino'
import type { Identity } from '../identity/keys.ts'
import { membershipGater } from '../membership/gater.ts'
import { memberHandshake } from '../membership/handshake.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import { P2P_LIMITS } from './limits.ts'
import type { PeerPenalties } from './penalties.ts'
import { isWebRTC, linkOf, relayGate, relayPeers, relayService, type RelayServeOptions, throughRelay } from './relay.ts'
import { STUN_PORT } from './stun.ts'

/** A multiaddr as text without its trailing `/p2p/PEERID`. */
const withoutPeerId = (addr: Multiaddr): string => addr.toString().replace(/\/p2p\/[^/]+$/, '')

export interface HostOptions {
  identity: Identity
  registry: MembershipRegistry
  penalties: PeerPenalties
  listen: string[]
  /** addresses other members should dial instead of the listen addresses (port forwarding, NAT, a proxy) */
  announce?: string[]
  mdns: boolean
  /** serve as a relay for members (`--relay`), with these limits */
  relay?: RelayServeOptions
  /** reservations to keep on member relays, each advertised as a relayed address (see relay.ts) */
  reservations?: number
  /** ask the home router to forward the listen ports (UPnP IGD / NAT-PMP, `--upnp`) */
  upnp?: boolean
  /** WebRTC links, hole punched through NATs with the STUN of member relays (`--webrtc`) */
  webrtc?: boolean
  agentName: string
  log: Logger
}

export type RadmeshHost = Libp2p<{ identify: unknown; ping: Ping; dcutr: unknown; relay?: CircuitRelayService }>

/**
 * libp2p's circuit relay transport, which holds the reservations, without its search of the whole network:
 * while it has fewer than it wants, it dials every peer that lands in the peer store to see whether it is a
 * relay (made for public networks with no peer routing). Here every member's address record lands there
 * (address-spread.ts), so a node with no public address linked to every member of the consortium. Relays
 * are still found among the members it is connected to (identify names the hop protocol), and in the peer
 * store among those it was ever connected to.
 */
function memberRelayTransport(): ReturnType<typeof circuitRelayTransport> {
  const make = circuitRelayTransport()
  return components => {
    const transport = make(components)
    const discovery = (transport as unknown as { discovery?: { onPeer?: unknown } }).discovery
    if (typeof discovery?.onPeer !== 'function') {
      throw new Error('@libp2p/circuit-relay-v2 changed: its relay discovery has no onPeer to turn off (host.ts)')
    }
    discovery.onPeer = () => {}
    return transport
  }
}

/**
 * The STUN servers of a member: the member relays its relayed links go through (the one a WebRTC link is
 * signalled over among them) and those it holds a reservation on, each at the address it reaches it by (a relay
 * started with `--webrtc` answers STUN on UDP STUN_PORT of every interface). A member that holds no reservation
 * yet (a reader that found its relay by itself) still learns its public port from the relay of the link.
 */
export function memberStunServers(libp2p: Pick<Libp2p, 'getMultiaddrs' | 'getConnections'>): string[] {
  const servers = new Set<string>()
  const relays = relayPeers(libp2p)
  for (const connection of libp2p.getConnections()) {
    if (connection.status !== 'open' || isWebRTC(connection.remoteAddr)) continue
    if (linkOf(connection).link !== 'relayed' && !relays.has(connection.remotePeer.toString())) continue
    // the relay's own address: the first component of a relayed link's remote address, or of a link to it
    const host = connection.remoteAddr.getComponents()[0]
    if (host?.name === 'ip4' || host?.name === 'dns4' || host?.name === 'dns')
      servers.add(`stun:${host.value}:${STUN_PORT}`)
    if (host?.name === 'ip6') servers.add(`stun:[${host.value}]:${STUN_PORT}`)
  }
  return [...servers]
}

/** The WebRTC transport, loaded only when asked for (its native module, node-datachannel, with it). */
async function webRTCTransport(host: () => Libp2p | undefined): Promise<ReturnType<typeof tcp>> {
  const { webRTC } = await import('@libp2p/webrtc')
  return webRTC({
    // Asked at each WebRTC dial and answer: the member relays held now. An empty list, not undefined, which
    // would mean libp2p's default (public) STUN servers.
    rtcConfiguration: () => {
      const libp2p = host()
      return { iceServers: libp2p === undefined ? [] : memberStunServers(libp2p).map(urls => ({ urls })) }
    }
  }) as unknown as ReturnType<typeof tcp>
}

export async function createHost(options: HostOptions): Promise<RadmeshHost> {
  const { registry, penalties, log } = options
  // Each `/p2p-circuit`: hold a reservation on one more relay among the connected members that serve one.
  // `/webrtc`: answer WebRTC dials, and advertise a `/p2p-circuit/webrtc` address beside each relayed one.
  const listen = [...options.listen, ...Array.from({ length: options.reservations ?? 0 }, () => '/p2p-circuit')]
  let node: Libp2p | undefined
  const webrtc =
    options.webrtc === true
      ? await webRTCTransport(() => node).then(
          transport => [transport],
          (error: unknown) => {
            // its native module (node-datachannel) is an optional dependency, per platform: without it, TCP only
            log.warn({ event: 'webrtc-unavailable', err: error }, `no WebRTC: ${(error as Error).message}`)
            return []
          }
        )
      : []
  if (webrtc.length > 0) listen.push('/webrtc')
  // Announced addresses stand in for the listen addresses, and the relay addresses of a reservation are kept
  // beside them (libp2p's own `announce` would drop those too: a member behind NAT would not advertise them).
  const announced = new Set(options.announce ?? [])
  const announce =
    announced.size === 0
      ? {}
      : {
          appendAnnounce: [...announced],
          announceFilter: (addrs: Multiaddr[]): Multiaddr[] =>
            addrs.filter(a => throughRelay(a) || announced.has(withoutPeerId(a)))
        }
  node = await createLibp2p({
    start: false,
    privateKey: options.identity.privateKey,
    nodeInfo: { userAgent: `radmesh/0.1.0 (${options.agentName})` },
    addresses: { listen, ...announce },
    transports: [tcp(), webSockets(), memberRelayTransport(), ...webrtc],
    connectionEncrypters: memberHandshake(registry, penalties, log),
    streamMuxers: [
      yamux({
        maxInboundStreams: P2P_LIMITS.maxInboundStreams,
        maxOutboundStreams: P2P_LIMITS.maxOutboundStreams,
        // Liveness is the connection monitor's (below): yamux's keepalive pings, but never closes a dead link.
        enableKeepAlive: false,
        streamOptions: { maxStreamWindowSize: P2P_LIMITS.maxStreamWindowSize }
      })
    ],
    connectionGater: { ...membershipGater(registry, penalties, log), ...relayGate(registry, penalties, log) },
    // Liveness: a ping stream on every link every 10 s; a link that does not answer is aborted (and redialled).
    connectionMonitor: {
      enabled: true,
      pingInterval: P2P_LIMITS.livenessIntervalMs,
      pingTimeout: { minTimeout: P2P_LIMITS.livenessTimeoutMs, maxTimeout: 3 * P2P_LIMITS.livenessTimeoutMs },
      abortConnectionOnPingFailure: true
    },
    connectionManager: {
      maxConnections: P2P_LIMITS.maxConnections,
      maxIncomingPendingConnections: P2P_LIMITS.maxIncomingPendingConnections,
      inboundUpgradeTimeout: P2P_LIMITS.inboundUpgradeTimeout
    },
    peerDiscovery: options.mdns ? [mdns({ serviceTag: 'radmesh.local' })] : [],
    services: {
      identify: identify(),
      ping: ping(),
      // Direct Connection Upgrade through Relay: a relayed link is replaced by a direct one where one can be had.
      dcutr: dcutr(),
      ...(options.relay === undefined ? {} : { relay: relayService(options.relay) }),
      // The router's word is taken for the mapped address (no AutoNAT among members: see direct-upgrade.ts).
      ...(options.upnp === true ? { upnp: uPnPNAT({ autoConfirmAddress: true }) } : {})
    }
  })
  return node as RadmeshHost
}
