/**
 * The fuzzer's generator: every choice a case makes comes from it, seeded from (kind, seed, case), so a case's
 * input is the same every time it is replayed, alone or in a run.
 */
import { createHash } from 'node:crypto'

/** sfc32, seeded from SHA-256 of (kind, seed, case): one case replays alone, and the kinds differ. */
export class Rng {
  #a: number
  #b: number
  #c: number
  #d: number

  constructor(kind: string, seed: number, index: number) {
    const digest = createHash('sha256').update(`radmesh fuzz ${kind} ${seed} ${index}`).digest()
    this.#a = digest.readUInt32LE(0)
    this.#b = digest.readUInt32LE(4)
    this.#c = digest.readUInt32LE(8)
    this.#d = digest.readUInt32LE(12)
    for (let i = 0; i < 12; i++) this.u32()
  }

  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0
    this.#d = (this.#d + 1) >>> 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) >>> 0
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0
    this.#c = (this.#c + t) >>> 0
    return t
  }

  /** 0 <= n < max */
  int(max: number): number {
    return max <= 1 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * max)
  }
  range(min: number, max: number): number {
    return min + this.int(max - min + 1)
  }
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T
  }
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff
    return out
  }

  /** A size from a few bytes to `max`, small ones likelier (log-uniform). */
  size(max: number): number {
    return Math.max(1, Math.floor(Math.exp((this.u32() / 0x1_0000_0000) * Math.log(max))))
  }
}
