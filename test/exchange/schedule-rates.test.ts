/**
 * The chunk schedule across several holders (ChunkSchedule with lanes): simulated lanes move bytes at set
 * rates on a simulated clock, each keeping what the schedule lets it ask for, as lane.ts does. Chunks spread
 * across lanes in proportion to their rates; a lane that stalls has its chunks fetched by another; no chunk is
 * asked of two lanes at once until every chunk has been handed out, and tail duplicates stay within the bound.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type LaneSlot, ChunkSchedule, TAIL_DUPLICATE_BYTES } from '../../node/exchange/schedule.ts'

const MiB = 1024 * 1024
const CHUNK = MiB
/** 20 Mbit/s in bytes per ms */
const MBIT_20 = 20e6 / 8 / 1000
const STEP_MS = 10

interface SimLane {
  slot: LaneSlot
  queue: Array<{ index: number; left: number }>
  outstanding: number
  got: number
}

interface Outcome {
  ms: number
  got: number[]
  /** chunks handed out by take(), in order, over all lanes */
  taken: number[]
  /** for each tail duplicate, how many chunks take() had handed out by then */
  stolenAfter: number[]
  wasted: number
  schedule: ChunkSchedule
}

/** Runs lanes whose rate (bytes/ms) at time t is `rates[i](t)`, until every chunk is verified. */
function simulate(chunks: number, rates: Array<(t: number) => number>): Outcome {
  let now = 0
  const schedule = new ChunkSchedule(chunks, { sizes: Array<number>(chunks).fill(CHUNK), now: () => now })
  const have = new Uint8Array(Math.ceil(chunks / 8)).fill(0xff)
  const lanes: SimLane[] = rates.map(() => ({ slot: schedule.join(), queue: [], outstanding: 0, got: 0 }))
  const taken: number[] = []
  const stolenAfter: number[] = []
  let verified = 0
  let wasted = 0
  while (verified < chunks) {
    assert.ok(now < 600_000, 'the fetch ends')
    lanes.forEach((lane, l) => {
      while (lane.outstanding < schedule.window(lane.slot, 4 * MiB)) {
        let index = schedule.take(have, lane.slot)
        if (index >= 0) taken.push(index)
        else {
          index = schedule.steal(have, lane.slot)
          if (index < 0) break
          stolenAfter.push(taken.length)
        }
        lane.queue.push({ index, left: CHUNK })
        lane.outstanding += CHUNK
      }
      let budget = (rates[l] as (t: number) => number)(now) * STEP_MS
      while (budget > 0 && lane.queue.length > 0) {
        const head = lane.queue[0] as { index: number; left: number }
        const n = Math.min(budget, head.left)
        head.left -= n
        budget -= n
        lane.outstanding -= n
        lane.slot.moved(n)
        if (head.left > 0) break
        lane.queue.shift()
        if (schedule.isVerified(head.index)) wasted++
        else {
          schedule.verify(head.index)
          lane.got++
          verified++
        }
        schedule.done(head.index, lane.slot)
      }
    })
    now += STEP_MS
  }
  for (const lane of lanes) schedule.leave(lane.slot)
  return { ms: now, got: lanes.map(lane => lane.got), taken, stolenAfter, wasted, schedule }
}

/** The time `chunks` take over links of these rates together, ms: the best any schedule can do. */
const ideal = (chunks: number, rates: number[]): number => (chunks * CHUNK) / rates.reduce((a, b) => a + b, 0)

function assertSteady(outcome: Outcome, chunks: number): void {
  assert.is(new Set(outcome.taken).size, outcome.taken.length, 'take() never hands out a chunk twice')
  assert.is(outcome.taken.length, chunks)
  for (const after of outcome.stolenAfter) assert.is(after, chunks, 'duplicates only once every chunk is handed out')
  assert.ok(outcome.schedule.tail.bytes <= TAIL_DUPLICATE_BYTES, `duplicates ${outcome.schedule.tail.bytes} B`)
}

test('two lanes at the same rate are handed about half the chunks each, and finish near the ideal time', () => {
  const outcome = simulate(60, [() => MBIT_20, () => MBIT_20])
  assertSteady(outcome, 60)
  const [a, b] = outcome.got as [number, number]
  assert.ok(Math.abs(a - b) <= 4, `split ${a}:${b}`)
  const best = ideal(60, [MBIT_20, MBIT_20])
  assert.ok(outcome.ms <= best * 1.1, `${outcome.ms} ms against the ideal ${best.toFixed(0)} ms`)
})

test('a lane three times as fast is handed about three times the chunks', () => {
  const outcome = simulate(80, [() => 3 * MBIT_20, () => MBIT_20])
  assertSteady(outcome, 80)
  const [fast, slow] = outcome.got as [number, number]
  assert.ok(Math.abs(fast - 60) <= 4 && Math.abs(slow - 20) <= 4, `split ${fast}:${slow}, 60:20 expected`)
  const best = ideal(80, [3 * MBIT_20, MBIT_20])
  assert.ok(outcome.ms <= best * 1.1, `${outcome.ms} ms against the ideal ${best.toFixed(0)} ms`)
})

test("at the tail a fast lane asks for a slow lane's last chunks too: the fetch ends near the ideal time", () => {
  // One fast holder, one ten times slower: at the end the slow lane's queue alone would take seconds.
  const outcome = simulate(40, [() => 10 * MBIT_20, () => MBIT_20])
  assertSteady(outcome, 40)
  const best = ideal(40, [10 * MBIT_20, MBIT_20])
  assert.ok(outcome.schedule.tail.duplicates >= 1, "the fast lane asked for a slow lane's chunk as well")
  assert.ok(outcome.ms <= best * 1.15, `${outcome.ms} ms against the ideal ${best.toFixed(0)} ms`)
})

test('a lane that stalls has the chunks it asked for fetched by the other lane, within the duplicate bound', () => {
  const stallAt = 3000
  const outcome = simulate(60, [() => MBIT_20, t => (t < stallAt ? MBIT_20 : 0)])
  assertSteady(outcome, 60)
  const [steady, stalled] = outcome.got as [number, number]
  assert.is(steady + stalled, 60, 'every chunk is verified, though one lane never moves again')
  assert.ok(outcome.schedule.tail.duplicates >= 1, "the stalled lane's chunks were asked of the other")
  // The stalled lane's chunks came from the other lane, not after a 30 s timeout.
  const alone = (60 * CHUNK) / MBIT_20
  assert.ok(outcome.ms <= alone, `${outcome.ms} ms, no longer than one lane alone (${alone.toFixed(0)} ms)`)
})

test("a chunk given back while its tail duplicate is in flight passes to the duplicate's lane", () => {
  let now = 0
  const schedule = new ChunkSchedule(2, { sizes: [CHUNK, CHUNK], now: () => now })
  const all = new Uint8Array([0xff])
  const slow = schedule.join()
  const fast = schedule.join()
  assert.equal([schedule.take(all, slow), schedule.take(all, slow)], [0, 1])
  now = 1000
  slow.moved(CHUNK / 10)
  fast.moved(4 * CHUNK)
  assert.is(schedule.take(all, fast), -1)
  assert.is(schedule.steal(all, fast), 1, 'the chunk the slow lane would have in last')
  assert.ok(schedule.isDuplicate(1, fast))
  schedule.release(1, slow)
  assert.not.ok(schedule.isDuplicate(1, fast), "now the fast lane's own")
  assert.is(schedule.take(all, slow), -1, 'not handed out again')
  assert.equal(schedule.tail, { duplicates: 1, bytes: CHUNK })
})

test('a lane too young to have a rate is not stolen from; a lane with chunks of its own to come does not steal', () => {
  let now = 0
  const schedule = new ChunkSchedule(3, { sizes: [CHUNK, CHUNK, CHUNK], now: () => now })
  const all = new Uint8Array([0xff])
  const a = schedule.join()
  assert.is(schedule.take(all, a), 0)
  const b = schedule.join()
  assert.is(schedule.steal(all, b), -1, 'no rate for either yet')
  now = 1000
  b.moved(CHUNK)
  assert.is(schedule.take(all, b), 1)
  assert.is(schedule.steal(all, b), -1, 'b still has chunk 1 to come')
})

test.run()
