/**
 * When a fetch asks for chunks packed (pack-choice.ts): on a thin link always; sealed while its node's event
 * loop is nearly always busy and chunks come fast; packed again once either stops. A fake clock stands in for
 * time and the event loop's utilisation.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  CHOICE_WINDOW_MS,
  FAST_BYTES_PER_SECOND,
  PackChoice,
  type PackChoiceClock
} from '../../node/exchange/pack-choice.ts'

/** A clock whose time and utilisation the test sets. */
function fakeClock(): PackChoiceClock & { at: number; busy: number } {
  const clock = {
    at: 0,
    busy: 0,
    now: () => clock.at,
    utilisation: () => clock.busy
  }
  return clock
}

/** One window in which `bytesPerSecond` of chunks came and the event loop was `busy`; the choice after it. */
function window(
  choice: PackChoice,
  clock: ReturnType<typeof fakeClock>,
  busy: number,
  bytesPerSecond: number
): boolean {
  clock.busy = busy
  choice.moved((bytesPerSecond * CHOICE_WINDOW_MS) / 1000)
  clock.at += CHOICE_WINDOW_MS
  return choice.wantPacked()
}

test('packed from the start, and for as long as the link is thin, however busy the node', () => {
  const clock = fakeClock()
  const choice = new PackChoice({ clock })
  assert.ok(choice.wantPacked(), 'packed before anything was measured')
  for (let i = 0; i < 5; i++) assert.ok(window(choice, clock, 1, 2.5e6), '20 Mbit/s, event loop always busy')
  assert.ok(window(choice, clock, 1, 12.5e6), '100 Mbit/s')
})

test('sealed while the node is busy and chunks come fast; packed again once it is not busy or they slow', () => {
  const clock = fakeClock()
  const choice = new PackChoice({ clock })
  assert.ok(window(choice, clock, 0.5, 2 * FAST_BYTES_PER_SECOND), 'fast, but the node has room: packed')
  assert.not.ok(window(choice, clock, 0.95, FAST_BYTES_PER_SECOND), 'fast and busy: sealed')
  assert.not.ok(window(choice, clock, 0.7, FAST_BYTES_PER_SECOND), 'between the thresholds: no change')
  assert.ok(window(choice, clock, 0.5, FAST_BYTES_PER_SECOND), 'no longer busy: packed')
  assert.not.ok(window(choice, clock, 0.9, 1.5 * FAST_BYTES_PER_SECOND), 'sealed again')
  assert.ok(window(choice, clock, 0.95, FAST_BYTES_PER_SECOND / 4), 'the link slowed: packed')
})

test('within a window the choice stands; a choice that is not adaptive is always packed', () => {
  const clock = fakeClock()
  const choice = new PackChoice({ clock })
  assert.not.ok(window(choice, clock, 1, 2 * FAST_BYTES_PER_SECOND))
  clock.busy = 0
  clock.at += CHOICE_WINDOW_MS / 2
  assert.not.ok(choice.wantPacked(), 'half a window later: unchanged')
  const fixed = new PackChoice({ clock, adaptive: false })
  assert.ok(window(fixed, clock, 1, 10 * FAST_BYTES_PER_SECOND))
})

test.run()
