/**
 * The DICOM Upper Layer codecs of the SCP, without a network: what is encoded decodes to the same, PDUs and
 * PDVs are framed the same however the bytes are cut, and malformed input (truncated PDUs, lengths that
 * contradict each other, a PDV longer than its PDU) raises DicomProtocolError with a stable problem, never
 * another exception, never a hang. (Command sets: dimse-command.test.ts.)
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeCommand } from '../../node/dicom/dimse/command.ts'
import { DicomProtocolError, type DicomProtocolProblem } from '../../node/dicom/dimse/errors.ts'
import {
  type AssociateAc,
  type AssociateRq,
  decodeAbort,
  decodeAssociateAc,
  decodeAssociateRj,
  decodeAssociateRq,
  encodeAbort,
  encodeAssociateAc,
  encodeAssociateRj,
  encodeAssociateRq,
  encodePDataTf,
  encodeReleaseRp,
  encodeReleaseRq,
  PDU_TYPE,
  PDV_COMMAND,
  PDV_LAST,
  type PduLimits,
  PduReader,
  type PduSink
} from '../../node/dicom/dimse/pdu.ts'

function throwsProblem(fn: () => unknown, problem: DicomProtocolProblem, what: string): void {
  try {
    fn()
  } catch (error) {
    assert.instance(error, DicomProtocolError, what)
    assert.is((error as DicomProtocolError).problem, problem, `${what}: ${(error as Error).message}`)
    return
  }
  assert.unreachable(`${what} was accepted`)
}

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

type Event = { pdu: number; body: Buffer } | { pdv: number; control: number; data: Buffer }

/** A sink that records whole PDUs and whole PDVs (joining the parts of each PDV). */
function recorder(): { sink: PduSink; events: Event[]; parts: Buffer[]; headers: Array<[number, number]> } {
  const events: Event[] = []
  const parts: Buffer[] = []
  const headers: Array<[number, number]> = []
  let pending: Buffer[] = []
  const sink: PduSink = {
    pduHeader(type, length) {
      headers.push([type, length])
    },
    pdu(type, body) {
      events.push({ pdu: type, body: Buffer.from(body) })
    },
    pdv(contextId, control, part, end) {
      parts.push(part)
      pending.push(part)
      if (!end) return
      events.push({ pdv: contextId, control, data: Buffer.concat(pending) })
      pending = []
    }
  }
  return { sink, events, parts, headers }
}

const LIMITS: PduLimits = { maxPDataLength: 1_048_576, maxOtherLength: 65_536 }

function pdu(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(6)
  header[0] = type
  header.writeUInt32BE(body.length, 2)
  return Buffer.concat([header, body])
}

function pdv(contextId: number, control: number, fragment: Buffer): Buffer {
  const header = Buffer.alloc(6)
  header.writeUInt32BE(fragment.length + 2, 0)
  header[4] = contextId
  header[5] = control
  return Buffer.concat([header, fragment])
}

const bodyOf = (whole: Buffer): Buffer => {
  assert.is(whole.readUInt32BE(2), whole.length - 6, 'PDU length field')
  return whole.subarray(6)
}

const RQ: AssociateRq = {
  protocolVersion: 1,
  calledAeTitle: 'RADMESH',
  callingAeTitle: 'CT_SCANNER_01',
  applicationContext: '1.2.840.10008.3.1.1.1',
  presentationContexts: [
    { id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] },
    {
      id: 3,
      abstractSyntax: '1.2.840.10008.5.1.4.1.1.2',
      transferSyntaxes: ['1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2']
    },
    { id: 255, abstractSyntax: '1.2.3.4.5', transferSyntaxes: [] }
  ],
  maxPduLength: 16_384,
  implementationClassUid: '1.2.276.0.7230010.3.0.3.6.7',
  implementationVersionName: 'OFFIS_DCMTK_367'
}

test('SCP/SCU role selection items: encoded after the implementation class UID, decoded to the same', () => {
  const roles = [
    { sopClassUid: '1.2.840.10008.5.1.4.1.1.2', scu: false, scp: true },
    { sopClassUid: '1.2.840.10008.5.1.4.1.1.4', scu: true, scp: true }
  ]
  const bytes = encodeAssociateRq({ ...RQ, roles })
  assert.equal(decodeAssociateRq(bodyOf(bytes)), { ...RQ, roles })
  // A role item whose UID length overruns it is malformed.
  const at = bytes.indexOf(Buffer.concat([Buffer.from('1.2.840.10008.5.1.4.1.1.2'), Buffer.from([0, 1])]))
  assert.ok(at > 2)
  const broken = Buffer.from(bytes)
  broken.writeUInt16BE(200, at - 2)
  try {
    decodeAssociateRq(bodyOf(broken))
    assert.unreachable('a broken role item was read')
  } catch (error) {
    assert.instance(error, DicomProtocolError)
    assert.is((error as DicomProtocolError).problem, 'bad-item')
  }
})

test('A-ASSOCIATE-RQ and -AC: encode, then decode to the same', () => {
  const rq = encodeAssociateRq(RQ)
  assert.is(rq[0], PDU_TYPE.associateRq)
  assert.equal(decodeAssociateRq(bodyOf(rq)), RQ)
  const { implementationVersionName: _omitted, ...withoutVersion } = RQ
  assert.equal(decodeAssociateRq(bodyOf(encodeAssociateRq(withoutVersion))), withoutVersion)

  const ac: AssociateAc = {
    ...RQ,
    presentationContexts: [
      { id: 1, result: 0, transferSyntax: '1.2.840.10008.1.2' },
      { id: 3, result: 0, transferSyntax: '1.2.840.10008.1.2.4.70' },
      { id: 255, result: 4, transferSyntax: '1.2.840.10008.1.2' }
    ],
    maxPduLength: 1_048_576,
    implementationClassUid: '2.25.238471238946325718394672183946721839',
    implementationVersionName: 'RADMESH_0_1'
  }
  const encoded = encodeAssociateAc(ac)
  assert.is(encoded[0], PDU_TYPE.associateAc)
  assert.equal(decodeAssociateAc(bodyOf(encoded)), ac)
  // AE titles are padded with spaces to 16 bytes, the 32 reserved bytes are zero.
  assert.is(encoded.toString('latin1', 10, 26), 'RADMESH         ')
  assert.ok(encoded.subarray(42, 74).equals(Buffer.alloc(32)))
})

test('A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and A-ABORT: fixed PDUs', () => {
  const rj = encodeAssociateRj({ result: 1, source: 1, reason: 7 })
  assert.equal([...rj], [0x03, 0, 0, 0, 0, 4, 0, 1, 1, 7])
  assert.equal(decodeAssociateRj(bodyOf(rj)), { result: 1, source: 1, reason: 7 })
  assert.equal([...encodeReleaseRq()], [0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0])
  assert.equal([...encodeReleaseRp()], [0x06, 0, 0, 0, 0, 4, 0, 0, 0, 0])
  const abort = encodeAbort({ source: 2, reason: 6 })
  assert.equal([...abort], [0x07, 0, 0, 0, 0, 4, 0, 0, 2, 6])
  assert.equal(decodeAbort(bodyOf(abort)), { source: 2, reason: 6 })
  throwsProblem(() => decodeAbort(Buffer.alloc(3)), 'bad-length', 'a 3-byte A-ABORT')
  throwsProblem(() => decodeAssociateRj(Buffer.alloc(5)), 'bad-length', 'a 5-byte A-ASSOCIATE-RJ')
})

/** Item bytes as PS3.8 lays them out, for requests the encoder would never make. */
function item(type: number, ...values: Array<Buffer | string>): Buffer {
  const value = Buffer.concat(values.map(v => (typeof v === 'string' ? Buffer.from(v, 'latin1') : v)))
  const header = Buffer.alloc(4)
  header[0] = type
  header.writeUInt16BE(value.length, 2)
  return Buffer.concat([header, value])
}

function rqBody(...items: Buffer[]): Buffer {
  const fixed = Buffer.alloc(68)
  fixed.writeUInt16BE(1, 0)
  fixed.write('  RADMESH       ', 4, 'latin1')
  fixed.write('MODALITY\0\0\0\0\0\0\0\0', 20, 'latin1')
  return Buffer.concat([fixed, ...items])
}

const maxLength = (value: number): Buffer => {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32BE(value)
  return item(0x51, bytes)
}
const appContext = item(0x10, '1.2.840.10008.3.1.1.1')
const verification = item(
  0x20,
  Buffer.from([1, 0, 0, 0]),
  item(0x30, '1.2.840.10008.1.1'),
  item(0x40, '1.2.840.10008.1.2')
)
const userInfo = item(0x50, maxLength(0), item(0x52, '1.2.3'))

test('A-ASSOCIATE-RQ: padding, and items it does not negotiate, are taken gracefully', () => {
  const rq = decodeAssociateRq(
    rqBody(
      item(0x10, '1.2.840.10008.3.1.1.1\0'),
      item(
        0x20,
        Buffer.from([7, 0, 0, 0]),
        item(0x30, '1.2.840.10008.5.1.4.1.1.2\0'),
        item(0x40, '1.2.840.10008.1.2.1\0'),
        item(0x40, '1.2.840.10008.1.2')
      ),
      item(0x60, 'an item type nobody defined'),
      item(
        0x50,
        maxLength(32_768),
        item(0x52, '1.2.3.4\0'),
        item(0x53, Buffer.from([0, 5, 0, 5])), // asynchronous operations window
        item(0x54, Buffer.from([0, 25]), '1.2.840.10008.5.1.4.1.1.2', Buffer.from([1, 1])), // role selection
        item(0x55, 'SOME_SCU_1 '),
        item(0x56, Buffer.from([0, 25]), '1.2.840.10008.5.1.4.1.1.2', Buffer.from([1])), // extended negotiation
        item(0x58, Buffer.from([1, 0, 0, 4]), 'user', Buffer.from([0, 0]))
      ) // user identity
    )
  )
  assert.is(rq.calledAeTitle, 'RADMESH')
  assert.is(rq.callingAeTitle, 'MODALITY')
  assert.is(rq.applicationContext, '1.2.840.10008.3.1.1.1')
  assert.equal(rq.presentationContexts, [
    {
      id: 7,
      abstractSyntax: '1.2.840.10008.5.1.4.1.1.2',
      transferSyntaxes: ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2']
    }
  ])
  assert.is(rq.maxPduLength, 32_768)
  assert.is(rq.implementationClassUid, '1.2.3.4')
  assert.is(rq.implementationVersionName, 'SOME_SCU_1')
})

test('A-ASSOCIATE-RQ: malformed requests raise DicomProtocolError', () => {
  assert.ok(decodeAssociateRq(rqBody(appContext, verification, userInfo)), 'the well-formed base')
  const cases: Array<[what: string, body: Buffer, problem: DicomProtocolProblem]> = [
    ['shorter than its fixed fields', rqBody().subarray(0, 67), 'truncated'],
    [
      'an item header cut short',
      Buffer.concat([rqBody(appContext, verification, userInfo), Buffer.from([0x50, 0])]),
      'truncated'
    ],
    ['an item longer than the PDU', rqBody(appContext, verification, userInfo).subarray(0, -1), 'truncated'],
    ['no application context', rqBody(verification, userInfo), 'bad-item'],
    ['two application contexts', rqBody(appContext, appContext, verification, userInfo), 'bad-item'],
    ['no user information', rqBody(appContext, verification), 'bad-item'],
    ['no presentation context', rqBody(appContext, userInfo), 'bad-item'],
    [
      'an even presentation context id',
      rqBody(appContext, item(0x20, Buffer.from([2, 0, 0, 0]), item(0x30, '1.2.840.10008.1.1')), userInfo),
      'bad-item'
    ],
    ['a presentation context id twice', rqBody(appContext, verification, verification, userInfo), 'bad-item'],
    [
      'a presentation context without abstract syntax',
      rqBody(appContext, item(0x20, Buffer.from([1, 0, 0, 0]), item(0x40, '1.2.840.10008.1.2')), userInfo),
      'bad-item'
    ],
    [
      'a presentation context of 3 bytes',
      rqBody(appContext, item(0x20, Buffer.from([1, 0, 0])), userInfo),
      'truncated'
    ],
    [
      'a maximum length item of 3 bytes',
      rqBody(appContext, verification, item(0x50, item(0x51, Buffer.from([0, 0, 1])))),
      'bad-item'
    ],
    [
      'a sub-item overrunning its presentation context',
      rqBody(appContext, item(0x20, Buffer.from([1, 0, 0, 0, 0x30, 0, 0, 9]), '1.2'), userInfo),
      'truncated'
    ]
  ]
  for (const [what, body, problem] of cases) throwsProblem(() => decodeAssociateRq(body), problem, what)
})

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
