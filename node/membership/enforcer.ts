/**
 * Keeps the connections of a running node in line with membership: a member whose certificate expires is
 * disconnected at that moment (a timer per connected member), and a sweep re-checks every connection
 * against the registry (revocations, expiries, bans) as a backstop. Also warns before this node's own
 * certificate runs out, since from then on every member will refuse it.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { PeerPenalties } from '../p2p/penalties.ts'
import type { MembershipRegistry } from './registry.ts'

export const MEMBERSHIP_SWEEP_MS = 15_000
/** setTimeout's ceiling (about 24.8 days); longer waits are re-armed by the sweep. */
const MAX_TIMER_MS = 2 ** 31 - 1
export const OWN_EXPIRY_WARNING_MS = 14 * 24 * 3600_000

export class MembershipEnforcer {
  private readonly libp2p: Libp2p
  private readonly registry: MembershipRegistry
  private readonly penalties: PeerPenalties
  private readonly log: Logger
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>()
  private sweepTimer: NodeJS.Timeout | undefined

  constructor(libp2p: Libp2p, registry: MembershipRegistry, penalties: PeerPenalties, log: Logger) {
    this.libp2p = libp2p
    this.registry = registry
    this.penalties = penalties
    this.log = log
  }

  start(): void {
    this.libp2p.addEventListener('peer:connect', this.onConnect)
    this.libp2p.addEventListener('peer:disconnect', this.onDisconnect)
    this.sweepTimer = setInterval(() => {
      this.sweep()
    }, MEMBERSHIP_SWEEP_MS)
    this.sweepTimer.unref()
    const ownExpiry = Date.parse(this.registry.self.expiresAt)
    if (ownExpiry - Date.now() < OWN_EXPIRY_WARNING_MS) {
      this.log.warn(
        { event: 'certificate-expiring', expiresAt: this.registry.self.expiresAt },
        `this node's certificate expires at ${this.registry.self.expiresAt}; ` +
          'ask the consortium administrator for a new one'
      )
    }
  }

  stop(): void {
    this.libp2p.removeEventListener('peer:connect', this.onConnect)
    this.libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
    clearInterval(this.sweepTimer)
    for (const timer of this.expiryTimers.values()) clearTimeout(timer)
    this.expiryTimers.clear()
  }

  /** Closes every connection to `peer`; `reason` goes to the log. */
  disconnect(peer: string, reason: string): void {
    const connections = this.libp2p.getConnections().filter(c => c.remotePeer.toString() === peer)
    if (connections.length === 0) return
    this.log.warn({ event: 'member-dropped', peer, reason }, `closing connection to ${peer}: ${reason}`)
    for (const connection of connections)
      void connection.close().catch(() => {
        connection.abort(new Error(reason))
      })
  }

  sweep(now = Date.now()): void {
    for (const connection of this.libp2p.getConnections()) {
      const peer = connection.remotePeer.toString()
      const reason = this.whyNot(peer, now)
      if (reason !== undefined) this.disconnect(peer, reason)
      else if (!this.expiryTimers.has(peer)) this.armExpiry(peer, now)
    }
  }

  private whyNot(peer: string, now: number): string | undefined {
    if (this.registry.isRevoked(peer)) return 'revoked'
    if (this.penalties.isBanned(peer, now)) return 'banned for sending bad data'
    if (!this.registry.isMember(peer, now)) return 'certificate expired'
    return undefined
  }

  private armExpiry(peer: string, now: number): void {
    const certificate = this.registry.certificateOf(peer)
    if (certificate === undefined) return
    const wait = Date.parse(certificate.expiresAt) - now
    if (wait > MAX_TIMER_MS) return
    const timer = setTimeout(
      () => {
        this.expiryTimers.delete(peer)
        this.disconnect(peer, `certificate expired at ${certificate.expiresAt}`)
      },
      Math.max(0, wait)
    )
    timer.unref()
    this.expiryTimers.set(peer, timer)
  }

  private readonly onConnect = (event: CustomEvent<PeerId>): void => {
    this.armExpiry(event.detail.toString(), Date.now())
  }

  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail.toString()
    clearTimeout(this.expiryTimers.get(peer))
    this.expiryTimers.delete(peer)
  }
}
