/**
 * The shares of a growing study: batched, one at a time, no sooner than the interval and the cost bound
 * allow, flushed when the study is stable.
 */
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { GrowingShares } from '../../node/workflow/growing.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const log = pino({ level: 'silent' })
const sleep = async (ms: number): Promise<void> => {
  await new Promise(resolve => setTimeout(resolve, ms))
}

test('instances arriving faster than the interval are covered by one share per interval', async () => {
  const started: number[] = []
  const t0 = performance.now()
  const shares = new GrowingShares({
    share: async () => {
      started.push(performance.now() - t0)
    },
    log,
    minIntervalMs: 200
  })
  // 10 instances a second for 1 s: at most one share at once, then one per 200 ms.
  for (let i = 0; i < 10; i++) {
    shares.grew('s')
    await sleep(100)
  }
  await shares.flush('s')
  // Timers only fire late on a loaded machine, so fewer shares may run, never more: 1 + 1000 / 200 at most.
  assert.ok(started.length <= 6, `${started.length} shares for 10 instances in 1 s with a 200 ms interval`)
  assert.ok(started.length >= 2, 'the study was shared while it grew, not only at the end')
  for (let i = 1; i < started.length - 1; i++) {
    assert.ok((started[i] as number) - (started[i - 1] as number) >= 195, `shares ${i - 1} and ${i} too close`)
  }
  shares.stop()
})

test('a share never runs beside another of the same study; the next waits costFactor times the last', async () => {
  let running = 0
  let most = 0
  const spans: Array<[number, number]> = []
  const shares = new GrowingShares({
    share: async () => {
      running++
      most = Math.max(most, running)
      const start = performance.now()
      await sleep(100)
      spans.push([start, performance.now()])
      running--
    },
    log,
    minIntervalMs: 10,
    costFactor: 2
  })
  for (let i = 0; i < 30; i++) {
    shares.grew('s')
    await sleep(20)
  }
  await shares.flush('s')
  assert.is(most, 1)
  for (let i = 1; i < spans.length - 1; i++) {
    const [start] = spans[i] as [number, number]
    const [lastStart, lastEnd] = spans[i - 1] as [number, number]
    assert.ok(start - lastEnd >= 2 * (lastEnd - lastStart) - 5, `share ${i} began too soon after the one before`)
  }
  shares.stop()
})

test('flush shares what arrived since the last share, and nothing when all was shared', async () => {
  let count = 0
  const shares = new GrowingShares({
    share: async () => {
      count++
    },
    log,
    minIntervalMs: 60_000
  })
  shares.grew('s')
  await waitFor('the first instance shared at once', () => count === 1, 5_000, 5)
  shares.grew('s')
  shares.grew('s')
  await sleep(20)
  assert.is(count, 1, 'the next waits for the interval')
  await shares.flush('s')
  assert.is(count, 2, 'flushed when the study is stable')
  await shares.flush('s')
  assert.is(count, 2, 'nothing left to share')
  shares.stop()
})

test('a share that fails leaves its instances for the next one', async () => {
  let calls = 0
  const shares = new GrowingShares({
    share: async () => {
      calls++
      if (calls === 1) throw new Error('no route to the reader')
    },
    log,
    minIntervalMs: 10
  })
  shares.grew('s')
  // The retry is due 10 ms after the failure; a loaded machine runs timers late, so it is waited for (5 s at most).
  await waitFor('the share tried again', () => calls === 2, 5_000, 10)
  await shares.flush('s')
  assert.is(calls, 2)
  shares.stop()
})

test.run()
