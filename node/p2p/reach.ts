/**
 * Whether members can reach this node, from what happened rather than from a guess: the last member that
 * dialled it directly (a direct inbound link), its own address record (which of its addresses are public),
 * and the relays it holds a reservation on. libp2p's AutoNAT would ask members to dial back, but cannot run
 * among connected members (see direct-upgrade.ts).
 */
import type { Connection, Libp2p } from '@libp2p/interface'
import { isPrivate } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { Reach } from '../../protocol/api/peers.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { AddressBook } from './address-book.ts'
import { isWebRTC, linkOf, relayPeers, throughRelay } from './relay.ts'

/** Whether an address is outside private ranges and not through a relay (false for what does not parse). */
export function isPublicDirect(text: string): boolean {
  try {
    const addr = multiaddr(text)
    return !throughRelay(addr) && !isWebRTC(addr) && isPrivate(addr) === false
  } catch {
    return false
  }
}

export class ReachWatch {
  private readonly libp2p: Libp2p
  private readonly registry: Pick<MembershipRegistry, 'isMember' | 'certificateOf'>
  private readonly book: Pick<AddressBook, 'own'>
  private readonly reservationsWanted: number
  private dialledIn: { peerId: string; at: number } | undefined

  constructor(
    libp2p: Libp2p,
    registry: Pick<MembershipRegistry, 'isMember' | 'certificateOf'>,
    book: Pick<AddressBook, 'own'>,
    reservationsWanted: number
  ) {
    this.libp2p = libp2p
    this.registry = registry
    this.book = book
    this.reservationsWanted = reservationsWanted
  }

  start(): void {
    this.libp2p.addEventListener('connection:open', this.onConnection)
  }

  stop(): void {
    this.libp2p.removeEventListener('connection:open', this.onConnection)
  }

  private readonly onConnection = (event: CustomEvent<Connection>): void => {
    const connection = event.detail
    const peerId = connection.remotePeer.toString()
    // a WebRTC link was hole punched from both sides: no proof that members can dial this node
    const { link, transport } = linkOf(connection)
    if (connection.direction !== 'inbound' || link !== 'direct' || transport === 'webrtc') return
    if (this.registry.isMember(peerId)) this.dialledIn = { peerId, at: Date.now() }
  }

  summary(): Reach {
    const addrs = this.book.own()?.addrs ?? []
    const relays = [...relayPeers(this.libp2p)].map(peerId => {
      const name = this.registry.certificateOf(peerId)?.name
      return { peerId, ...(name === undefined ? {} : { name }) }
    })
    const dialledIn =
      this.dialledIn === undefined
        ? undefined
        : {
            peerId: this.dialledIn.peerId,
            name: this.registry.certificateOf(this.dialledIn.peerId)?.name ?? this.dialledIn.peerId,
            at: new Date(this.dialledIn.at).toISOString()
          }
    return {
      reachable: dialledIn !== undefined ? 'direct' : relays.length > 0 ? 'relays-only' : 'unknown',
      ...(dialledIn === undefined ? {} : { dialledIn }),
      addrs,
      publicAddrs: addrs.filter(isPublicDirect),
      relays,
      reservationsWanted: this.reservationsWanted
    }
  }
}
