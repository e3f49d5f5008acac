/**
 * Opens a stream of a protocol that may run on limited links (a relay with `--relay-data-limit` or
 * `--relay-duration-limit`) to a member: on a link already open when there is one (a direct link first, then an
 * unlimited one, then a limited one), else by dialling. libp2p's `dialProtocol` never picks a limited link: it
 * dials anew, which fails for a member that can be reached only through that relay.
 */
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { linkOf } from './relay.ts'

const rank = (c: Connection): number => (linkOf(c).link === 'direct' ? 0 : c.limits === undefined ? 1 : 2)

export async function openStreamAnyLink(
  libp2p: Pick<Libp2p, 'getConnections' | 'dialProtocol'>,
  peer: PeerId,
  protocol: string,
  options: { signal: AbortSignal }
): Promise<Stream> {
  const open = libp2p
    .getConnections(peer)
    .filter(c => c.status === 'open')
    .sort((a, b) => rank(a) - rank(b))
  const best = open[0]
  if (best !== undefined) {
    try {
      return await best.newStream(protocol, { signal: options.signal, runOnLimitedConnection: true })
    } catch {}
  }
  return await libp2p.dialProtocol(peer, protocol, { signal: options.signal, runOnLimitedConnection: true })
}
