import { createCipheriv, randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { release } from '../node/heap.ts'

const input = Buffer.alloc(1024 * 1024, 7)
const cipherOutput = (bytes: number): Buffer =>
  createCipheriv('aes-256-gcm', randomBytes(32), randomBytes(12)).update(input.subarray(0, bytes))

test('a dead buffer of its own is freed at once: its memory leaves the process, and every view of it reads empty', () => {
  const buffers = Array.from({ length: 32 }, () => cipherOutput(1024 * 1024))
  const view = buffers[0]?.subarray(10, 20) as Buffer
  // Measured from after the allocations: a collection during them may free other test files' garbage (uvu runs
  // them in one process), and no collection can free these, which are still referenced.
  const allocated = process.memoryUsage().arrayBuffers
  for (const buffer of buffers) release(buffer)
  const freed = allocated - process.memoryUsage().arrayBuffers
  assert.ok(freed >= 32 * 1024 * 1024, `the 32 MiB are freed without a collection (${freed} bytes)`)
  assert.is(buffers[0]?.byteLength, 0)
  assert.is(view.byteLength, 0)
})

test('a view of part of a buffer, a small buffer and one already released are left alone', () => {
  const large = cipherOutput(256 * 1024)
  const part = large.subarray(0, 128 * 1024)
  release(part)
  assert.is(large.byteLength, 256 * 1024, 'a view of part of an ArrayBuffer never frees the whole')
  const tail = large.subarray(1)
  release(tail)
  assert.is(large.byteLength, 256 * 1024)
  const small = cipherOutput(1024)
  release(small)
  assert.is(small.byteLength, 1024, 'a small buffer is left to the collector')
  // Buffer.allocUnsafe hands out small buffers from one shared pool: releasing one must never free the pool.
  const pooled = Buffer.allocUnsafe(100)
  const neighbour = Buffer.allocUnsafe(100)
  neighbour.fill(1)
  release(pooled)
  assert.is(neighbour.byteLength, 100)
  assert.is(neighbour[99], 1)
  release(large)
  release(large)
  assert.is(large.byteLength, 0)
})

test.run()
