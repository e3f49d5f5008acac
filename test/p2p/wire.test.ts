/**
 * Length-prefixed messages from a member, read with their limits (node/p2p/wire.ts) over an in-memory libp2p
 * stream pair: messages round-trip, a clean end is told apart from a cut one, a declared length over the
 * limit or the read buffer is refused before its body is awaited, and a message that stops midway is
 * refused within its time limit. Each failure maps to its refusal code.
 */
import { streamPair } from '@libp2p/utils'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { refusalCodeOf } from '../../node/p2p/penalties.ts'
import { encodeLength, messageStream, ReadBufferOverflowError } from '../../node/p2p/wire.ts'

const LIMITS = { maxDataLength: 1024, maxBufferSize: 512 * 1024, messageTimeoutMs: 200 }

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    return error as Error
  }
  throw new assert.Assertion({ message: 'read', generated: true, operator: 'throws', expects: 'error', actual: '-' })
}

// AbortSignal.timeout does not keep a process alive; a node has its sockets for that, this test has this.
const keepAlive = setInterval(() => {}, 1_000)
test.after(() => {
  clearInterval(keepAlive)
})

const framed = (body: Uint8Array): Uint8Array => Uint8Array.from([...encodeLength(body.byteLength), ...body])

test('lengths round-trip as unsigned varints, as lpStream writes them', () => {
  assert.equal([...encodeLength(0)], [0])
  assert.equal([...encodeLength(300)], [0xac, 0x02])
  assert.equal([...encodeLength(2 ** 35)], [0x80, 0x80, 0x80, 0x80, 0x80, 0x01])
})

test('messages round-trip, several in one write and one across writes; a clean end reads as undefined', async () => {
  const [a, b] = await streamPair()
  const writer = messageStream(a, LIMITS)
  const reader = messageStream(b, LIMITS)
  const big = new Uint8Array(1000).fill(7)
  a.send(Uint8Array.from([...framed(Uint8Array.from([1, 2, 3])), ...framed(new Uint8Array(0))]))
  a.send(framed(big).subarray(0, 500))
  a.send(framed(big).subarray(500))
  await writer.write(Uint8Array.from([9]))
  await a.close()
  assert.equal([...((await reader.read()) ?? [])], [1, 2, 3])
  assert.equal([...((await reader.read()) ?? [])], [])
  assert.equal(await reader.read(), big)
  assert.equal([...((await reader.read()) ?? [])], [9])
  assert.is(await reader.read(), undefined)
})

test('a stream that ends inside a message, or inside its length, was cut short', async () => {
  for (const bytes of [Uint8Array.from([10, 1, 2, 3]), Uint8Array.from([0x80])]) {
    const [a, b] = await streamPair()
    const reader = messageStream(b, LIMITS)
    a.send(bytes)
    await a.close()
    const error = await failure(reader.read())
    assert.is(error.name, 'TruncatedMessageError')
    assert.is(refusalCodeOf(error), 'truncated-message')
  }
})

test('a length over the limit is refused at once, before its body; so is a length prefix of 8 bytes', async () => {
  const longPrefix = Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1])
  for (const prefix of [encodeLength(LIMITS.maxDataLength + 1), longPrefix]) {
    const [a, b] = await streamPair()
    const reader = messageStream(b, { ...LIMITS, messageTimeoutMs: 10_000 })
    a.send(prefix)
    const started = Date.now()
    const error = await failure(reader.read())
    assert.is(error.name, 'OversizedMessageError')
    assert.is(refusalCodeOf(error), 'oversized-message')
    assert.ok(Date.now() - started < 1_000, 'refused without waiting for the body')
  }
})

test('a length within the limit but over the read buffer is refused at once, naming the length', async () => {
  const [a, b] = await streamPair()
  const reader = messageStream(b, { maxDataLength: 16 * 1024 * 1024, maxBufferSize: 4096, messageTimeoutMs: 10_000 })
  a.send(encodeLength(5_000_000))
  const error = await failure(reader.read())
  assert.instance(error, ReadBufferOverflowError)
  assert.is((error as ReadBufferOverflowError).length, 5_000_000)
  assert.is(refusalCodeOf(error), 'oversized-message')
})

test('a message that stops midway is refused once its time is up; the wait for the next one has no limit', async () => {
  const [a, b] = await streamPair()
  const reader = messageStream(b, LIMITS)
  const idle = reader.read()
  await new Promise(resolve => setTimeout(resolve, 2 * LIMITS.messageTimeoutMs))
  a.send(Uint8Array.from([100, 1, 2, 3]))
  const started = Date.now()
  const error = await failure(idle)
  assert.is(error.name, 'StalledStreamError')
  assert.is(refusalCodeOf(error), 'stalled-stream')
  assert.ok(Date.now() - started < 4 * LIMITS.messageTimeoutMs)
})

test("a caller's timeout while waiting for a message is a stall; its own abort is not", async () => {
  const [, b] = await streamPair()
  const reader = messageStream(b, LIMITS)
  assert.is(refusalCodeOf(await failure(reader.read(AbortSignal.timeout(50)))), 'stalled-stream')
  const [, d] = await streamPair()
  const controller = new AbortController()
  const read = messageStream(d, LIMITS).read(controller.signal)
  controller.abort(new Error('stopping'))
  const error = await failure(read)
  assert.is(error.message, 'stopping')
  assert.is(refusalCodeOf(error), undefined)
})

test.run()
