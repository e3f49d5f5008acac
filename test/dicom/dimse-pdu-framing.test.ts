/**
 * P-DATA-TF and PDU framing without a network: PDUs never longer than the peer takes, PDVs framed the same
 * however the bytes are cut, and malformed or random input raising DicomProtocolError with a stable problem,
 * never another exception, never a hang. (Association PDUs: dimse-pdu.test.ts.)
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeCommand } from '../../node/dicom/dimse/command.ts'
import { DicomProtocolError, type DicomProtocolProblem } from '../../node/dicom/dimse/errors.ts'
import {
  decodeAssociateAc,
  decodeAssociateRq,
  encodeAbort,
  encodeAssociateRq,
  encodePDataTf,
  encodeReleaseRq,
  PDU_TYPE,
  PDV_COMMAND,
  PDV_LAST,
  PduReader
} from '../../node/dicom/dimse/pdu.ts'
import { bodyOf, LIMITS, pdu, pdv, random, recorder, RQ, throwsProblem } from './dimse-pdu-helpers.ts'

test('P-DATA-TF: PDUs never longer than the peer takes, the last PDV flagged, framed alike however cut', () => {
  const value = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251))
  for (const max of [0, 7, 20, 256, 1006, 1007, 16_384]) {
    const encoded = encodePDataTf(5, false, value, max)
    const { sink, events, headers } = recorder()
    new PduReader(sink, LIMITS).push(encoded)
    for (const [type, length] of headers) {
      assert.is(type, PDU_TYPE.pDataTf)
      if (max !== 0) assert.ok(length <= max, `PDU of ${length} bytes with a maximum of ${max}`)
    }
    const expected = max === 0 ? 1 : Math.ceil(1000 / (max - 6))
    assert.is(events.length, expected, `${max}: PDV count`)
    events.forEach((event, i) => {
      assert.ok('pdv' in event)
      assert.is(event.pdv, 5)
      assert.is(event.control, i === events.length - 1 ? PDV_LAST : 0)
    })
    assert.ok(
      Buffer.concat(events.map(event => ('data' in event ? event.data : Buffer.alloc(0)))).equals(value),
      `${max}: data`
    )
  }
  // A command, and an empty value (one empty last fragment).
  const command = encodePDataTf(1, true, Buffer.alloc(0), 0)
  const { sink, events } = recorder()
  new PduReader(sink, LIMITS).push(command)
  assert.equal(events, [{ pdv: 1, control: PDV_COMMAND | PDV_LAST, data: Buffer.alloc(0) }])
  assert.throws(() => encodePDataTf(1, true, value, 6), RangeError)

  // A stream of every kind of PDU, with PDUs of several PDVs, pushed whole, byte by byte and in random cuts.
  const stream = Buffer.concat([
    encodeAssociateRq(RQ),
    pdu(
      0x04,
      Buffer.concat([
        pdv(1, 3, Buffer.from('command')),
        pdv(3, 0, value.subarray(0, 10)),
        pdv(3, 0, Buffer.alloc(0)),
        pdv(3, 2, value.subarray(10))
      ])
    ),
    encodePDataTf(3, false, value, 100),
    encodeReleaseRq(),
    encodeAbort({ source: 0, reason: 0 })
  ])
  const whole = recorder()
  new PduReader(whole.sink, LIMITS).push(stream)
  assert.is(whole.events.length, 1 + 4 + 11 + 1 + 1)
  const byByte = recorder()
  const reader = new PduReader(byByte.sink, LIMITS)
  for (let i = 0; i < stream.length; i++) {
    reader.push(stream.subarray(i, i + 1))
    if (i === 5) assert.not.ok(reader.idle, 'not idle inside the first PDU')
  }
  assert.ok(reader.idle)
  reader.finish()
  assert.equal(byByte.events, whole.events)
  const next = random(1)
  for (let round = 0; round < 50; round++) {
    const cut = recorder()
    const cutReader = new PduReader(cut.sink, LIMITS)
    for (let offset = 0; offset < stream.length; ) {
      const n = 1 + Math.floor(next() * 300)
      cutReader.push(stream.subarray(offset, offset + n))
      offset += n
    }
    assert.equal(cut.events, whole.events, `random cuts, round ${round}`)
  }
})

test('P-DATA-TF: PDV fragments are slices of the received bytes, not copies', () => {
  const value = Buffer.alloc(200_000, 7)
  const chunk = encodePDataTf(1, false, value, 1_048_576)
  const { sink, parts } = recorder()
  const reader = new PduReader(sink, LIMITS)
  reader.push(chunk.subarray(0, 65_536))
  reader.push(chunk.subarray(65_536))
  assert.is(parts.length, 2, 'one part per received piece')
  for (const part of parts) assert.is(part.buffer, chunk.buffer, 'a part shares the memory it came in')
})

test('PDU framing: malformed PDUs raise DicomProtocolError at once, and the reader then ignores what follows', () => {
  const cases: Array<[what: string, bytes: Buffer, problem: DicomProtocolProblem]> = [
    ['not DICOM (HTTP)', Buffer.from('GET / HTTP/1.1\r\n'), 'unknown-pdu-type'],
    ['PDU type 0', Buffer.from([0, 0, 0, 0, 0, 4]), 'unknown-pdu-type'],
    ['PDU type 8', Buffer.from([8, 0, 0, 0, 0, 4]), 'unknown-pdu-type'],
    ['a P-DATA-TF announcing 4 GiB (header only)', Buffer.from([4, 0, 0xff, 0xff, 0xff, 0xff]), 'too-long'],
    ['a P-DATA-TF one byte over the limit', Buffer.from([4, 0, 0, 0x10, 0, 1]), 'too-long'],
    ['an A-ASSOCIATE-RQ over 64 KiB (header only)', Buffer.from([1, 0, 0, 1, 0, 1]), 'too-long'],
    ['an A-RELEASE-RQ of 5 bytes', pdu(5, Buffer.alloc(5)), 'bad-length'],
    ['an A-ABORT of 0 bytes', pdu(7, Buffer.alloc(0)), 'bad-length'],
    ['a P-DATA-TF with no PDV', pdu(4, Buffer.alloc(0)), 'bad-length'],
    ['a P-DATA-TF ending inside a PDV header', pdu(4, Buffer.from([0, 0, 0])), 'bad-length'],
    ['a PDV item length of 1', pdu(4, Buffer.from([0, 0, 0, 1, 1, 3])), 'bad-length'],
    ['a PDV longer than its PDU', pdu(4, Buffer.from([0, 0, 0, 10, 1, 3, 0xde, 0xad])), 'bad-pdv'],
    ['a PDV of 4 GiB in a small PDU', pdu(4, Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 3, 0xde, 0xad])), 'bad-pdv'],
    [
      'stray bytes after the last PDV',
      pdu(4, Buffer.concat([pdv(1, 3, Buffer.from('ab')), Buffer.from([0, 0])])),
      'bad-length'
    ]
  ]
  for (const [what, bytes, problem] of cases) {
    const { sink, events } = recorder()
    const reader = new PduReader(sink, LIMITS)
    throwsProblem(
      () => {
        reader.push(bytes)
      },
      problem,
      what
    )
    reader.push(encodeReleaseRq()) // ignored, not thrown on
    assert.ok(
      events.every(event => !('pdu' in event)),
      `${what}: nothing after the error`
    )
  }

  // A sink can refuse a PDU on its header: nothing of the body reaches it.
  const { events } = recorder()
  const refusing = new PduReader(
    {
      pduHeader(type) {
        if (type === PDU_TYPE.pDataTf) throw new DicomProtocolError('unexpected-pdu', 'P-DATA-TF before A-ASSOCIATE-RQ')
      },
      pdu() {
        assert.unreachable('pdu')
      },
      pdv() {
        assert.unreachable('pdv')
      }
    },
    LIMITS
  )
  throwsProblem(
    () => {
      refusing.push(encodePDataTf(1, true, Buffer.from('abc'), 0))
    },
    'unexpected-pdu',
    'a refused header'
  )
  assert.is(events.length, 0)
})

test('PDU framing: a stream that ends inside a PDU is truncated', () => {
  const whole = Buffer.concat([encodeReleaseRq(), encodePDataTf(1, false, Buffer.alloc(100), 0)])
  for (const end of [3, 10 + 3, 10 + 6, 10 + 9, 10 + 12, 10 + 50, whole.length - 1]) {
    const reader = new PduReader(recorder().sink, LIMITS)
    reader.push(whole.subarray(0, end))
    assert.not.ok(reader.idle, `cut at ${end}`)
    throwsProblem(
      () => {
        reader.finish()
      },
      'truncated',
      `a stream cut at ${end}`
    )
  }
  const reader = new PduReader(recorder().sink, LIMITS)
  reader.push(whole)
  reader.finish()
})

test('random and mutated PDUs: DicomProtocolError or a result, never another exception', () => {
  const next = random(42)
  const rqBytes = bodyOf(encodeAssociateRq(RQ))
  const commandBytes = encodeCommand({
    affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.2',
    commandField: 0x0001,
    messageId: 7,
    priority: 0,
    commandDataSetType: 0x0000,
    affectedSopInstanceUid: '1.2.3.4.5.6.7.8.9'
  })
  const stream = Buffer.concat([
    encodeAssociateRq(RQ),
    encodePDataTf(1, true, commandBytes, 64),
    encodePDataTf(1, false, Buffer.alloc(300, 1), 128),
    encodeReleaseRq()
  ])
  const mutate = (bytes: Buffer): Buffer => {
    const copy = Buffer.from(bytes)
    for (let i = 0, n = 1 + Math.floor(next() * 4); i < n; i++)
      copy[Math.floor(next() * copy.length)] = Math.floor(next() * 256)
    return next() < 0.2 ? copy.subarray(0, Math.floor(next() * copy.length)) : copy
  }
  const survives = (fn: () => unknown, what: string): void => {
    try {
      fn()
    } catch (error) {
      if (!(error instanceof DicomProtocolError)) assert.unreachable(`${what}: ${String(error)}`)
    }
  }
  for (let round = 0; round < 2_000; round++) {
    survives(() => decodeAssociateRq(mutate(rqBytes)), 'A-ASSOCIATE-RQ')
    survives(() => decodeAssociateAc(mutate(rqBytes)), 'A-ASSOCIATE-AC')
    const reader = new PduReader(recorder().sink, { maxPDataLength: 16_384, maxOtherLength: 4_096 })
    survives(() => {
      reader.push(mutate(stream))
      reader.finish()
    }, 'PDU stream')
  }
})

test.run()
