/**
 * DIMSE command sets (PS3.7 6.3, E): what is encoded decodes to the same, with the padding and group length
 * PS3.7 asks for; unknown elements are skipped; a set whose group length, elements or structure are wrong
 * raises DicomProtocolError ('bad-command'), never another exception, whatever the bytes.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type Command, decodeCommand, encodeCommand, NO_DATA_SET } from '../../node/dicom/dimse/command.ts'
import { DicomProtocolError, type DicomProtocolProblem } from '../../node/dicom/dimse/errors.ts'

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

const STORE_RQ: Command = {
  affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.2',
  commandField: 0x0001,
  messageId: 7,
  priority: 0,
  commandDataSetType: 0x0000,
  affectedSopInstanceUid: '1.2.3.4.5.6.7.8.9'
}

test('DIMSE command sets: encode, then decode to the same; padding and group length as PS3.7 says', () => {
  assert.equal(decodeCommand(encodeCommand(STORE_RQ)), STORE_RQ)
  const response: Command = {
    affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.2',
    commandField: 0x8001,
    messageIdBeingRespondedTo: 7,
    commandDataSetType: NO_DATA_SET,
    status: 0xa900,
    errorComment: 'odd',
    affectedSopInstanceUid: '1.2.3.4.5.6.7.8.9'
  }
  const bytes = encodeCommand(response)
  assert.equal(decodeCommand(bytes), response)
  assert.is(bytes.readUInt32LE(8), bytes.length - 12, 'group length')
  // (0000,0002) UI: 25 characters, padded with NUL to 26.
  assert.is(bytes.readUInt32LE(12), 0x00020000)
  assert.is(bytes.readUInt32LE(16), 26)
  assert.is(bytes[20 + 25], 0)
  // (0000,0902) LO 'odd ' padded with a space; elements in tag order.
  const comment = bytes.indexOf(Buffer.from([0, 0, 0x02, 0x09]))
  assert.ok(comment > 0)
  assert.is(bytes.readUInt32LE(comment + 4), 4)
  assert.is(bytes.toString('latin1', comment + 8, comment + 12), 'odd ')
  const echo: Command = {
    affectedSopClassUid: '1.2.840.10008.1.1',
    commandField: 0x8030,
    messageIdBeingRespondedTo: 1,
    commandDataSetType: NO_DATA_SET,
    status: 0
  }
  assert.equal(decodeCommand(encodeCommand(echo)), echo)
  // What a peer sent comes back byte for byte, even where it breaks its VR; beyond Latin-1 nothing can be written.
  const odd: Command = { ...response, affectedSopInstanceUid: '1.2.\u00e9\u0001' }
  assert.equal(decodeCommand(encodeCommand(odd)), odd)
  assert.throws(() => encodeCommand({ ...response, errorComment: '\u4e00' }), RangeError)
})

test('C-MOVE and C-GET elements: destination, sub-operation counts, move originator, round trip', () => {
  const move: Command = {
    affectedSopClassUid: '1.2.840.10008.5.1.4.1.2.2.2',
    commandField: 0x0021,
    messageId: 3,
    moveDestination: 'STORESCP',
    priority: 0,
    commandDataSetType: 0x0102
  }
  assert.equal(decodeCommand(encodeCommand(move)), move)
  const pending: Command = {
    affectedSopClassUid: '1.2.840.10008.5.1.4.1.2.2.2',
    commandField: 0x8021,
    messageIdBeingRespondedTo: 3,
    commandDataSetType: NO_DATA_SET,
    status: 0xff00,
    remainingSubOperations: 2,
    completedSubOperations: 1,
    failedSubOperations: 0,
    warningSubOperations: 0
  }
  assert.equal(decodeCommand(encodeCommand(pending)), pending)
  const subStore: Command = {
    affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.2',
    commandField: 0x0001,
    messageId: 1,
    priority: 0,
    commandDataSetType: 0x0102,
    affectedSopInstanceUid: '1.2.3',
    moveOriginatorAeTitle: 'MOVESCU',
    moveOriginatorMessageId: 3
  }
  assert.equal(decodeCommand(encodeCommand(subStore)), subStore)
})

test('a command UID of 60,000 spaces before its last character is decoded in linear time', () => {
  const uid = `${' '.repeat(60_000)}1`
  const started = performance.now()
  assert.is(decodeCommand(encodeCommand({ ...STORE_RQ, affectedSopInstanceUid: uid })).affectedSopInstanceUid, uid)
  const elapsed = performance.now() - started
  assert.ok(elapsed < 100, `decoded in ${elapsed.toFixed(0)} ms`)
})

/** An implicit VR little endian element of group 0000. */
function element(number: number, value: Buffer): Buffer {
  const header = Buffer.alloc(8)
  header.writeUInt16LE(0, 0)
  header.writeUInt16LE(number, 2)
  header.writeUInt32LE(value.length, 4)
  return Buffer.concat([header, value])
}
const us = (value: number): Buffer => {
  const bytes = Buffer.alloc(2)
  bytes.writeUInt16LE(value)
  return bytes
}
/** An element of undefined length, and the Sequence Delimitation Item that would close it. */
function undefinedLength(number: number): Buffer {
  const header = element(number, Buffer.alloc(0))
  header.writeUInt32LE(0xffffffff, 4)
  return header
}
const delimiter = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0])
function commandSet(elements: Buffer[], groupLengthDelta = 0): Buffer {
  const rest = Buffer.concat(elements)
  const groupLength = Buffer.alloc(4)
  groupLength.writeUInt32LE(rest.length + groupLengthDelta)
  return Buffer.concat([element(0x0000, groupLength), rest])
}

test('DIMSE command sets: unknown elements are skipped; malformed sets raise DicomProtocolError', () => {
  const echo = [
    element(0x0002, Buffer.from('1.2.840.10008.1.1\0')),
    element(0x0100, us(0x30)),
    element(0x0110, us(9)),
    element(0x0800, us(NO_DATA_SET))
  ]
  const withExtras = commandSet([...echo, element(0x0903, Buffer.from('ID')), element(0x4000, Buffer.from('retired'))])
  assert.equal(decodeCommand(withExtras), {
    affectedSopClassUid: '1.2.840.10008.1.1',
    commandField: 0x30,
    messageId: 9,
    commandDataSetType: NO_DATA_SET
  })

  const cases: Array<[what: string, bytes: Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['11 bytes', commandSet(echo).subarray(0, 11)],
    ['a group length that is too long', commandSet(echo, 2)],
    ['a group length that is too short', commandSet(echo, -2)],
    ['a group length of 4 GiB', commandSet(echo, 0xffffffff - Buffer.concat(echo).length)],
    ['no group length first', Buffer.concat(echo)],
    ['a group length element of 2 bytes', Buffer.concat([element(0x0000, us(0)), ...echo])],
    ['garbage (all 0xff)', Buffer.alloc(32, 0xff)],
    ['an element outside group 0000', commandSet([...echo, Buffer.from([8, 0, 0x18, 0, 0, 0, 0, 0])])],
    ['an element overrunning the set', commandSet([...echo, Buffer.from([0, 0, 0, 0x10, 8, 0, 0, 0, 1, 2])])],
    ['an element header cut short', commandSet([...echo, Buffer.from([0, 0, 0, 0x10])])],
    ['a US of 4 bytes', commandSet([element(0x0100, Buffer.alloc(4)), element(0x0800, us(NO_DATA_SET))])],
    ['no CommandField', commandSet([element(0x0110, us(1)), element(0x0800, us(NO_DATA_SET))])],
    ['no CommandDataSetType', commandSet([element(0x0100, us(0x30)), element(0x0110, us(1))])],
    [
      'an element of undefined length, closed by a delimiter',
      commandSet([...echo, undefinedLength(0x1234), delimiter])
    ],
    ['an item where an element should be', commandSet([...echo, Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0, 0, 0, 0])])]
  ]
  for (const [what, bytes] of cases) throwsProblem(() => decodeCommand(bytes), 'bad-command', what)
})

test('random and mutated command sets: DicomProtocolError or a result, never another exception', () => {
  const next = random(42)
  const commandBytes = encodeCommand(STORE_RQ)
  for (let round = 0; round < 5_000; round++) {
    const copy = Buffer.from(commandBytes)
    for (let i = 0, n = 1 + Math.floor(next() * 4); i < n; i++)
      copy[Math.floor(next() * copy.length)] = Math.floor(next() * 256)
    const bytes = next() < 0.2 ? copy.subarray(0, Math.floor(next() * copy.length)) : copy
    try {
      decodeCommand(bytes)
    } catch (error) {
      if (!(error instanceof DicomProtocolError)) assert.unreachable(`round ${round}: ${String(error)}`)
      assert.is((error as DicomProtocolError).problem, 'bad-command')
    }
  }
})

test.run()
