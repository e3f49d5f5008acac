/**
 * `radmesh status`: what the running node on HOME says about itself and its peers.
 * `radmesh viewer`: a new one-time sign-in URL for the viewer of the running node on HOME.
 */
import type { ConnectedMember } from '../http/services.ts'
import type { Reach } from '../../protocol/api/peers.ts'
import { parse, required } from './args.ts'
import { connectToNode } from './client.ts'

const STATUS = 'radmesh status --home HOME'

export async function statusCommand(argv: string[], print: (line: string) => void): Promise<void> {
  const { values } = parse(argv, { home: { type: 'string' } }, STATUS)
  const client = await connectToNode(required(values, 'home', STATUS))
  const health = await client.request<{ ok: boolean; peerId: string; name: string; role: string }>('GET', '/api/health')
  const membership = await client.request<{
    consortium: { name: string }
    certificate: { expiresAt: string }
    revocations: unknown[]
  }>('GET', '/api/membership')
  const peers = await client.request<ConnectedMember[]>('GET', '/api/peers')
  const reach = await client.request<Reach>('GET', '/api/reach')
  print(`${health.name} (${health.role}) ${health.peerId} ${health.ok ? 'running' : 'NOT RUNNING'} at ${client.url}`)
  print(
    `consortium "${membership.consortium.name}", certificate valid until ${membership.certificate.expiresAt}, ` +
      `${membership.revocations.length} revocation(s) known`
  )
  print(reachText(reach))
  print(`${peers.length} member(s) connected${peers.length > 0 ? ':' : ''}`)
  for (const peer of peers) print(`  ${peer.name} (${peer.role}) ${peer.peerId} ${linkText(peer)}`)
}

/** One line: whether members reach this node directly, only through relays, or not known yet. */
function reachText(reach: Reach): string {
  const relays = reach.relays.map(r => r.name ?? r.peerId).join(', ')
  const via = reach.relays.length === 0 ? 'holds no relay reservation' : `holds a reservation on ${relays}`
  const how =
    reach.reachable === 'direct' && reach.dialledIn !== undefined
      ? `reachable directly (${reach.dialledIn.name} dialled in at ${reach.dialledIn.at})`
      : reach.reachable === 'relays-only'
        ? 'no member has dialled in directly yet: reachable through relays'
        : 'no member has dialled in directly yet'
  const pub = reach.publicAddrs.length === 0 ? 'no public address' : `public: ${reach.publicAddrs.join(', ')}`
  return `reach: ${how}; ${via}; ${pub}`
}

/** "direct since …", "direct (webrtc) since …" or "relayed via NAME (PEER) since …", then the addresses. */
function linkText(peer: ConnectedMember): string {
  const relay = peer.relay === undefined ? '' : ` via ${peer.relay.name ?? 'relay'} (${peer.relay.peerId})`
  const limits =
    peer.limited === undefined
      ? ''
      : ` [relay limits: ${peer.limited.bytes ?? 'no'} bytes, ${peer.limited.seconds ?? 'no'} s left]`
  const transport = peer.transport === undefined ? '' : ` (${peer.transport})`
  return `${peer.link}${transport}${relay} since ${peer.since}${limits}: ${peer.addrs.join(', ')}`
}

const VIEWER = 'radmesh viewer --home HOME'

export async function viewerCommand(argv: string[], print: (line: string) => void): Promise<void> {
  const { values } = parse(argv, { home: { type: 'string' } }, VIEWER)
  const client = await connectToNode(required(values, 'home', VIEWER))
  const { url } = await client.request<{ url: string }>('POST', '/api/signin-links')
  print(`viewer: ${url}`)
}
