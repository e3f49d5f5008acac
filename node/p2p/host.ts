/**
 * The libp2p host of a radmesh node: TCP, WebSockets and circuit relay, the member handshake (Noise +
 * certificates) in place of bare Noise, Yamux, identify, ping, optional mDNS, the membership gater, and the
 * relay service on a node that serves one (see relay.ts).
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
import { linkOf, relayGate, relayService, type RelayServeOptions } from './relay.ts'

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

export async function createHost(options: HostOptions): Promise<RadmeshHost> {
  const { registry, penalties, log } = options
  // Each `/p2p-circuit`: hold a reservation on one more relay among the connected members that serve one.
  const listen = [...options.listen, ...Array.from({ length: options.reservations ?? 0 }, () => '/p2p-circuit')]
  // Announced addresses stand in for the listen addresses, and the relay addresses of a reservation are kept
  // beside them (libp2p's own `announce` would drop those too: a member behind NAT would not advertise them).
  const announced = new Set(options.announce ?? [])
  const announce =
    announced.size === 0
      ? {}
      : {
          appendAnnounce: [...announced],
          announceFilter: (addrs: Multiaddr[]): Multiaddr[] =>
            addrs.filter(a => linkOf({ remoteAddr: a }).link === 'relayed' || announced.has(withoutPeerId(a)))
        }
  return (await createLibp2p({
    start: false,
    privateKey: options.identity.privateKey,
    nodeInfo: { userAgent: `radmesh/0.1.0 (${options.agentName})` },
    addresses: { listen, ...announce },
    transports: [tcp(), webSockets(), memberRelayTransport()],
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
  })) as RadmeshHost
}
