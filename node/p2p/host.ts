/**
 * The libp2p host of a radmesh node: TCP and WebSockets, the member handshake (Noise + certificates)
 * in place of bare Noise, Yamux, identify, ping, optional mDNS, and the membership gater.
 */
import { yamux } from '@chainsafe/libp2p-yamux'
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

export interface HostOptions {
  identity: Identity
  registry: MembershipRegistry
  penalties: PeerPenalties
  listen: string[]
  /** addresses other members should dial instead of the listen addresses (port forwarding, NAT, a proxy) */
  announce?: string[]
  mdns: boolean
  agentName: string
  log: Logger
}

export type RadmeshHost = Libp2p<{ identify: unknown, ping: Ping }>

export async function createHost (options: HostOptions): Promise<RadmeshHost> {
  return await createLibp2p({
    start: false,
    privateKey: options.identity.privateKey,
    nodeInfo: { userAgent: `radmesh/0.1.0 (${options.agentName})` },
    addresses: { listen: options.listen, ...(options.announce === undefined || options.announce.length === 0 ? {} : { announce: options.announce }) },
    transports: [tcp(), webSockets()],
    connectionEncrypters: memberHandshake(options.registry, options.penalties, options.log),
    streamMuxers: [yamux({
      maxInboundStreams: P2P_LIMITS.maxInboundStreams,
      maxOutboundStreams: P2P_LIMITS.maxOutboundStreams,
      enableKeepAlive: true,
      keepAliveInterval: P2P_LIMITS.keepAliveInterval,
      streamOptions: { maxStreamWindowSize: P2P_LIMITS.maxStreamWindowSize }
    })],
    connectionGater: membershipGater(options.registry, options.penalties, options.log),
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
      ping: ping()
    }
  }) as RadmeshHost
}
