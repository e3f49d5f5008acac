/**
 * The members this node is connected to now, each once, and how: direct, or relayed through which member
 * relay, since when (for `GET /api/peers` and `radmesh status`).
 */
import type { Connection, Libp2p, PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { ConnectedMember } from '../../protocol/api/peers.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import { linkOf } from './relay.ts'

export function connectedMembers(
  libp2p: Pick<Libp2p, 'getConnections'>,
  registry: Pick<MembershipRegistry, 'certificateOf' | 'isMember'>
): ConnectedMember[] {
  const byPeer = new Map<string, Connection[]>()
  for (const connection of libp2p.getConnections()) {
    if (connection.status !== 'open') continue
    const peerId = connection.remotePeer.toString()
    if (registry.certificateOf(peerId) === undefined || !registry.isMember(peerId)) continue
    byPeer.set(peerId, [...(byPeer.get(peerId) ?? []), connection])
  }
  return [...byPeer].map(([peerId, connections]) => describe(peerId, connections, registry))
}

function describe(
  peerId: string,
  connections: Connection[],
  registry: Pick<MembershipRegistry, 'certificateOf'>
): ConnectedMember {
  const certificate = registry.certificateOf(peerId)
  // The oldest direct connection if there is one, else the oldest relayed one.
  const ordered = [...connections].sort(
    (a, b) =>
      Number(linkOf(a).link === 'relayed') - Number(linkOf(b).link === 'relayed') || a.timeline.open - b.timeline.open
  )
  const chosen = ordered[0] as Connection
  const { link, relay, transport } = linkOf(chosen)
  const relayName = relay === undefined ? undefined : registry.certificateOf(relay)?.name
  const limits = chosen.limits
  return {
    peerId,
    name: certificate?.name ?? peerId,
    role: certificate?.role ?? 'unknown',
    subspecialties: certificate?.subspecialties ?? [],
    addrs: connections.map(c => c.remoteAddr.toString()),
    link,
    ...(transport === undefined ? {} : { transport }),
    ...(relay === undefined
      ? {}
      : { relay: { peerId: relay, ...(relayName === undefined ? {} : { name: relayName }) } }),
    since: new Date(chosen.timeline.open).toISOString(),
    ...(limits === undefined
      ? {}
      : {
          limited: {
            ...(limits.bytes === undefined ? {} : { bytes: limits.bytes.toString() }),
            ...(limits.seconds === undefined ? {} : { seconds: limits.seconds })
          }
        })
  }
}

/** Logs each member connecting and disconnecting, until the returned function is called. */
export function logMemberLinks(
  libp2p: Pick<Libp2p, 'addEventListener' | 'removeEventListener'>,
  registry: Pick<MembershipRegistry, 'certificateOf'>,
  log: Logger
): () => void {
  const onPeerConnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail.toString()
    log.info(
      { event: 'member-connected', peer, name: registry.certificateOf(peer)?.name },
      `connected to ${registry.certificateOf(peer)?.name ?? peer}`
    )
  }
  const onPeerDisconnect = (event: CustomEvent<PeerId>): void => {
    log.info({ event: 'member-disconnected', peer: event.detail.toString() }, 'member disconnected')
  }
  libp2p.addEventListener('peer:connect', onPeerConnect)
  libp2p.addEventListener('peer:disconnect', onPeerDisconnect)
  return () => {
    libp2p.removeEventListener('peer:connect', onPeerConnect)
    libp2p.removeEventListener('peer:disconnect', onPeerDisconnect)
  }
}
