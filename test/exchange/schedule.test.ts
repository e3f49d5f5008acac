/**
 * The chunk schedule of a fetch (ChunkSchedule): chunks are handed out in manifest order, only those a holder
 * has and no one is fetching; a chunk given back is wanted again with the frames it had; a verified chunk is
 * never handed out again.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ChunkSchedule } from '../../node/exchange/schedule.ts'

/** A holder's bit field of `count` chunks, with the chunks `held` set. */
function have(count: number, held: number[]): Uint8Array {
  const bits = new Uint8Array(Math.ceil(count / 8))
  for (const i of held) bits[i >> 3] = (bits[i >> 3] as number) | (1 << (i & 7))
  return bits
}

const everything = (count: number): Uint8Array =>
  have(
    count,
    Array.from({ length: count }, (_, i) => i)
  )

test('chunks are handed out in manifest order, each once, until none is left', () => {
  const schedule = new ChunkSchedule(10)
  const all = everything(10)
  const taken = Array.from({ length: 10 }, () => schedule.take(all))
  assert.equal(taken, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  assert.is(schedule.take(all), -1)
})

test('a holder is handed only the chunks it has that no one is fetching', () => {
  const schedule = new ChunkSchedule(12)
  const some = have(12, [2, 9, 11])
  assert.is(schedule.take(everything(12)), 0)
  assert.equal([schedule.take(some), schedule.take(some), schedule.take(some), schedule.take(some)], [2, 9, 11, -1])
  assert.is(schedule.take(everything(12)), 1, 'another holder takes up where the first left gaps')
})

test('a chunk given back is handed out again before the later ones, with the frames it received kept', () => {
  const schedule = new ChunkSchedule(4)
  const all = everything(4)
  assert.equal([schedule.take(all), schedule.take(all), schedule.take(all)], [0, 1, 2])
  const wanted = schedule.wanted(1)
  wanted.received.push(Buffer.from('first frame'))
  wanted.offset = 11
  schedule.release(1)
  assert.is(schedule.take(all), 1)
  assert.is(schedule.wanted(1), wanted, 'the same frames, to ask again from offset 11')
  assert.is(schedule.wanted(1).offset, 11)
  schedule.received(1)
  assert.equal(schedule.wanted(1), { index: 1, received: [], offset: 0 }, 'forgotten once whole')
  assert.is(schedule.take(all), 3)
})

test('verified chunks are never handed out; giving back a verified chunk does not make it wanted', () => {
  const schedule = new ChunkSchedule(6)
  const all = everything(6)
  schedule.verify(0, 3)
  assert.ok([0, 1, 2].every(i => schedule.isVerified(i)))
  assert.not.ok(schedule.isVerified(3))
  assert.is(schedule.take(all), 3)
  schedule.verify(3)
  schedule.release(3)
  assert.equal([schedule.take(all), schedule.take(all), schedule.take(all)], [4, 5, -1])
})

test('a holder with nothing wanted, or a schedule of no chunks, is handed nothing', () => {
  assert.is(new ChunkSchedule(0).take(new Uint8Array(0)), -1)
  assert.is(new ChunkSchedule(9).take(have(9, [])), -1)
})

test.run()
