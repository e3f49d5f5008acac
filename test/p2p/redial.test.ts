import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { REDIAL_POLICY } from '../../node/p2p/limits.ts'
import { backoffDelay } from '../../node/p2p/redial.ts'
import { BAN_MS, PeerPenalties, PENALTY_DECAY_MS, PENALTY_THRESHOLD } from '../../node/p2p/penalties.ts'

test('redial backoff doubles from 1 s, is capped at 30 s, and jitters within ±20 %', () => {
  assert.is(
    backoffDelay(0, () => 0.5),
    REDIAL_POLICY.initialDelayMs
  )
  assert.is(
    backoffDelay(1, () => 0.5),
    2 * REDIAL_POLICY.initialDelayMs
  )
  assert.is(
    backoffDelay(3, () => 0.5),
    8 * REDIAL_POLICY.initialDelayMs
  )
  assert.is(
    backoffDelay(50, () => 0.5),
    REDIAL_POLICY.maxDelayMs
  )
  assert.is(
    backoffDelay(0, () => 0),
    800
  )
  assert.is(
    backoffDelay(0, () => 1),
    1200
  )
})

test('penalties ban a peer once at the threshold, for the cool-down, and are forgotten after the decay time', () => {
  const banned: string[] = []
  const penalties = new PeerPenalties()
  penalties.setBanHandler(peer => banned.push(peer))
  penalties.penalise('p', 'malformed-message', PENALTY_THRESHOLD - 1, 0)
  assert.equal(banned, [])
  assert.not.ok(penalties.isBanned('p', 1))
  penalties.penalise('p', 'malformed-message', 1, 1)
  penalties.penalise('p', 'malformed-message', 1, 2)
  assert.equal(banned, ['p'])
  assert.ok(penalties.isBanned('p', 2))
  assert.not.ok(penalties.isBanned('p', 1 + BAN_MS))
  assert.is(penalties.penalise('p', 'malformed-message', 1, PENALTY_DECAY_MS + BAN_MS), 1)
  assert.not.ok(penalties.isBanned('q', 2))
})

test.run()
