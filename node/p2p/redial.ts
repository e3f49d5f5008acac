/**
 * Keeps this node connected to the members it should reach, through links that drop.
 *
 * Targets are the `--peer` addresses, members discovered by mDNS, every member this node has been
 * connected to during this run, and the members in its address book when it starts (a node that was away
 * finds the others at the addresses they last announced). A member whose address record arrives while this
 * node runs is not dialled for that alone: it is connected when something needs it (a site sharing a study
 * dials its readers), as a hundred members would otherwise make a hundred links each. When a target is not
 * connected, it is dialled again with exponential backoff, for ever, until it connects or is revoked: a rural
 * site's link may be down for hours. A newer address record of a target (address-spread.ts puts it in the peer
 * store first) is dialled at once, without waiting out the backoff.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { MembershipRegistry } from '../membership/registry.ts'
import { REDIAL_POLICY } from './limits.ts'

interface Target {
  key: string
  peerId?: PeerId
  addr?: Multiaddr
  attempt: number
  timer?: NodeJS.Timeout
  dialing: boolean
  /** found by mDNS and never connected: tried once, not for ever (it may belong to another consortium) */
  once?: boolean
  /**
   * from the stored address book and never connected in this run: given up after `BOOK_ATTEMPTS` failures once
   * this node reaches some member (then its network works, and that member's addresses are stale or behind a
   * NAT: it comes back when it dials in, or through what the two share); tried for ever while it reaches none
   */
  book?: boolean
}

/** Members at most whose records are remembered as not discoveries (a consortium's size, with room). */
const MAX_FROM_ADDRESS_BOOK = 4_096

/** Failures after which a member from the stored book, never reached in this run, is let go of (about 30 s). */
export const BOOK_ATTEMPTS = 5

export function backoffDelay(attempt: number, random = Math.random): number {
  const base = Math.min(REDIAL_POLICY.maxDelayMs, REDIAL_POLICY.initialDelayMs * REDIAL_POLICY.factor ** attempt)
  return Math.round(base * (1 - REDIAL_POLICY.jitter + 2 * REDIAL_POLICY.jitter * random()))
}

export class Redialer {
  private readonly targets = new Map<string, Target>()
  /**
   * Members whose address record went into the peer store before they were ever seen there: the peer store
   * announces them as discovered, as it does a member found by mDNS, but knowing a member's addresses is no
   * reason to link to it (links cost keepalives both ways; see prune.ts). It is dialled when something needs it.
   */
  private readonly fromAddressBook = new Set<string>()
  private readonly libp2p: Libp2p
  private readonly registry: MembershipRegistry
  private readonly log: Logger
  private stopped = false
  private unsubscribe = (): void => {}

  constructor(libp2p: Libp2p, registry: MembershipRegistry, log: Logger) {
    this.libp2p = libp2p
    this.registry = registry
    this.log = log
  }

  /** Starts with the `--peer` addresses and the members of the address book (`known`). */
  start(bootstrap: Multiaddr[], known: string[] = []): void {
    for (const addr of bootstrap) {
      const peerIdText = addr.getComponents().findLast(c => c.name === 'p2p')?.value
      const peerId = peerIdText === undefined ? undefined : peerIdFromString(peerIdText)
      this.add({
        key: peerIdText ?? addr.toString(),
        ...(peerId === undefined ? {} : { peerId }),
        addr,
        attempt: 0,
        dialing: false
      })
    }
    for (const key of known) {
      if (!this.registry.isRevoked(key))
        this.add({ key, peerId: peerIdFromString(key), attempt: 0, dialing: false, book: true })
    }
    this.libp2p.addEventListener('peer:connect', this.onConnect)
    this.libp2p.addEventListener('peer:disconnect', this.onDisconnect)
    this.libp2p.addEventListener('peer:discovery', this.onDiscovery)
    this.unsubscribe = this.registry.onRevoked(this.onRevoked)
    for (const target of this.targets.values()) this.schedule(target, 0)
    // libp2p announces a peer as discovered only the first time it lands in the peer store, and mDNS answers
    // come while the host is still starting, before this listener: those peers are dialled once now.
    const self = this.libp2p.peerId.toString()
    void this.libp2p.peerStore
      .all()
      .then(peers => {
        for (const peer of peers) {
          if (peer.id.toString() !== self && peer.addresses.length > 0)
            this.onDiscovery(new CustomEvent('peer:discovery', { detail: { id: peer.id } }))
        }
      })
      .catch((error: unknown) => {
        this.log.warn({ err: error }, 'could not list the peers discovered while starting')
      })
  }

  /**
   * Stops keeping a member connected (the pruner closed an idle link to a member this node shares nothing
   * with): it is not redialled until it connects again, or is asked for. A `--peer` target is never let go of.
   */
  forget(peerId: string): void {
    const target = this.targets.get(peerId)
    if (target === undefined || target.addr !== undefined) return
    clearTimeout(target.timer)
    this.targets.delete(peerId)
  }

  /**
   * A newer address record of a member is in the peer store: a target not connected is dialled now. One
   * connected only by links this node dialled to addresses the record no longer names, other than its
   * `--peer` address, has moved (those links are dead, or soon will be): it is dialled afresh at its new
   * addresses.
   */
  learnt(peerId: PeerId, addrs: Multiaddr[]): void {
    const target = this.targets.get(peerId.toString())
    if (this.stopped || this.registry.isRevoked(peerId.toString())) return
    const open = this.libp2p.getConnections(peerId).filter(c => c.status === 'open')
    if (open.length === 0) {
      if (target === undefined) return
      target.attempt = 0
      this.schedule(target, 0)
      return
    }
    const named = new Set(addrs.map(a => a.toString()))
    // The address the administrator gave (`--peer`) is never one a member moved away from: it may be a port
    // forward, a proxy or a tunnel the member does not know of and so never names in its record.
    const configured = target?.addr?.decapsulateCode(421).toString()
    const moved = open.every(c => {
      const dialled = c.remoteAddr.decapsulateCode(421).toString()
      return (
        c.direction === 'outbound' &&
        !c.remoteAddr.getComponents().some(x => x.name === 'p2p-circuit') &&
        !named.has(dialled) &&
        dialled !== configured
      )
    })
    if (!moved || addrs.length === 0) return
    this.log.info(
      { event: 'member-moved', peer: peerId.toString() },
      `${peerId} announced new addresses; dialling them`
    )
    void this.libp2p
      .dial(
        addrs.map(a => a.encapsulate(`/p2p/${peerId}`)),
        {
          force: true,
          signal: AbortSignal.timeout(REDIAL_POLICY.dialTimeoutMs)
        }
      )
      .catch((error: unknown) => {
        this.log.debug(
          { event: 'redial-failed', peer: peerId.toString(), error: (error as Error).message },
          'dial failed'
        )
      })
  }

  /** A member's address record is going into the peer store (address-spread.ts): not a discovery to dial. */
  storingRecord(peerId: PeerId): void {
    const key = peerId.toString()
    if (!this.targets.has(key) && this.fromAddressBook.size < MAX_FROM_ADDRESS_BOOK) this.fromAddressBook.add(key)
  }

  /** Whether a member is a target given on the command line (`--peer`). */
  configured(peerId: string): boolean {
    return this.targets.get(peerId)?.addr !== undefined
  }

  stop(): void {
    this.stopped = true
    this.libp2p.removeEventListener('peer:connect', this.onConnect)
    this.libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
    this.libp2p.removeEventListener('peer:discovery', this.onDiscovery)
    this.unsubscribe()
    for (const target of this.targets.values()) clearTimeout(target.timer)
  }

  private add(target: Target): Target {
    const known = this.targets.get(target.key)
    if (known !== undefined) return known
    this.targets.set(target.key, target)
    return target
  }

  private readonly onConnect = (event: CustomEvent<PeerId>): void => {
    const peerId = event.detail
    const key = peerId.toString()
    // A bootstrap address dialled without a peer id: now we know whose it is.
    for (const target of this.targets.values()) {
      if (
        target.peerId === undefined &&
        target.addr !== undefined &&
        this.libp2p.getConnections(peerId).some(c => c.remoteAddr.equals(target.addr as Multiaddr))
      ) {
        this.targets.delete(target.key)
        target.key = key
        target.peerId = peerId
        this.targets.set(key, target)
      }
    }
    const target = this.add({ key, peerId, attempt: 0, dialing: false })
    target.attempt = 0
    delete target.once
    delete target.book
    clearTimeout(target.timer)
  }

  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    const target = this.targets.get(event.detail.toString())
    if (target !== undefined && !this.registry.isRevoked(target.key)) {
      this.log.info({ event: 'peer-lost', peer: target.key }, `lost ${target.key}; redialling`)
      this.schedule(target, backoffDelay(0))
    }
  }

  private readonly onDiscovery = (event: CustomEvent<{ id: PeerId }>): void => {
    const key = event.detail.id.toString()
    if (this.fromAddressBook.delete(key) || this.targets.has(key) || this.registry.isRevoked(key)) return
    this.schedule(this.add({ key, peerId: event.detail.id, attempt: 0, dialing: false, once: true }), 0)
  }

  private readonly onRevoked = (revocation: { peerId: string }): void => {
    const target = this.targets.get(revocation.peerId)
    if (target === undefined) return
    clearTimeout(target.timer)
    this.targets.delete(target.key)
  }

  private schedule(target: Target, delay: number): void {
    if (this.stopped) return
    clearTimeout(target.timer)
    target.timer = setTimeout(() => {
      void this.dial(target)
    }, delay)
    target.timer.unref()
  }

  private async dial(target: Target): Promise<void> {
    if (this.stopped || target.dialing || this.targets.get(target.key) !== target) return
    if (target.peerId !== undefined && this.libp2p.getConnections(target.peerId).length > 0) return
    target.dialing = true
    try {
      // First the peer id (libp2p tries every address it has learnt), then the configured address: what a
      // peer announces (identify replaces the address we dialled) may not be reachable from here, as
      // behind a NAT or a proxy, while the address the administrator gave is.
      const peerAddrs =
        target.peerId === undefined
          ? []
          : await this.libp2p.peerStore.get(target.peerId).then(
              p => p.addresses,
              () => []
            )
      const ways: Array<PeerId | Multiaddr> = []
      if (target.peerId !== undefined && (peerAddrs.length > 0 || target.addr === undefined)) ways.push(target.peerId)
      if (target.addr !== undefined) ways.push(target.addr)
      let failure: unknown
      for (const way of ways) {
        try {
          await this.libp2p.dial(way, { signal: AbortSignal.timeout(REDIAL_POLICY.dialTimeoutMs) })
          failure = undefined
          break
        } catch (error) {
          failure = error
        }
      }
      if (failure !== undefined) throw failure
      target.attempt = 0
    } catch (error) {
      const reachesSome = this.libp2p.getConnections().length > 0
      if (target.once === true || (target.book === true && target.attempt + 1 >= BOOK_ATTEMPTS && reachesSome)) {
        this.targets.delete(target.key)
        return
      }
      const delay = backoffDelay(++target.attempt)
      // The first failures are expected (the member is restarting); later ones are worth an operator's eye.
      this.log[target.attempt >= 4 ? 'info' : 'debug'](
        {
          event: 'redial-failed',
          peer: target.key,
          attempt: target.attempt,
          retryInMs: delay,
          error: (error as Error).message
        },
        'dial failed'
      )
      this.schedule(target, delay)
    } finally {
      target.dialing = false
    }
  }
}
