/**
 * Whether a fetch asks its holders for chunks packed (`/radmesh/chunks/2.0.0`: zstd on the wire, see
 * protocol/exchange/chunks.ts). Packing spends CPU at both ends to put fewer bytes on the link, which pays while
 * the link is what holds a fetch back. On a fast link the asker's own event loop does (every chunk is checked
 * and stored on it, a packed one unpacked first), and unpacking only adds to that: on loopback, a 400-slice CT took
 * 3.34-3.41 s sealed against 3.73-3.92 s packed, and 3.35-3.43 s choosing so (docs/PERFORMANCE.md).
 *
 * So a fetch asks for sealed chunks (request field `p: 0`) while, over the last CHOICE_WINDOW_MS, its node's
 * event loop was nearly always busy and the chunks came faster than a thin link carries them packed
 * (FAST_BYTES_PER_SECOND of the manifest's bytes: about 320 Mbit/s); and for packed chunks again once either
 * stops being so. A link at or below 100 Mbit/s never carries sealed chunks this fast, so it always gets them
 * packed. A holder that predates `p` packs whatever is asked.
 */
import { type EventLoopUtilization, performance } from 'node:perf_hooks'

/** Over this much time the choice is made again. */
export const CHOICE_WINDOW_MS = 500
/** An event loop this busy (a fraction of the window) leaves no room for unpacking. */
export const BUSY_UTILISATION = 0.85
/** Below this, unpacking fits again. */
export const IDLE_UTILISATION = 0.6
/**
 * Bytes of the manifest's chunks a second at or above which a link is taken for fast: zstd packs about 150 MB/s
 * a core here, so packing cannot make such a link faster by much, and 100 Mbit/s links (12.5 MB/s) stay far below.
 */
export const FAST_BYTES_PER_SECOND = 40e6

export interface PackChoiceClock {
  /** ms, monotonic */
  now(): number
  /** the event loop's utilisation (0 to 1) since the last call */
  utilisation(): number
}

function eventLoopClock(): PackChoiceClock {
  let last: EventLoopUtilization = performance.eventLoopUtilization()
  return {
    now: () => performance.now(),
    utilisation: () => {
      const current = performance.eventLoopUtilization()
      const { utilization } = performance.eventLoopUtilization(current, last)
      last = current
      return utilization
    }
  }
}

export class PackChoice {
  private readonly clock: PackChoiceClock
  private readonly adaptive: boolean
  private packed = true
  private since: number
  private bytes = 0

  /** `adaptive: false` always asks for packed chunks (a test of packing itself). */
  constructor(options: { clock?: PackChoiceClock; adaptive?: boolean } = {}) {
    this.clock = options.clock ?? eventLoopClock()
    this.adaptive = options.adaptive ?? true
    this.since = this.clock.now()
  }

  /** `bytes` of the manifest's chunks were received whole. */
  moved(bytes: number): void {
    this.bytes += bytes
  }

  /** Whether to ask for the next chunk packed. */
  wantPacked(): boolean {
    if (!this.adaptive) return true
    const now = this.clock.now()
    const elapsed = now - this.since
    if (elapsed < CHOICE_WINDOW_MS) return this.packed
    const utilisation = this.clock.utilisation()
    const rate = this.bytes / (elapsed / 1000)
    if (this.packed && utilisation >= BUSY_UTILISATION && rate >= FAST_BYTES_PER_SECOND) this.packed = false
    else if (!this.packed && (utilisation < IDLE_UTILISATION || rate < FAST_BYTES_PER_SECOND / 2)) this.packed = true
    this.since = now
    this.bytes = 0
    return this.packed
  }
}
