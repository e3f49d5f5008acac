/**
 * Flow control of a DICOM connection (SocketFlow), with a socket stood in for: the socket is paused while any
 * reason holds and resumed only when none does; the stall timer runs only while the SCU owes bytes and we are
 * reading; once stopped, nothing resumes the socket and no stall is reported.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { PAUSED_FOR_DRAIN, PAUSED_FOR_QUEUE, SocketFlow } from '../../node/dicom/scp/flow.ts'

function flow(stallMs = 30) {
  const calls: string[] = []
  const stalls: number[] = []
  const state = { midway: true }
  const socket = {
    pause: () => {
      calls.push('pause')
    },
    resume: () => {
      calls.push('resume')
    }
  }
  const f = new SocketFlow(socket as never, stallMs, {
    midway: () => state.midway,
    stalled: ms => {
      stalls.push(ms)
    }
  })
  return { f, calls, stalls, state }
}

const wait = async (ms: number): Promise<void> => {
  await new Promise(resolve => setTimeout(resolve, ms))
}

test('the socket is paused once for any number of reasons, and resumed when the last one ends', () => {
  const { f, calls } = flow()
  f.pause(PAUSED_FOR_QUEUE)
  f.pause(PAUSED_FOR_DRAIN)
  assert.ok(f.isPaused(PAUSED_FOR_QUEUE) && f.isPaused(PAUSED_FOR_DRAIN))
  f.resume(PAUSED_FOR_QUEUE)
  assert.equal(calls, ['pause'], 'still waiting for the drain')
  f.resume(PAUSED_FOR_QUEUE)
  f.resume(PAUSED_FOR_DRAIN)
  assert.equal(calls, ['pause', 'resume'])
  f.stop()
})

test('a stall is reported when the SCU owes bytes and none came; our own pause is never a stall', async () => {
  const { f, stalls, state } = flow(20)
  f.watch()
  await wait(60)
  assert.equal(stalls, [20])
  const second = flow(20)
  second.f.pause(PAUSED_FOR_QUEUE)
  await wait(60)
  assert.equal(second.stalls, [], 'paused by us')
  second.state.midway = false
  second.f.resume(PAUSED_FOR_QUEUE)
  await wait(60)
  assert.equal(second.stalls, [], 'owed nothing')
  state.midway = false
  f.stop()
  second.f.stop()
})

test('once stopped, the socket is never resumed and no stall is reported', async () => {
  const { f, calls, stalls } = flow(20)
  f.pause(PAUSED_FOR_DRAIN)
  f.stop()
  f.resume(PAUSED_FOR_DRAIN)
  f.watch()
  await wait(60)
  assert.equal(calls, ['pause'])
  assert.equal(stalls, [])
})

test.run()
