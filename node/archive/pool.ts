/**
 * Assembly buffers reused from one arriving object to the next (see incoming.ts), so receiving an image
 * allocates no buffer of its size.
 */

/** Assembly buffers up to this size go back to the pool; larger objects get a buffer of their own. */
const POOLED_BUFFER_MAX = 8 * 1024 * 1024
/** Buffers kept for reuse (about one per association receiving at once). */
const POOL_SIZE = 4
const FIRST_BUFFER_SIZE = 1024 * 1024
const pool: Buffer[] = []

/** A buffer of at least `size` bytes, from the pool when one fits. */
export function takeBuffer(size: number): Buffer {
  const i = pool.findIndex(buffer => buffer.byteLength >= size)
  return i >= 0 ? (pool.splice(i, 1)[0] as Buffer) : Buffer.allocUnsafe(Math.max(size, FIRST_BUFFER_SIZE))
}

/** Gives a buffer back for the next object; its contents must not be used after this. */
export function giveBack(buffer: Buffer): void {
  if (buffer.byteLength > POOLED_BUFFER_MAX) return
  pool.push(buffer)
  pool.sort((a, b) => b.byteLength - a.byteLength)
  pool.length = Math.min(pool.length, POOL_SIZE)
}
