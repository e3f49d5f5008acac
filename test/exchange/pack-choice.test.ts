/**
 * When a fetch asks for chunks packed (pack-choice.ts): packed unless its node's event loop is nearly always
 * busy while packed chunks come fast; then sealed on trial, kept while they come faster than packed ones did.
 * A fake clock stands in for time and the event loop's utilisation.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  CHOICE_WINDOW_MS,
  FIRST_CHOICE_MS,
  PackChoice,
  type PackChoiceClock,
  TRIAL_BACKOFF_WINDOWS,
  TRIAL_MIN_BYTES_PER_SECOND,
  TRIAL_WINDOWS
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

/** manifest bytes a second: a busy reader on loopback packed, and sealed; a 100 Mbit/s link packed, and sealed */
const LOOPBACK_PACKED = 35e6
const LOOPBACK_SEALED = 80e6
const LINK_100_PACKED = 37e6
const LINK_100_SEALED = 12.5e6

test('packed from the start, and while the node has room or chunks come slowly', () => {
  const clock = fakeClock()
  const choice = new PackChoice({ clock })
  assert.ok(choice.wantPacked(), 'packed before anything was measured')
  for (let i = 0; i < 5; i++) assert.ok(window(choice, clock, 1, 7.5e6), '20 Mbit/s, event loop always busy')
  assert.ok(window(choice, clock, 1, TRIAL_MIN_BYTES_PER_SECOND * 0.99), 'busy, just under the trial rate')
  assert.ok(window(choice, clock, 0.84, LOOPBACK_PACKED), 'fast, just under busy')
  for (let i = 0; i < 5; i++) assert.ok(window(choice, clock, 0.5, LOOPBACK_SEALED), 'fast, but the node has room')
})

test('a busy node on a fast link tries sealed chunks and keeps them unless they come clearly slower', () => {
  const clock = fakeClock()
  const choice = new PackChoice({ clock })
  assert.not.ok(window(choice, clock, 0.95, LOOPBACK_PACKED), 'busy, packed chunks fast: sealed on trial')
  assert.not.ok(window(choice, clock, 0.95, 0.5 * LOOPBACK_PACKED), "the trial's first window is not judged")
  assert.not.ok(window(choice, clock, 0.9, 0.85 * LOOPBACK_PACKED), 'its last one came near the packed rate: kept')
  assert.not.ok(window(choice, clock, 0.7, LOOPBACK_SEALED), 'between the thresholds: kept')
  assert.ok(window(choice, clock, 0.5, LOOPBACK_SEALED), 'room to unpack again: packed')
  assert.not.ok(window(choice, clock, 0.9, LOOPBACK_PACKED), 'busy again: sealed on trial again')
  assert.not.ok(window(choice, clock, 0.9, LOOPBACK_SEALED))
  assert.not.ok(window(choice, clock, 0.9, LOOPBACK_SEALED), 'trial passed')
  assert.ok(window(choice, clock, 0.95, 0.49 * TRIAL_MIN_BYTES_PER_SECOND), "slowed to a thin link's pace: packed")
})

test('a busy node on a thin link goes back to packed after the trial, and tries again only after the backoff', () => {
  const clock = fakeClock()
  const choice = new PackChoice({ clock })
  assert.not.ok(window(choice, clock, 0.95, LINK_100_PACKED), 'busy with other work, packed fast: sealed on trial')
  for (let i = 1; i < TRIAL_WINDOWS; i++) assert.not.ok(window(choice, clock, 0.95, LINK_100_SEALED), 'trial')
  assert.ok(window(choice, clock, 0.95, LINK_100_SEALED), 'sealed came slower than packed had: packed')
  for (let i = 1; i < TRIAL_BACKOFF_WINDOWS; i++)
    assert.ok(window(choice, clock, 0.95, LINK_100_PACKED), `window ${i} of the backoff: packed`)
  assert.not.ok(window(choice, clock, 0.95, LINK_100_PACKED), 'after the backoff: sealed on trial')
})

test('the first window starts with the first chunk and is shorter; the next ones are full', () => {
  const clock = fakeClock()
  const choice = new PackChoice({ clock })
  clock.busy = 1
  clock.at += 10 * CHOICE_WINDOW_MS
  assert.ok(choice.wantPacked(), 'no chunk yet (holders and the manifest being found): packed, nothing measured')
  choice.moved((LOOPBACK_PACKED * FIRST_CHOICE_MS) / 1000)
  clock.at += FIRST_CHOICE_MS - 1
  assert.ok(choice.wantPacked(), 'before the first window ends: packed')
  clock.at += 1
  assert.not.ok(choice.wantPacked(), 'fast and busy over the first window: sealed')
  // Sealed chunks now come slowly: the trial's last window turns back to packed, after full windows.
  for (let at = FIRST_CHOICE_MS; at < TRIAL_WINDOWS * CHOICE_WINDOW_MS; at += FIRST_CHOICE_MS) {
    clock.at += FIRST_CHOICE_MS
    assert.not.ok(choice.wantPacked(), `${at} ms into the trial: sealed, as its windows are full ones`)
  }
  clock.at += CHOICE_WINDOW_MS
  assert.ok(choice.wantPacked(), 'the trial over, sealed came slower: packed')
})

test('within a window the choice stands; a choice that is not adaptive is always packed', () => {
  const clock = fakeClock()
  const choice = new PackChoice({ clock })
  assert.not.ok(window(choice, clock, 1, LOOPBACK_PACKED))
  clock.busy = 0
  clock.at += CHOICE_WINDOW_MS / 2
  assert.not.ok(choice.wantPacked(), 'half a window later: unchanged')
  const fixed = new PackChoice({ clock, adaptive: false })
  assert.ok(window(fixed, clock, 1, LOOPBACK_PACKED))
})

test.run()
