/**
 * Which chunks of a version a fetch still wants, which are being fetched, which are verified, and the frames
 * received of chunks not complete (kept across dropped links, so a chunk is asked for again from the offset
 * it reached). Chunks are handed out in manifest order, which is reading order.
 */
import type { ChunkForm } from '../../protocol/exchange/chunks.ts'

/**
 * A chunk asked for: the frames received so far, the offset they reach, and once a frame has come, the form
 * the chunk comes in and its length in that form (protocol/exchange/chunks.ts).
 */
export interface Wanted { index: number, received: Buffer[], offset: number, form?: ChunkForm, length?: number }

const WANTED = 0
const FETCHING = 1
const VERIFIED = 2

export class ChunkSchedule {
  private readonly state: Uint8Array
  /** every chunk before this one is being fetched or verified */
  private next = 0
  /** frames received of chunks not complete */
  private readonly partial = new Map<number, Wanted>()

  constructor (chunkCount: number) {
    this.state = new Uint8Array(chunkCount)
  }

  /** The next chunk a holder with bit field `have` holds that no one is fetching, in manifest order; -1 if none. */
  take (have: Uint8Array): number {
    const state = this.state
    for (let i = this.next; i < state.length; i++) {
      if (state[i] !== WANTED) {
        if (i === this.next) this.next++
        continue
      }
      if (((have[i >> 3] as number) & (1 << (i & 7))) === 0) continue
      state[i] = FETCHING
      return i
    }
    return -1
  }

  /** A chunk taken and not received whole: wanted again (its frames so far are kept). */
  release (index: number): void {
    if (this.state[index] === FETCHING) this.state[index] = WANTED
    if (index < this.next) this.next = index
  }

  /** What has been received of chunk `index`, kept until it is whole. */
  wanted (index: number): Wanted {
    const wanted = this.partial.get(index) ?? { index, received: [], offset: 0 }
    this.partial.set(index, wanted)
    return wanted
  }

  /** The frames received of chunk `index` are of no use (a packed chunk cut short): it is asked for from its start. */
  restart (index: number): void {
    this.partial.delete(index)
  }

  /** Chunk `index` is whole: its frames are no longer kept. */
  received (index: number): void {
    this.partial.delete(index)
  }

  verify (first: number, count = 1): void {
    this.state.fill(VERIFIED, first, first + count)
  }

  isVerified (index: number): boolean {
    return this.state[index] === VERIFIED
  }
}
