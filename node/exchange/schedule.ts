/**
 * Which chunks of a version a fetch still wants, which are being fetched and by which lane, which are
 * verified, and the frames received of chunks not complete (kept across dropped links, so a chunk is asked
 * for again from the offset it reached).
 *
 * - **Order for reading.** Chunks are handed out in manifest order, which is reading order.
 * - **In proportion to each link.** Every lane (one chunks stream to one holder) has its rate measured over
 *   a sliding window (RATE_WINDOW_MS), and may keep about WINDOW_SECONDS of its own rate asked for: a lane
 *   takes its next chunk when one of its own is done, so a holder behind a link three times as fast is
 *   handed about three times the chunks, and every lane's queue drains in about the same time at the end.
 * - **Work stealing at the tail.** A lane that runs dry while chunks are still in flight on another lane
 *   asks for one of them as well (a tail duplicate) when it would have it much sooner than its owner (a
 *   stalled lane, whose rate has fallen to nothing, has all of its chunks stealable). Duplicates are counted
 *   and bounded (TAIL_DUPLICATE_BYTES per fetch); otherwise no chunk is ever asked of two lanes at once.
 */
import type { ChunkForm } from '../../protocol/exchange/chunks.ts'
import { TRANSFER_CHUNK_MAX } from '../../protocol/exchange/manifest.ts'

/**
 * A chunk asked for: the frames received so far, the offset they reach, and once a frame has come, the form
 * the chunk comes in and its length in that form (protocol/exchange/chunks.ts).
 */
export interface Wanted {
  index: number
  received: Buffer[]
  offset: number
  form?: ChunkForm
  length?: number
}

/** A lane's rate is the bytes it moved in this much time, most recent first. */
export const RATE_WINDOW_MS = 2_000
/** A lane younger than this has no rate yet: it is neither judged slow nor sized by it. */
export const RATE_MIN_MS = 300
/** A lane may keep this many seconds of its own rate asked for (a link's round trip is well under a second). */
export const WINDOW_SECONDS = 1
/** The least a measured lane may keep asked for: two whole chunks, so a link never idles between requests. */
export const MIN_WINDOW_BYTES = 2 * TRANSFER_CHUNK_MAX
/** Bytes a fetch may ask for twice at its tail: four chunks, the most a stalled 4 MiB window holds. */
export const TAIL_DUPLICATE_BYTES = 4 * TRANSFER_CHUNK_MAX
/** A dry lane takes a tail duplicate only when it would have the chunk in at most this part of its owner's time. */
export const STEAL_WHEN_FASTER_BY = 0.5

const WANTED = 0
const FETCHING = 1
const VERIFIED = 2

const holds = (have: Uint8Array, i: number): boolean => ((have[i >> 3] as number) & (1 << (i & 7))) !== 0

/** One lane of a fetch as the schedule sees it: the chunks it has asked for, in order, and its rate. */
export class LaneSlot {
  /** chunks this lane asked for and has not done with, in the order asked */
  readonly queue: number[] = []
  /** those of `queue` that are tail duplicates (another lane asked for them first) */
  readonly duplicates = new Set<number>()
  private readonly now: () => number
  private readonly joinedAt: number
  private readonly samples: Array<{ at: number; bytes: number }> = []

  constructor(now: () => number) {
    this.now = now
    this.joinedAt = now()
  }

  /** Bytes of what this lane asked for that came in (or were otherwise done with). */
  moved(bytes: number): void {
    this.samples.push({ at: this.now(), bytes })
  }

  /** Bytes per second over the last RATE_WINDOW_MS (or since the lane began); undefined while it is too young. */
  rate(): number | undefined {
    const now = this.now()
    const span = Math.min(RATE_WINDOW_MS, now - this.joinedAt)
    if (span < RATE_MIN_MS) return undefined
    const since = now - RATE_WINDOW_MS
    while (this.samples.length > 0 && (this.samples[0] as { at: number }).at < since) this.samples.shift()
    let bytes = 0
    for (const sample of this.samples) bytes += sample.bytes
    return bytes / (span / 1000)
  }
}

export interface ScheduleOptions {
  /** each chunk's size as the manifest lists it (1 each unless given) */
  sizes?: readonly number[]
  /** the clock, ms (performance.now unless given: a test drives its own) */
  now?: () => number
}

export class ChunkSchedule {
  private readonly state: Uint8Array
  private readonly sizes: readonly number[] | undefined
  private readonly now: () => number
  /** every chunk before this one is being fetched or verified */
  private next = 0
  /** frames received of chunks not complete */
  private readonly partial = new Map<number, Wanted>()
  private readonly slots = new Set<LaneSlot>()
  /** chunks with a tail duplicate in flight, and the lane asking for it */
  private readonly duplicated = new Map<number, LaneSlot>()
  /** tail duplicates asked for in this fetch, and their bytes */
  readonly tail = { duplicates: 0, bytes: 0 }

  constructor(chunkCount: number, options: ScheduleOptions = {}) {
    this.state = new Uint8Array(chunkCount)
    this.sizes = options.sizes
    this.now = options.now ?? (() => performance.now())
  }

  private size(index: number): number {
    return this.sizes?.[index] ?? 1
  }

  /** A new lane; it leaves with `leave` once it has given back or done with all it asked for. */
  join(): LaneSlot {
    const slot = new LaneSlot(this.now)
    this.slots.add(slot)
    return slot
  }

  leave(slot: LaneSlot): void {
    for (const index of [...slot.queue]) this.release(index, slot)
    this.slots.delete(slot)
  }

  /** Bytes `slot` may keep asked for: WINDOW_SECONDS of its rate, within [MIN_WINDOW_BYTES, max]. */
  window(slot: LaneSlot, max: number): number {
    const rate = slot.rate()
    if (rate === undefined) return max
    return Math.min(max, Math.max(Math.min(MIN_WINDOW_BYTES, max), rate * WINDOW_SECONDS))
  }

  /**
   * The next chunk a holder with bit field `have` holds that no one is fetching, in manifest order, asked
   * for by `slot` (when given); -1 if none.
   */
  take(have: Uint8Array, slot?: LaneSlot): number {
    const state = this.state
    for (let i = this.next; i < state.length; i++) {
      if (state[i] !== WANTED) {
        if (i === this.next) this.next++
        continue
      }
      if (!holds(have, i)) continue
      state[i] = FETCHING
      slot?.queue.push(i)
      return i
    }
    return -1
  }

  /**
   * A tail duplicate for `slot`, a lane that has run dry: of the chunks other lanes are fetching that this
   * holder has, the one its owner would have in last, when `slot` would have it in at most
   * STEAL_WHEN_FASTER_BY of that time and the fetch's duplicates stay within TAIL_DUPLICATE_BYTES; -1 if none.
   */
  steal(have: Uint8Array, slot: LaneSlot): number {
    const own = slot.rate()
    if (slot.queue.length > 0 || own === undefined || own <= 0) return -1
    let best = -1
    let bestFinish = 0
    for (const other of this.slots) {
      if (other === slot) continue
      const rate = other.rate()
      if (rate === undefined) continue
      let ahead = 0
      for (const i of other.queue) {
        ahead += this.size(i)
        if (this.state[i] !== FETCHING || this.duplicated.has(i) || other.duplicates.has(i) || !holds(have, i)) continue
        const finish = rate > 0 ? ahead / rate : Infinity
        if (finish > bestFinish) {
          best = i
          bestFinish = finish
        }
      }
    }
    if (best < 0) return -1
    const size = this.size(best)
    if (this.tail.bytes + size > TAIL_DUPLICATE_BYTES) return -1
    if (size / own > bestFinish * STEAL_WHEN_FASTER_BY) return -1
    this.duplicated.set(best, slot)
    slot.duplicates.add(best)
    slot.queue.push(best)
    this.tail.duplicates++
    this.tail.bytes += size
    return best
  }

  /** Whether another lane than `slot` is fetching a chunk a holder with `have` has: one `slot` may steal later. */
  fetchingElsewhere(have: Uint8Array, slot: LaneSlot): boolean {
    for (const other of this.slots) {
      if (other !== slot && other.queue.some(i => this.state[i] === FETCHING && holds(have, i))) return true
    }
    return false
  }

  /** Whether `slot` asked for chunk `index` as a tail duplicate. */
  isDuplicate(index: number, slot: LaneSlot): boolean {
    return slot.duplicates.has(index)
  }

  /**
   * A chunk taken and not received whole: wanted again (its frames so far are kept). A tail duplicate given
   * back only ends; the original given back while its duplicate is in flight passes to the duplicate's lane.
   */
  release(index: number, slot?: LaneSlot): void {
    if (slot !== undefined) this.forget(index, slot)
    if (slot?.duplicates.delete(index) === true) {
      this.duplicated.delete(index)
      return
    }
    const heir = this.duplicated.get(index)
    if (heir !== undefined && this.state[index] === FETCHING) {
      this.duplicated.delete(index)
      heir.duplicates.delete(index)
      return
    }
    if (this.state[index] === FETCHING) this.state[index] = WANTED
    if (index < this.next) this.next = index
  }

  /** `slot` is done with chunk `index` (whole, whichever lane's copy was verified). */
  done(index: number, slot: LaneSlot): void {
    this.forget(index, slot)
    if (slot.duplicates.delete(index)) this.duplicated.delete(index)
  }

  private forget(index: number, slot: LaneSlot): void {
    const at = slot.queue.indexOf(index)
    if (at >= 0) slot.queue.splice(at, 1)
  }

  /** What has been received of chunk `index`, kept until it is whole. */
  wanted(index: number): Wanted {
    const wanted = this.partial.get(index) ?? { index, received: [], offset: 0 }
    this.partial.set(index, wanted)
    return wanted
  }

  /** The frames received of chunk `index` are of no use (a packed chunk cut short): it is asked for from its start. */
  restart(index: number): void {
    this.partial.delete(index)
  }

  /** Chunk `index` is whole: its frames are no longer kept. */
  received(index: number): void {
    this.partial.delete(index)
  }

  verify(first: number, count = 1): void {
    this.state.fill(VERIFIED, first, first + count)
    for (let i = first; i < first + count; i++) this.partial.delete(i)
  }

  isVerified(index: number): boolean {
    return this.state[index] === VERIFIED
  }
}
