/**
 * Whether a fetch asks its holders for chunks packed (`/radmesh/chunks/2.0.0`: zstd on the wire, see
 * protocol/exchange/chunks.ts). Packing spends CPU at both ends to put fewer bytes on the link, which pays while
 * the link is what holds a fetch back. On a fast link the asker's own event loop does (every chunk is checked
 * and stored on it, a packed one unpacked first), and unpacking only adds to that: on loopback, a 400-slice CT took
 * 3.34-3.41 s sealed against 3.73-3.92 s packed (docs/PERFORMANCE.md).
 *
 * The rate alone does not tell the two apart: a busy reader on loopback takes packed chunks at 26 to 46 MB/s of
 * the manifest's bytes, and a 100 Mbit/s link carries about 37 MB/s of the phantom CT packed. So a fetch starts
 * packed and, once a window (CHOICE_WINDOW_MS) found its node's event loop nearly always busy while packed chunks
 * came at TRIAL_MIN_BYTES_PER_SECOND or more, tries sealed chunks (request field `p: 0`) for TRIAL_WINDOWS. It
 * keeps them unless they came clearly slower than packed ones had (the link held the fetch back: packed again,
 * and no new trial for TRIAL_BACKOFF_WINDOWS), and goes back to packed once the event loop has room again or the
 * chunks slow to a thin link's pace. A node that is not busy never tries, so a thin link always gets packed
 * chunks unless the node is busy with other work, which costs it a trial's two windows in twenty-two. A holder
 * that predates `p` packs whatever is asked.
 */
import { type EventLoopUtilization, performance } from 'node:perf_hooks'

/** Over this much time the choice is made again. */
export const CHOICE_WINDOW_MS = 500
/**
 * The first window starts with the first chunk (not with the fetch, whose first moments go to finding holders
 * and the manifest) and is shorter. On loopback, with first windows of 500 ms from the fetch's start, 52 to 150
 * of a 400-image study's chunks went packed; with this and the trial below, 17 to 20 (docs/PERFORMANCE.md). It
 * still spans a packed 1 MiB chunk on a 20 Mbit/s link, so a thin link is measured as thin.
 */
export const FIRST_CHOICE_MS = 150
/** An event loop this busy (a fraction of the window) leaves no room for unpacking. */
export const BUSY_UTILISATION = 0.85
/** Below this, unpacking fits again. */
export const IDLE_UTILISATION = 0.6
/**
 * Packed chunks coming this fast (bytes of the manifest's chunks a second) may be held back by the node rather
 * than the link, so a busy node tries sealed ones; slower, the link surely is what holds them back (20 Mbit/s
 * carries about 7.5 MB/s of the phantom CT packed).
 */
export const TRIAL_MIN_BYTES_PER_SECOND = 20e6
/** A trial of sealed chunks lasts this many windows; the last one is judged. */
export const TRIAL_WINDOWS = 2
/**
 * Sealed chunks are kept when they came at least this fraction of the rate packed ones had: on a thin link they
 * come at the rate divided by the packing ratio (2 to 3 for CT), on loopback as fast or faster; the margin is for
 * the noise between one window and the next.
 */
export const TRIAL_KEEP_FRACTION = 0.8
/** After sealed chunks came slower than packed ones had, this many windows pass before another trial. */
export const TRIAL_BACKOFF_WINDOWS = 20

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
  /** when the current window started; undefined until the first chunk came */
  private since: number | undefined
  private bytes = 0
  private window = FIRST_CHOICE_MS
  /** the rate packed chunks came at in the window before the trial of sealed ones */
  private packedRate = 0
  private noTrialUntil = 0
  /** windows left in a trial of sealed chunks */
  private trialWindows = 0

  /** `adaptive: false` always asks for packed chunks (a test of packing itself). */
  constructor(options: { clock?: PackChoiceClock; adaptive?: boolean } = {}) {
    this.clock = options.clock ?? eventLoopClock()
    this.adaptive = options.adaptive ?? true
  }

  /** `bytes` of the manifest's chunks were received whole. */
  moved(bytes: number): void {
    if (this.since === undefined) {
      // The first window starts here; what the event loop did before does not count.
      this.since = this.clock.now()
      this.clock.utilisation()
    }
    this.bytes += bytes
  }

  /** Whether to ask for the next chunk packed. */
  wantPacked(): boolean {
    if (!this.adaptive || this.since === undefined) return this.packed
    const now = this.clock.now()
    const elapsed = now - this.since
    if (elapsed < this.window) return this.packed
    this.window = CHOICE_WINDOW_MS
    const utilisation = this.clock.utilisation()
    const rate = this.bytes / (elapsed / 1000)
    if (this.packed) {
      if (utilisation >= BUSY_UTILISATION && rate >= TRIAL_MIN_BYTES_PER_SECOND && now >= this.noTrialUntil) {
        this.packed = false
        this.packedRate = rate
        this.trialWindows = TRIAL_WINDOWS
      }
    } else if (this.trialWindows > 0) {
      // The trial's first window still brings chunks asked for packed, and the pace ramps up: only its last
      // one is judged.
      this.trialWindows--
      if (this.trialWindows === 0 && rate < TRIAL_KEEP_FRACTION * this.packedRate) {
        // Sealed chunks came slower than packed ones had: the link is what holds this fetch back.
        this.packed = true
        this.noTrialUntil = now + TRIAL_BACKOFF_WINDOWS * CHOICE_WINDOW_MS
      }
    } else if (utilisation < IDLE_UTILISATION || rate < TRIAL_MIN_BYTES_PER_SECOND / 2) this.packed = true
    this.since = now
    this.bytes = 0
    return this.packed
  }
}
