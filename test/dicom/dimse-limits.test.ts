/**
 * The DICOM port's limits, in process, with sinks that show what the SCP does with them: a sink that asks to
 * wait holds the socket, a data set its association leaves unfinished is released, a stalled PDU or message
 * ends its association, associations past the limit and callers not on the allow-list are rejected.
 * (test/e2e/dicom-port.test.ts checks the same against a real node process, with DCMTK.)
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { pino } from 'pino'
import {
  type DatasetSink,
  type DicomLimits,
  type DicomScp,
  type StoreHeader,
  type StoreOutcome,
  startDicomScp
} from '../../node/dicom/scp.ts'
import {
  associateRq,
  commandPdu,
  dataPdu,
  dataPdus,
  EXPLICIT_LE,
  echoRq,
  RawAssociation,
  type ScuEvent,
  storeRq,
  VERIFICATION
} from '../../scripts/fuzz/scu.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const AE_TITLE = 'RADMESH'
const CT = '1.2.840.10008.5.1.4.1.1.2'
const MR = '1.2.840.10008.5.1.4.1.1.4'
const CONTEXTS = [
  { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [EXPLICIT_LE] },
  { id: 3, abstractSyntax: CT, transferSyntaxes: [EXPLICIT_LE] }
]

/** A sink that records what happens to it; `wait` makes `write` ask to wait once that many bytes are in. */
class TestSink implements DatasetSink<Buffer> {
  readonly parts: Buffer[] = []
  bytes = 0
  released = false
  finished = false
  /** bytes written while a drain was pending */
  writtenWhileWaiting = 0
  #waiting: { promise: Promise<void>; resolve: () => void } | undefined
  readonly header: StoreHeader
  readonly waitEvery: number
  readonly drainMs: number
  /** `drainMs` >= 0: each wait ends by itself after that long */
  constructor(header: StoreHeader, waitEvery = Number.POSITIVE_INFINITY, drainMs = -1) {
    this.header = header
    this.waitEvery = waitEvery
    this.drainMs = drainMs
  }

  write(part: Buffer): boolean {
    if (this.released) throw new Error('write after release')
    if (this.#waiting !== undefined) this.writtenWhileWaiting += part.length
    this.parts.push(Buffer.from(part))
    const before = this.bytes
    this.bytes += part.length
    const crossed = Math.floor(before / this.waitEvery) !== Math.floor(this.bytes / this.waitEvery)
    if (!crossed && this.#waiting === undefined) return true
    if (this.#waiting === undefined) {
      let resolve = (): void => {}
      const promise = new Promise<void>(r => {
        resolve = r
      })
      this.#waiting = { promise, resolve }
      if (this.drainMs >= 0)
        setTimeout(() => {
          this.drain_()
        }, this.drainMs)
    }
    return false
  }

  get waiting(): boolean {
    return this.#waiting !== undefined
  }

  /** Lets the writer go on. */
  drain_(): void {
    const waiting = this.#waiting
    this.#waiting = undefined
    waiting?.resolve()
  }

  async drain(): Promise<void> {
    await this.#waiting?.promise
  }

  finish(): Buffer {
    this.finished = true
    return Buffer.concat(this.parts)
  }

  release(): void {
    this.released = true
  }
}

interface Fixture {
  scp: DicomScp
  sinks: TestSink[]
  stored: Array<{ sopInstanceUid: string; bytes: number }>
  logLines: Array<Record<string, unknown>>
  /** what onStore answers, after `storeMs` */
  storeMs: number
}

async function start(
  limits: Partial<DicomLimits>,
  sink: (header: StoreHeader) => TestSink = header => new TestSink(header)
): Promise<Fixture> {
  const logLines: Array<Record<string, unknown>> = []
  const log = pino(
    { level: 'debug' },
    {
      write: (line: string) => {
        logLines.push(JSON.parse(line) as Record<string, unknown>)
      }
    }
  )
  const fixture = { sinks: [], stored: [], logLines, storeMs: 0 } as unknown as Fixture
  fixture.scp = await startDicomScp<Buffer>({
    ...limits,
    port: 0,
    host: '127.0.0.1',
    aeTitle: AE_TITLE,
    log,
    openDataset: header => {
      const made = sink(header)
      fixture.sinks.push(made)
      return made
    },
    onStore: async (request): Promise<StoreOutcome> => {
      await new Promise(resolve => setTimeout(resolve, fixture.storeMs))
      fixture.stored.push({ sopInstanceUid: request.sopInstanceUid, bytes: request.dataset.length })
      return { status: 0 }
    }
  })
  return fixture
}

async function associate(fixture: Fixture, calling = 'LIMITS'): Promise<RawAssociation> {
  const scu = await RawAssociation.connect(fixture.scp.port)
  const answer = await scu.associate(associateRq(AE_TITLE, calling, CONTEXTS))
  assert.is(answer.type, 'associate-ac', `association of ${calling}: ${JSON.stringify(answer)}`)
  return scu
}

const logged = (fixture: Fixture, pattern: RegExp): Array<Record<string, unknown>> =>
  fixture.logLines.filter(line => pattern.test(`${String(line['msg'])} ${String(line['reason'] ?? '')}`))

const MIB = 1024 * 1024
const fragment = (bytes: number, fill = 0x42): Buffer => Buffer.alloc(bytes, fill)

test('a sink that asks to wait holds the socket until it drains: it never gets more than one read ahead', async () => {
  let manual: TestSink | undefined
  const fixture = await start({}, header => (manual = new TestSink(header, MIB)))
  const scu = await associate(fixture)
  await scu.send(commandPdu(3, storeRq(1, CT, '1.2.3.1')))
  // 24 MiB offered, without waiting for the socket: only TCP's buffers and the SCP's one read may hold the rest.
  const sending = scu.send(dataPdus(3, fragment(24 * MIB), MIB))
  await waitFor('the sink to ask to wait', () => manual?.waiting, 2_000, 10)
  await new Promise(resolve => setTimeout(resolve, 300))
  const sink = manual as TestSink
  assert.ok(sink.bytes < 2 * MIB, `the sink took ${sink.bytes} bytes while it asked to wait`)
  assert.ok(sink.writtenWhileWaiting <= 256 * 1024, `${sink.writtenWhileWaiting} bytes written after it asked to wait`)
  // From now on it drains at once each time: the whole data set comes in, is stored, and answered.
  const pump = setInterval(() => {
    sink.drain_()
  }, 5)
  await sending
  const answer = await scu.next(10_000)
  clearInterval(pump)
  assert.is(answer.type, 'command')
  assert.is((answer as Extract<ScuEvent, { type: 'command' }>).command.status, 0)
  assert.equal(fixture.stored, [{ sopInstanceUid: '1.2.3.1', bytes: 24 * MIB }])
  assert.ok(!sink.released, 'a stored data set belongs to onStore, not released by the SCP')
  scu.destroy()
  await fixture.scp.stop()
})

test("a wait longer than the PDU timeout is ours, not the SCU's: the association goes on", async () => {
  const fixture = await start({ pduTimeoutMs: 200 }, header => new TestSink(header, 256 * 1024, 500))
  const scu = await associate(fixture)
  await scu.send(commandPdu(3, storeRq(1, CT, '1.2.3.2')), dataPdus(3, fragment(MIB), 64 * 1024))
  const answer = await scu.next(5_000)
  assert.is(answer.type, 'command', JSON.stringify(answer))
  assert.equal(fixture.stored, [{ sopInstanceUid: '1.2.3.2', bytes: MIB }])
  scu.destroy()
  await fixture.scp.stop()
})

test('PDVs of a byte or two reach the sink in batches: one write per 64 KiB, not one per PDV', async () => {
  const fixture = await start({})
  const scu = await associate(fixture)
  const dataset = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 251))
  // Maximum PDU length 8: 2 bytes of data set per PDV, 100,000 PDVs.
  await scu.send(commandPdu(3, storeRq(1, CT, '1.2.3.5')), dataPdus(3, dataset, 8))
  const answer = await scu.next(10_000)
  assert.is(answer.type === 'command' ? answer.command.status : answer.type, 0)
  const sink = fixture.sinks[0] as TestSink
  assert.ok(sink.parts.length <= 5, `${sink.parts.length} writes`)
  assert.ok(Buffer.concat(sink.parts).equals(dataset), 'the bytes, in order')
  scu.destroy()
  await fixture.scp.stop()
})

test('a data set its association leaves unfinished is released: closed, aborted, or queued', async () => {
  const fixture = await start({})
  // Closed in the middle of a data set.
  let scu = await associate(fixture)
  await scu.send(commandPdu(3, storeRq(1, CT, '1.2.3.10')), dataPdu(3, fragment(100_000), false))
  await waitFor('the sink to have the bytes', () => fixture.sinks[0]?.bytes === 100_000, 2_000, 10)
  scu.destroy()
  await waitFor('the half data set to be released', () => fixture.sinks[0]?.released, 2_000, 10)
  // Aborted by the SCU in the middle of a data set.
  scu = await associate(fixture)
  const abort = Buffer.from([7, 0, 0, 0, 0, 4, 0, 0, 0, 0])
  await scu.send(commandPdu(3, storeRq(1, CT, '1.2.3.11')), dataPdu(3, fragment(1000), false), abort)
  await waitFor('the aborted data set to be released', () => fixture.sinks[1]?.released, 2_000, 10)
  // A whole data set queued while onStore runs for the one before; the SCU goes away: the queued one is released.
  fixture.storeMs = 500
  scu = await associate(fixture)
  await scu.send(commandPdu(3, storeRq(1, CT, '1.2.3.12')), dataPdus(3, fragment(1000)))
  await scu.send(commandPdu(3, storeRq(2, CT, '1.2.3.13')), dataPdus(3, fragment(1000)))
  await waitFor('both data sets to be in', () => fixture.sinks[3]?.finished, 2_000, 10)
  scu.destroy()
  await waitFor('the queued data set to be released', () => fixture.sinks[3]?.released, 2_000, 10)
  assert.ok(!(fixture.sinks[2] as TestSink).released, 'the data set onStore took is its own')
  // A data set refused before onStore (its SOP class is not the context's) is released too.
  fixture.storeMs = 0
  scu = await associate(fixture)
  await scu.send(commandPdu(3, storeRq(1, MR, '1.2.3.14')), dataPdus(3, fragment(1000)))
  const answer = await scu.next(2_000)
  assert.is(answer.type === 'command' ? answer.command.status : answer.type, 0x0122)
  assert.ok(fixture.sinks[4]?.released, 'a refused data set is released')
  scu.destroy()
  await fixture.scp.stop()
})

test('a PDU or message that stops midway ends its association after the PDU timeout; a quiet one lives', async () => {
  const fixture = await start({ pduTimeoutMs: 300 })
  const stalls: Array<[string, Buffer]> = [
    ['inside a PDU header', Buffer.from([4, 0, 0])],
    [
      'inside a PDV',
      Buffer.concat([commandPdu(3, storeRq(1, CT, '1.2.3.19')), dataPdu(3, fragment(1000), true).subarray(0, 500)])
    ],
    [
      'between the PDUs of a data set',
      Buffer.concat([commandPdu(3, storeRq(1, CT, '1.2.3.20')), dataPdu(3, fragment(1000), false)])
    ],
    ['inside a command of several PDVs', commandPdu(3, storeRq(1, CT, '1.2.3.21')).subarray(0, 30)]
  ]
  for (const [where, bytes] of stalls) {
    const scu = await associate(fixture)
    const quiet = await associate(fixture, 'QUIET')
    const started = Date.now()
    await scu.send(bytes)
    const events: string[] = []
    const ended = (event: ScuEvent): boolean => event.type === 'closed' || event.type === 'timeout'
    for (let event = await scu.next(3_000); !ended(event); event = await scu.next(3_000)) {
      events.push(event.type === 'abort' ? `abort ${event.abort.source}/${event.abort.reason}` : event.type)
    }
    const took = Date.now() - started
    assert.ok(events.includes('abort 2/0'), `${where}: A-ABORT (${events.join(', ')})`)
    assert.ok(took >= 250 && took < 2_000, `${where}: ended after ${took} ms`)
    // The association that sent nothing is still there and answers.
    await quiet.send(commandPdu(1, echoRq(1)))
    const echo = await quiet.next(2_000)
    const status = echo.type === 'command' ? echo.command.status : echo.type
    assert.is(status, 0, `${where}: the quiet association still answers`)
    quiet.destroy()
  }
  assert.ok(logged(fixture, /no byte for 0.3 s in the middle of a PDU/).length >= 2)
  assert.ok(logged(fixture, /no byte for 0.3 s in the middle of a DIMSE message/).length >= 1)
  assert.ok(
    fixture.sinks.every(sink => sink.released),
    'the stalled data set was released'
  )
  await fixture.scp.stop()
})

test('past maxAssociations an association is rejected, transient, local limit exceeded (PS3.8 9.3.4)', async () => {
  const fixture = await start({ maxAssociations: 2 })
  const first = await associate(fixture, 'FIRST')
  const second = await associate(fixture, 'SECOND')
  const third = await RawAssociation.connect(fixture.scp.port)
  const answer = await third.associate(associateRq(AE_TITLE, 'THIRD', CONTEXTS))
  assert.equal(answer, { type: 'associate-rj', rj: { result: 2, source: 3, reason: 2 } })
  assert.ok(await third.closedWithin(3_000))
  const lines = logged(fixture, /too many associations/)
  assert.is(lines.length, 1)
  assert.is(lines[0]?.['callingAeTitle'], 'THIRD')
  assert.is(lines[0]?.['maxAssociations'], 2)
  // A rejected association holds no slot; a released one frees its slot.
  const release = await first.release()
  assert.is(release.type, 'release-rp')
  await first.closedWithin(3_000)
  await waitFor(
    'a slot to free',
    async () => {
      const again = await RawAssociation.connect(fixture.scp.port)
      const reply = await again.associate(associateRq(AE_TITLE, 'AGAIN', CONTEXTS))
      again.destroy()
      return reply.type === 'associate-ac'
    },
    3_000,
    50
  )
  second.destroy()
  await fixture.scp.stop()
})

test('with an allow-list, a calling AE title not on it, or from another address, is rejected and logged', async () => {
  const fixture = await start({
    allowedCallers: [
      { aeTitle: 'GOOD', host: '127.0.0.1' },
      { aeTitle: 'SUBNET', host: '127.0.0.0/8' },
      { aeTitle: 'BYNAME', host: 'localhost' },
      { aeTitle: 'ELSEWHERE', host: '192.0.2.10' }
    ]
  })
  for (const calling of ['GOOD', 'SUBNET', 'BYNAME']) (await associate(fixture, calling)).destroy()
  for (const calling of ['STRANGER', 'ELSEWHERE', 'good']) {
    const scu = await RawAssociation.connect(fixture.scp.port)
    const answer = await scu.associate(associateRq(AE_TITLE, calling, CONTEXTS))
    assert.equal(answer, { type: 'associate-rj', rj: { result: 1, source: 1, reason: 3 } }, calling)
    scu.destroy()
  }
  const lines = logged(fixture, /calling AE title not allowed/)
  assert.equal(
    lines.map(line => line['callingAeTitle']),
    ['STRANGER', 'ELSEWHERE', 'good']
  )
  assert.ok(lines.every(line => line['address'] === '127.0.0.1'))
  await fixture.scp.stop()
})

test('rejections a peer repeats at will are logged a few at a time, then counted', async () => {
  const fixture = await start({ allowedCallers: [{ aeTitle: 'GOOD', host: '127.0.0.1' }] })
  for (let i = 0; i < 12; i++) {
    const scu = await RawAssociation.connect(fixture.scp.port)
    const answer = await scu.associate(associateRq(AE_TITLE, `FLOOD${i}`, CONTEXTS))
    assert.is(answer.type, 'associate-rj')
    scu.destroy()
  }
  assert.is(logged(fixture, /calling AE title not allowed/).length, 5)
  await fixture.scp.stop()
})

test('limits that make no sense are refused at start', async () => {
  const log = pino({ level: 'silent' })
  for (const limits of [{ maxAssociations: 0 }, { pduTimeoutMs: -1 }, { idleTimeoutMs: 1.5 }]) {
    try {
      const onStore = async (): Promise<StoreOutcome> => ({ status: 0 })
      await startDicomScp({ ...limits, port: 0, host: '127.0.0.1', aeTitle: AE_TITLE, log, onStore })
      assert.unreachable(JSON.stringify(limits))
    } catch (error) {
      assert.instance(error, RangeError)
    }
  }
})

test.run()
