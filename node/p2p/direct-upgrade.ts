/**
 * Replaces a relayed link by a direct one when either side can be dialled: a member reached only through a
 * relay is dialled at the direct addresses of its newest address record (and those identify reported), and
 * once a direct link is up the relayed one is closed, so studies move straight between the two.
 *
 * libp2p's DCUtR (also installed, see host.ts) is meant to do this and more, but over TCP in js-libp2p it
 * cannot: identify drops every observed TCP address (js-libp2p issue 2620: a dial's source port is not the
 * listen port), so a node behind NAT offers only its private LAN address and DCUtR finds nothing to dial; and
 * when the dialler has a public address, DCUtR tries it once, at the moment the relayed link opens, before
 * identify or the address book has told the other side any address. This module tries again when they have.
 * Two members both behind NAT cannot hole punch over TCP: that would need a dial from the listen port itself
 * (SO_REUSEPORT), which Node's sockets do not offer. They can over UDP with WebRTC (`--webrtc`, see host.ts):
 * when no TCP address works and the member speaks WebRTC signalling, the one of the two with the smaller peer id
 * (one dial, not two crossing) dials its `/p2p-circuit/webrtc` address through the relayed link; the WebRTC link
 * replaces the relayed one like a TCP one would.
 */
import type { Connection, IdentifyResult, Libp2p, PeerId } from '@libp2p/interface'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { AddressBook } from './address-book.ts'
import { dialableAddrs } from './address-spread.ts'
import { REDIAL_POLICY } from './limits.ts'
import { isWebRTC, linkOf } from './relay.ts'

/** The protocol of WebRTC signalling (@libp2p/webrtc's): a member that speaks it can be dialled over WebRTC. */
const WEBRTC_SIGNALLING = '/webrtc-signaling/0.0.1'

/** A relayed link is looked at this long after it opens: by then identify and the address book have run. */
export const UPGRADE_DELAY_MS = 1_000
/**
 * An inbound WebRTC link must carry a stream within this, or it is aborted: when the dialler gives up before ICE
 * completes, @libp2p/webrtc 6.0.33's answering side swallows the reset of the signalling stream and upgrades a
 * connection that never connected (it showed as a direct link for many seconds, and streams opened on it hung).
 */
export const WEBRTC_PROBE_MS = 3_000
/** The protocol the probe opens (libp2p's ping: every member serves it). */
const PROBE_PROTOCOL = '/ipfs/ping/1.0.0'

/** The same addresses of a member are not tried again within this (a dial that failed will fail again). */
export const UPGRADE_RETRY_MS = 5 * 60_000

const isRelayed = (connection: Pick<Connection, 'remoteAddr'>): boolean => linkOf(connection).link === 'relayed'

export class DirectUpgrader {
  private readonly libp2p: Libp2p
  private readonly book: Pick<AddressBook, 'recordOf'>
  private readonly log: Logger
  /** per member, the addresses last tried and when */
  private readonly tried = new Map<string, { addrs: string; at: number }>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private stopped = false

  constructor(libp2p: Libp2p, book: Pick<AddressBook, 'recordOf'>, log: Logger) {
    this.libp2p = libp2p
    this.book = book
    this.log = log
  }

  start(): void {
    this.libp2p.addEventListener('connection:open', this.onConnection)
    this.libp2p.addEventListener('peer:identify', this.onIdentify)
  }

  stop(): void {
    this.stopped = true
    this.libp2p.removeEventListener('connection:open', this.onConnection)
    this.libp2p.removeEventListener('peer:identify', this.onIdentify)
    for (const timer of this.timers) clearTimeout(timer)
  }

  /** A newer address record of `peerId` arrived: worth a try if it is reached only through a relay. */
  learnt(peerId: PeerId): void {
    void this.attempt(peerId)
  }

  private readonly onConnection = (event: CustomEvent<Connection>): void => {
    const connection = event.detail
    if (connection.direction === 'inbound' && linkOf(connection).transport === 'webrtc') void this.probe(connection)
    if (!isRelayed(connection)) return
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      void this.attempt(connection.remotePeer)
    }, UPGRADE_DELAY_MS)
    timer.unref()
    this.timers.add(timer)
  }

  /** Aborts an inbound WebRTC link on which no stream opens within WEBRTC_PROBE_MS (see there). */
  private async probe(connection: Connection): Promise<void> {
    try {
      const stream = await connection.newStream(PROBE_PROTOCOL, { signal: AbortSignal.timeout(WEBRTC_PROBE_MS) })
      await stream.close().catch(() => stream.abort(new Error('probe done')))
    } catch (error) {
      if (connection.status !== 'open') return
      this.log.info(
        { event: 'webrtc-link-dead', peer: connection.remotePeer.toString(), error: (error as Error).message },
        'an inbound WebRTC link carried no stream; aborting it'
      )
      connection.abort(new Error('WebRTC link never connected'))
    }
  }

  /** Identify names the protocols a member speaks (WebRTC signalling among them): worth a try if relayed. */
  private readonly onIdentify = (event: CustomEvent<IdentifyResult>): void => {
    if (isRelayed(event.detail.connection)) void this.attempt(event.detail.peerId)
  }

  /** The direct addresses this node knows of `peerId`: its address record's, then identify's. */
  private async directAddrs(peerId: PeerId): Promise<Multiaddr[]> {
    const record = this.book.recordOf(peerId.toString())
    const fromRecord = record === undefined ? [] : dialableAddrs(record)
    const fromIdentify = await this.libp2p.peerStore.get(peerId).then(
      peer => peer.addresses.map(a => a.multiaddr),
      () => []
    )
    const seen = new Set<string>()
    return [...fromRecord, ...fromIdentify].filter(a => {
      const text = a.toString()
      if (seen.has(text) || isRelayed({ remoteAddr: a }) || isWebRTC(a)) return false
      seen.add(text)
      return true
    })
  }

  /**
   * The WebRTC address of `peerId` through the relayed link `via`, when this node dials WebRTC links to it: it
   * speaks WebRTC signalling (identify said so), and this node's peer id is the smaller of the two.
   */
  private async webRTCAddr(peerId: PeerId, via: Connection): Promise<Multiaddr | undefined> {
    const self = this.libp2p.peerId.toString()
    if (self >= peerId.toString() || !this.libp2p.getProtocols().includes(WEBRTC_SIGNALLING)) return undefined
    const protocols = await this.libp2p.peerStore.get(peerId).then(
      peer => peer.protocols,
      (): string[] => []
    )
    if (!protocols.includes(WEBRTC_SIGNALLING)) return undefined
    const circuit = via.remoteAddr.toString().replace(/\/p2p\/[^/]+$/, '')
    return multiaddr(`${circuit}/webrtc/p2p/${peerId.toString()}`)
  }

  private async attempt(peerId: PeerId): Promise<void> {
    if (this.stopped) return
    const open = this.libp2p.getConnections(peerId).filter(c => c.status === 'open')
    const relayed = open.find(isRelayed)
    if (relayed === undefined || open.some(c => !isRelayed(c))) return
    const direct = await this.directAddrs(peerId)
    const webrtc = await this.webRTCAddr(peerId, relayed)
    const key = peerId.toString()
    const text = [...direct.map(String).sort(), ...(webrtc === undefined ? [] : [webrtc.toString()])].join(' ')
    if (text === '') return
    const last = this.tried.get(key)
    if (last !== undefined && last.addrs === text && Date.now() - last.at < UPGRADE_RETRY_MS) return
    this.tried.set(key, { addrs: text, at: Date.now() })
    // TCP first (a member with a public address), then WebRTC (both behind NAT).
    const dials = [
      direct.map(a => (a.toString().endsWith(`/p2p/${key}`) ? a : multiaddr(`${a.toString()}/p2p/${key}`))),
      webrtc === undefined ? [] : [webrtc]
    ].filter(addrs => addrs.length > 0)
    for (const [i, addrs] of dials.entries()) {
      if (await this.upgradeBy(peerId, addrs, i === dials.length - 1)) return
    }
  }

  /** Dials `addrs` of `peerId` for a direct link; on success closes its relayed links. */
  private async upgradeBy(peerId: PeerId, addrs: Multiaddr[], last: boolean): Promise<boolean> {
    const key = peerId.toString()
    const started = Date.now()
    try {
      const direct = await this.libp2p.dial(addrs, {
        force: true,
        signal: AbortSignal.timeout(REDIAL_POLICY.dialTimeoutMs)
      })
      if (isRelayed(direct)) return false
      this.log.info(
        { event: 'link-upgraded', peer: key, addr: direct.remoteAddr.toString(), ms: Date.now() - started },
        `direct link to ${key}; closing the relayed one`
      )
      for (const relayed of this.libp2p.getConnections(peerId).filter(isRelayed)) {
        void relayed.close().catch(() => relayed.abort(new Error('replaced by a direct link')))
      }
      return true
    } catch (error) {
      this.log.info(
        {
          event: 'link-upgrade-failed',
          peer: key,
          addrs: addrs.map(String),
          ms: Date.now() - started,
          error: (error as Error).message
        },
        last ? 'no direct link; staying relayed' : 'no direct link by these addresses'
      )
      return false
    }
  }
}
