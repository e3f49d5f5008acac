/**
 * The DICOM Upper Layer codecs of the SCP, without a network: what is encoded decodes to the same, PDUs and
 * PDVs are framed the same however the bytes are cut, and malformed input (truncated PDUs, lengths that
 * contradict each other, a PDV longer than its PDU) raises DicomProtocolError with a stable problem, never
 * another exception, never a hang. Association PDUs here; P-DATA-TF and PDU framing in
 * dimse-pdu-framing.test.ts; command sets in dimse-command.test.ts.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DicomProtocolError, type DicomProtocolProblem } from '../../node/dicom/dimse/errors.ts'
import {
  type AssociateAc,
  decodeAbort,
  decodeAssociateAc,
  decodeAssociateRj,
  decodeAssociateRq,
  encodeAbort,
  encodeAssociateAc,
  encodeAssociateRj,
  encodeAssociateRq,
  encodeReleaseRp,
  encodeReleaseRq,
  PDU_TYPE
} from '../../node/dicom/dimse/pdu.ts'
import { bodyOf, RQ, throwsProblem } from './dimse-pdu-helpers.ts'

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

test.run()
