/**
 * The frame size a lane asks for (lane.ts frameBytesFor): small on a thin link, which may drop mid-frame,
 * large on a fast one, where each frame's fixed work at both ends is what counts.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { frameBytesFor, LANE_FRAME_BYTES } from '../../node/exchange/lane.ts'
import { CHUNK_FRAME_BYTES } from '../../protocol/exchange/messages.ts'

test('32 KiB while the rate is unknown and on a thin link; up to 256 KiB on a fast one', () => {
  assert.is(frameBytesFor(undefined), CHUNK_FRAME_BYTES)
  assert.is(frameBytesFor(2.5e6), CHUNK_FRAME_BYTES, '20 Mbit/s')
  const at100Mbit = frameBytesFor(12.5e6)
  assert.ok(at100Mbit > CHUNK_FRAME_BYTES && at100Mbit < LANE_FRAME_BYTES, `100 Mbit/s: ${at100Mbit}`)
  assert.is(frameBytesFor(60e6), LANE_FRAME_BYTES, 'loopback')
  assert.is(LANE_FRAME_BYTES, 256 * 1024)
})

test.run()
