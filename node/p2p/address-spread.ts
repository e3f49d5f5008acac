/**
 * Spreads the address book (`/radmesh/addresses/1.0.0`) with the members' flood (flood.ts), and keeps this
 * node's own record current: a new one is signed and sent to every member at once when the node's addresses
 * change (libp2p's `self:peer:update`: a listener, a relay reservation, an address confirmed), and when an
 * interface gets another address, which libp2p does not announce (checked every few seconds), and again
 * before the record is half way to its expiry.
 *
 * A record learnt goes into libp2p's peer store in place of the addresses it had for that member, so a dial
 * by peer id (the redialer's) uses the newest record.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import {
  ADDRESS_RECORD_LIFETIME_MS,
  ADDRESSES_MAX_INBOUND_STREAMS,
  ADDRESSES_MAX_OUTBOUND_STREAMS,
  ADDRESSES_PROTOCOL,
  ADDRESSES_TIMEOUT_MS,
  type AddressEntry,
  type AddressRecord,
  decodeAddressList,
  encodeAddressList,
  MAX_ADDRESS_ENTRIES_PER_MESSAGE,
  MAX_ADDRESSES_MESSAGE_BYTES
} from '../../protocol/membership/index.ts'
import type { AddressBook } from './address-book.ts'
import { Flood } from './flood.ts'
import type { PeerPenalties } from './penalties.ts'

/** How often the node's own addresses are compared with its record: a new address is announced within this. */
export const ADDRESS_CHECK_INTERVAL_MS = 5_000

/**
 * The multiaddrs of a record that this node can dial, without the trailing `/p2p/PEERID` (the peer store keeps
 * addresses without it): addresses that do not parse, or that end in another peer's id, are left out.
 */
export function dialableAddrs(record: Pick<AddressRecord, 'peerId' | 'addrs'>): Multiaddr[] {
  const out: Multiaddr[] = []
  for (const text of record.addrs) {
    try {
      const addr = multiaddr(text)
      const components = addr.getComponents()
      const last = components.at(-1)
      if (last?.name === 'p2p' && last.value !== record.peerId) continue
      out.push(last?.name === 'p2p' ? multiaddr(text.slice(0, text.lastIndexOf('/p2p/'))) : addr)
    } catch {}
  }
  return out
}

/**
 * The addresses this node's transports listen on, confirmed or not. libp2p announces (in identify and
 * `getMultiaddrs()`) a public address only once AutoNAT has confirmed it, and AutoNAT cannot run among members
 * (see direct-upgrade.ts): a site with a public address would never tell anyone. Its members try it instead.
 */
function transportAddrs(libp2p: Libp2p): Multiaddr[] {
  const node = libp2p as unknown as { components?: { transportManager?: { getAddrs(): Multiaddr[] } } }
  try {
    return node.components?.transportManager?.getAddrs() ?? []
  } catch {
    return []
  }
}

export interface AddressSpreadOptions {
  /** put the transports' own addresses in this node's record (not when `--announce` stands in for them) */
  listenAddrs: boolean
  /**
   * told of a member's record just before it goes into the peer store, where a member new to it is announced
   * as discovered (libp2p's `peer:discovery`): the redialer does not take that for a member found on the LAN
   */
  storing?: (peerId: PeerId) => void
}

export class AddressSpreader {
  private readonly libp2p: Libp2p
  private readonly book: AddressBook
  private readonly log: Logger
  private readonly flood: Flood<AddressEntry>
  private readonly onLearnt: (peerId: PeerId, record: AddressRecord) => void
  private readonly options: AddressSpreadOptions
  private timer: NodeJS.Timeout | undefined
  private issuing: Promise<void> = Promise.resolve()
  private unsubscribe = (): void => {}

  /** `onLearnt` is told of every newer record of another member, once it is in the peer store. */
  constructor(
    libp2p: Libp2p,
    book: AddressBook,
    penalties: PeerPenalties,
    log: Logger,
    onLearnt: (peerId: PeerId, record: AddressRecord) => void = () => {},
    options: AddressSpreadOptions = { listenAddrs: true }
  ) {
    this.options = options
    this.libp2p = libp2p
    this.book = book
    this.log = log
    this.onLearnt = onLearnt
    this.flood = new Flood(
      libp2p,
      {
        protocol: ADDRESSES_PROTOCOL,
        maxMessageBytes: MAX_ADDRESSES_MESSAGE_BYTES,
        maxItemsPerMessage: MAX_ADDRESS_ENTRIES_PER_MESSAGE,
        maxInboundStreams: ADDRESSES_MAX_INBOUND_STREAMS,
        maxOutboundStreams: ADDRESSES_MAX_OUTBOUND_STREAMS,
        timeoutMs: ADDRESSES_TIMEOUT_MS,
        encode: encodeAddressList,
        decode: decodeAddressList
      },
      { all: () => book.all(), add: async (list, from) => await book.add(list, from) },
      {
        what: 'address records',
        invalidCode: 'invalid-address-record',
        invalidEvent: 'invalid-address-records',
        learntEvent: 'address-records-learnt'
      },
      penalties,
      log
    )
  }

  /** Puts the stored book into the peer store, serves the protocol and announces this node's record. */
  async start(): Promise<void> {
    for (const entry of this.book.all()) {
      if (entry.record.peerId !== this.libp2p.peerId.toString()) await this.intoPeerStore(entry.record)
    }
    this.unsubscribe = this.book.onUpdated(this.onUpdated)
    await this.flood.start()
    this.libp2p.addEventListener('self:peer:update', this.onSelfUpdate)
    this.timer = setInterval(this.check, ADDRESS_CHECK_INTERVAL_MS)
    this.timer.unref()
    this.check()
    await this.issuing
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.libp2p.removeEventListener('self:peer:update', this.onSelfUpdate)
    this.unsubscribe()
    await this.flood.stop()
    await this.issuing
  }

  private readonly onSelfUpdate = (): void => {
    this.check()
  }

  /** Issues a new own record when the addresses differ from the current one, or it is half way to expiry. */
  private readonly check = (): void => {
    this.issuing = this.issuing.then(async () => {
      const self = this.libp2p.peerId.toString()
      const own = this.options.listenAddrs ? transportAddrs(this.libp2p).map(a => `${a.toString()}/p2p/${self}`) : []
      const addrs = [...new Set([...this.libp2p.getMultiaddrs().map(String), ...own])].sort()
      const current = this.book.own()
      const now = Date.now()
      const same = current !== undefined && JSON.stringify([...current.addrs].sort()) === JSON.stringify(addrs)
      const fresh = current !== undefined && Date.parse(current.expiresAt) - now > ADDRESS_RECORD_LIFETIME_MS / 2
      if (same && fresh) return
      try {
        const record = await this.book.issue(addrs, now)
        this.log.info(
          { event: 'address-record-issued', seq: record.seq, addrs: record.addrs },
          `announcing this node's addresses (${record.addrs.length})`
        )
      } catch (error) {
        this.log.warn({ err: error }, 'could not issue an address record')
      }
    })
  }

  private readonly onUpdated = (entry: AddressEntry, from: string | undefined): void => {
    const owner = entry.record.peerId
    // Not back to the member it came from, nor to the member it is about (who knows its own addresses best).
    this.flood.sendToAll([entry], c => [from, owner].includes(c.remotePeer.toString()))
    if (owner === this.libp2p.peerId.toString()) return
    void this.intoPeerStore(entry.record).then(peerId => {
      if (peerId !== undefined) this.onLearnt(peerId, entry.record)
    })
  }

  private async intoPeerStore(record: AddressRecord): Promise<PeerId | undefined> {
    try {
      const peerId = peerIdFromString(record.peerId)
      this.options.storing?.(peerId)
      await this.libp2p.peerStore.patch(peerId, { multiaddrs: dialableAddrs(record) })
      return peerId
    } catch (error) {
      this.log.debug({ peer: record.peerId, err: error }, 'could not put an address record in the peer store')
      return undefined
    }
  }
}
