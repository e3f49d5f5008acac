/**
 * The libp2p host of a radmesh node: TCP, WebSockets and circuit relay, the member handshake (Noise +
 * certificates) in place of bare Noise, Yamux, identify, ping, optional mDNS, the membership gater, and the
 * relay service on a node that serves one (see relay.ts).
 */
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport, type CircuitRelayService } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import type { Libp2p } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { ping, type Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { createLibp2p } from 'libp2p'
import type { Logger } from 'pino'
import type { Identity } from '../identity/keys.ts'
import { membershipGater } from '../membership/gater.ts'
import { memberHandshake } from '../membership/handshake.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import { P2P_LIMITS } from './limits.ts'
import type { PeerPenalties } from './penalties.ts'
import { relayGate, relayService, type RelayServeOptions } from './relay.ts'

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
  /** keep a reservation on a member relay and advertise the relayed address (`--relay-via`) */
  reserve?: boolean
  agentName: string
  log: Logger
}

export type RadmeshHost = Libp2p<{ identify: unknown; ping: Ping; relay?: CircuitRelayService }>

export async function createHost(options: HostOptions): Promise<RadmeshHost> {
  const { registry, penalties, log } = options
  // `/p2p-circuit`: hold a reservation on a relay among the connected members that serve one.
  const listen = options.reserve === true ? [...options.listen, '/p2p-circuit'] : options.listen
  const announce = options.announce === undefined || options.announce.length === 0 ? {} : { announce: options.announce }
  return (await createLibp2p({
    start: false,
    privateKey: options.identity.privateKey,
    nodeInfo: { userAgent: `radmesh/0.1.0 (${options.agentName})` },
    addresses: { listen, ...announce },
    transports: [tcp(), webSockets(), circuitRelayTransport()],
    connectionEncrypters: memberHandshake(registry, penalties, log),
    streamMuxers: [
      yamux({
        maxInboundStreams: P2P_LIMITS.maxInboundStreams,
        maxOutboundStreams: P2P_LIMITS.maxOutboundStreams,
        enableKeepAlive: true,
        keepAliveInterval: P2P_LIMITS.keepAliveInterval,
        streamOptions: { maxStreamWindowSize: P2P_LIMITS.maxStreamWindowSize }
      })
    ],
    connectionGater: { ...membershipGater(registry, penalties, log), ...relayGate(registry, penalties, log) },
    // Liveness comes from yamux's keepalive: libp2p's own monitor would open a ping stream on every link every 10 s.
    connectionMonitor: { enabled: false },
    connectionManager: {
      maxConnections: P2P_LIMITS.maxConnections,
      maxIncomingPendingConnections: P2P_LIMITS.maxIncomingPendingConnections,
      inboundUpgradeTimeout: P2P_LIMITS.inboundUpgradeTimeout
    },
    peerDiscovery: options.mdns ? [mdns({ serviceTag: 'radmesh.local' })] : [],
    services: {
      identify: identify(),
      ping: ping(),
      ...(options.relay === undefined ? {} : { relay: relayService(options.relay) })
    }
  })) as RadmeshHost
}
