/**
 * Keeps this node's connections to what it works on: a link to a member it shares no live document with,
 * that is not a `--peer` target, is closed once it has been open PRUNE_AFTER_MS, and not redialled. Every
 * link costs keepalives both ways; a node on a LAN of a hundred members finds them all by mDNS, and would
 * otherwise pay for a hundred links whatever it does. A member reaches another when it needs to (a site
 * sharing a study dials its readers), and the links that remain (sites and their readers, the readers of a
 * case) carry the worklist and its digests.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Redialer } from './redial.ts'

/** A link to a member this node shares nothing with is closed once it is this old (and checked this often). */
export const PRUNE_AFTER_MS = 2 * 60_000
const CHECK_EVERY_MS = 30_000

export interface PrunerOptions {
  libp2p: Libp2p
  redialer: Redialer
  /** whether this node shares a live document with the member (a case, its report) beyond the members document */
  worksWith: (peerId: string) => boolean
  log: Logger
  afterMs?: number
}

export class ConnectionPruner {
  private readonly o: PrunerOptions
  private timer: NodeJS.Timeout | undefined

  constructor(options: PrunerOptions) {
    this.o = options
  }

  start(): void {
    this.timer = setInterval(
      () => {
        this.prune()
      },
      Math.min(CHECK_EVERY_MS, this.o.afterMs ?? PRUNE_AFTER_MS)
    )
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  /** Closes the links this node has no use for; returns the members they went to. */
  prune(now = Date.now()): string[] {
    const { libp2p, redialer, worksWith, log } = this.o
    const after = this.o.afterMs ?? PRUNE_AFTER_MS
    const closed: string[] = []
    for (const connection of libp2p.getConnections()) {
      const peer = connection.remotePeer.toString()
      if (connection.status !== 'open' || now - connection.timeline.open < after) continue
      if (redialer.configured(peer) || worksWith(peer)) continue
      // Streams of other protocols (a transfer, a manifest request) mean it is in use now.
      if (connection.streams.some(stream => !stream.protocol?.startsWith('/radmesh/sync/'))) continue
      redialer.forget(peer)
      void connection.close().catch(() => {})
      closed.push(peer)
    }
    if (closed.length > 0)
      log.info(
        { event: 'links-pruned', peers: closed.length },
        `closed ${closed.length} link(s) to members this node shares nothing with`
      )
    return closed
  }
}
