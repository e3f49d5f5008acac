/**
 * The SCP's Upper Layer and DIMSE behaviour where DCMTK's tools do not go: hand-made associations (built with
 * the codecs of node/dicom/dimse) that negotiate odd things, cut data sets into many PDVs, send before they
 * have their answer, ask for services radmesh does not offer, or break the protocol.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type Command, decodeCommand, encodeCommand, NO_DATA_SET } from '../../node/dicom/dimse/command.ts'
import {
  type AssociateRq,
  decodeAbort,
  decodeAssociateAc,
  decodeAssociateRj,
  encodeAssociateRq,
  encodePDataTf,
  encodeReleaseRq,
  PDU_TYPE,
  PDV_COMMAND,
  PDV_LAST,
  PduReader
} from '../../node/dicom/dimse/pdu.ts'
import type { DicomScp } from '../../node/dicom/scp.ts'
import { RecordingScp } from '../helpers/recording-scp.ts'

const AE_TITLE = 'RADMESH'
const CT = '1.2.840.10008.5.1.4.1.1.2'
const MR = '1.2.840.10008.5.1.4.1.1.4'
const VERIFICATION = '1.2.840.10008.1.1'
const EXPLICIT_LE = '1.2.840.10008.1.2.1'
const IMPLICIT_LE = '1.2.840.10008.1.2'

const fixture = new RecordingScp()
const { received, logLines } = fixture
let scp: DicomScp

test.before(async () => {
  scp = await fixture.start(AE_TITLE)
})

test.after(async () => {
  await scp.stop()
})

type Reply = { pdu: number; body: Buffer } | { contextId: number; command: Command }

/** A connection speaking PDUs by hand; replies are framed by the same PduReader the SCP uses. */
class Peer {
  readonly socket: Socket
  readonly replies: Reply[] = []
  /** The length field of every P-DATA-TF the SCP sent. */
  readonly pDataLengths: number[] = []
  closed = false
  #waiters: Array<() => void> = []
  #command: Buffer[] = []

  constructor(socket: Socket) {
    this.socket = socket
    const reader = new PduReader(
      {
        pduHeader: (type, length) => {
          if (type === PDU_TYPE.pDataTf) this.pDataLengths.push(length)
        },
        pdu: (type, body) => {
          this.#push({ pdu: type, body: Buffer.from(body) })
        },
        pdv: (contextId, control, part, end) => {
          assert.ok((control & PDV_COMMAND) !== 0, 'the SCP sends commands only')
          this.#command.push(part)
          if (!end || (control & PDV_LAST) === 0) return
          this.#push({ contextId, command: decodeCommand(Buffer.concat(this.#command)) })
          this.#command = []
        }
      },
      { maxPDataLength: 1 << 20, maxOtherLength: 1 << 16 }
    )
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk)
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      this.#wake()
    })
  }

  static async open(): Promise<Peer> {
    const socket = connect(scp.port, '127.0.0.1')
    await once(socket, 'connect')
    return new Peer(socket)
  }

  #push(reply: Reply): void {
    this.replies.push(reply)
    this.#wake()
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter()
  }

  /** Waits until `count` replies came (or the connection closed), for 2 s at most. */
  async until(count: number): Promise<Reply[]> {
    const deadline = Date.now() + 2_000
    while (this.replies.length < count && !this.closed && Date.now() < deadline) {
      await new Promise<void>(resolve => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 50)
      })
    }
    return this.replies
  }

  async untilClosed(): Promise<void> {
    const deadline = Date.now() + 3_000
    while (!this.closed && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
    assert.ok(this.closed, 'the SCP closed the connection')
  }

  send(...chunks: Buffer[]): void {
    this.socket.write(Buffer.concat(chunks))
  }
}

function rq(overrides: Partial<AssociateRq> = {}): Buffer {
  return encodeAssociateRq({
    protocolVersion: 1,
    calledAeTitle: AE_TITLE,
    callingAeTitle: 'HANDMADE',
    applicationContext: '1.2.840.10008.3.1.1.1',
    presentationContexts: [
      { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] },
      { id: 3, abstractSyntax: CT, transferSyntaxes: ['1.2.840.10008.1.2.4.100', EXPLICIT_LE, IMPLICIT_LE] }
    ],
    maxPduLength: 16_384,
    implementationClassUid: '1.2.3.4',
    ...overrides
  })
}

/** Opens an association and checks it was accepted. */
async function associate(overrides: Partial<AssociateRq> = {}): Promise<Peer> {
  const peer = await Peer.open()
  peer.send(rq(overrides))
  const [reply] = await peer.until(1)
  assert.ok(reply !== undefined && 'pdu' in reply && reply.pdu === PDU_TYPE.associateAc, 'A-ASSOCIATE-AC')
  peer.replies.length = 0
  return peer
}

const echoRq = (messageId: number): Command => ({
  affectedSopClassUid: VERIFICATION,
  commandField: 0x0030,
  messageId,
  commandDataSetType: NO_DATA_SET
})
const storeRq = (messageId: number, instance: string, sopClass = CT): Command => ({
  affectedSopClassUid: sopClass,
  commandField: 0x0001,
  messageId,
  priority: 0,
  commandDataSetType: 0x0000,
  affectedSopInstanceUid: instance
})
const command = (contextId: number, value: Command, maxPduLength = 0): Buffer =>
  encodePDataTf(contextId, true, encodeCommand(value), maxPduLength)
const data = (contextId: number, value: Buffer, maxPduLength = 0): Buffer =>
  encodePDataTf(contextId, false, value, maxPduLength)

async function release(peer: Peer): Promise<void> {
  const before = peer.replies.length
  peer.send(encodeReleaseRq())
  const replies = await peer.until(before + 1)
  const last = replies.at(-1)
  assert.ok(last !== undefined && 'pdu' in last && last.pdu === PDU_TYPE.releaseRp, 'A-RELEASE-RP')
  await peer.untilClosed()
}

function responses(peer: Peer): Command[] {
  return peer.replies.flatMap(reply => ('command' in reply ? [reply.command] : []))
}

test('A-ASSOCIATE-AC: each context answered in order, our implementation and a 1 MiB maximum PDU', async () => {
  const peer = await Peer.open()
  peer.send(
    rq({
      presentationContexts: [
        { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] },
        { id: 3, abstractSyntax: CT, transferSyntaxes: ['1.2.840.10008.1.2.4.100', EXPLICIT_LE, IMPLICIT_LE] },
        // a query/retrieve model
        { id: 5, abstractSyntax: '1.2.840.10008.5.1.4.1.2.1.1', transferSyntaxes: [IMPLICIT_LE] },
        { id: 7, abstractSyntax: MR, transferSyntaxes: ['1.2.840.10008.1.2.4.100'] }, // MPEG2 only
        // a private class
        { id: 9, abstractSyntax: '1.2.826.0.1.3680043.2.1', transferSyntaxes: ['1.2.840.10008.1.2.5', IMPLICIT_LE] }
      ]
    })
  )
  const [reply] = await peer.until(1)
  assert.ok(reply !== undefined && 'pdu' in reply)
  const ac = decodeAssociateAc(reply.body)
  assert.equal(
    ac.presentationContexts.map(({ id, result, transferSyntax }) => [id, result, result === 0 ? transferSyntax : '']),
    [
      [1, 0, IMPLICIT_LE],
      [3, 0, EXPLICIT_LE],
      [5, 3, ''],
      [7, 4, ''],
      [9, 0, '1.2.840.10008.1.2.5']
    ]
  )
  assert.is(ac.calledAeTitle, AE_TITLE)
  assert.is(ac.callingAeTitle, 'HANDMADE')
  assert.is(ac.applicationContext, '1.2.840.10008.3.1.1.1')
  assert.is(ac.maxPduLength, 1_048_576)
  assert.is(ac.implementationClassUid, '2.25.238471238946325718394672183946721839')
  assert.is(ac.implementationVersionName, 'RADMESH_0_1')
  await release(peer)
})

test('A-ASSOCIATE-RJ: application context and protocol version', async () => {
  for (const [overrides, source, reason] of [
    [{ applicationContext: '1.2.3' }, 1, 2],
    [{ protocolVersion: 2 }, 2, 2]
  ] as Array<[Partial<AssociateRq>, number, number]>) {
    const peer = await Peer.open()
    peer.send(rq(overrides))
    const [reply] = await peer.until(1)
    assert.ok(reply !== undefined && 'pdu' in reply && reply.pdu === PDU_TYPE.associateRj, JSON.stringify(overrides))
    assert.equal(decodeAssociateRj(reply.body), { result: 1, source, reason })
    await peer.untilClosed()
  }
})

test("responses fit the SCU's maximum PDU; unsupported services are answered 0x0211", async () => {
  const peer = await associate({
    maxPduLength: 20,
    presentationContexts: [
      { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] },
      { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.1.88.11', transferSyntaxes: [IMPLICIT_LE] }
    ]
  })
  peer.send(command(1, echoRq(1), 20))
  // A C-FIND with its identifier, and an N-GET without data set: both refused, each on its own context.
  peer.send(
    command(3, {
      affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.88.11',
      commandField: 0x0020,
      messageId: 2,
      priority: 0,
      commandDataSetType: 0x0000
    }),
    data(3, Buffer.from([8, 0, 0x52, 0, 0, 0, 0, 0]))
  )
  peer.send(
    command(3, {
      requestedSopClassUid: '1.2.840.10008.5.1.4.1.1.88.11',
      commandField: 0x0110,
      messageId: 3,
      commandDataSetType: NO_DATA_SET,
      requestedSopInstanceUid: '1.2.3'
    })
  )
  await peer.until(3)
  assert.equal(responses(peer), [
    {
      affectedSopClassUid: VERIFICATION,
      commandField: 0x8030,
      messageIdBeingRespondedTo: 1,
      commandDataSetType: NO_DATA_SET,
      status: 0
    },
    {
      affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.88.11',
      commandField: 0x8020,
      messageIdBeingRespondedTo: 2,
      commandDataSetType: NO_DATA_SET,
      status: 0x0211
    },
    {
      affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.88.11',
      commandField: 0x8110,
      messageIdBeingRespondedTo: 3,
      commandDataSetType: NO_DATA_SET,
      status: 0x0211,
      affectedSopInstanceUid: '1.2.3'
    }
  ])
  assert.ok(peer.pDataLengths.length > 3 * 5, 'responses were fragmented')
  assert.ok(
    peer.pDataLengths.every(length => length <= 20),
    `P-DATA-TF lengths ${peer.pDataLengths.join(' ')}`
  )
  assert.ok(peer.replies.every(reply => ('command' in reply ? [1, 3].includes(reply.contextId) : true)))
  assert.is(
    peer.replies.filter(reply => 'command' in reply && reply.contextId === 1).length,
    1,
    'the echo answered on its context'
  )
  await release(peer)
})

test('C-STORE: a data set over many PDVs and PDUs arrives whole; stores sent ahead run one at a time', async () => {
  const datasets = [0, 1, 2, 3].map(i =>
    Buffer.from(Array.from({ length: 50_000 + i * 7 }, (_, j) => (i * 31 + j) % 256))
  )
  let running = 0
  let most = 0
  fixture.answer = async request => {
    running++
    most = Math.max(most, running)
    await new Promise(resolve => setTimeout(resolve, 20))
    running--
    return request.sopInstanceUid === '1.2.3.2' ? { status: 0xa900, errorComment: 'no' } : { status: 0 }
  }
  received.length = 0
  const peer = await associate()
  // All four and the release at once, the data sets cut into PDUs of 1000 bytes, some PDVs split across TCP writes.
  const stream = Buffer.concat([
    ...datasets.flatMap((dataset, i) => [command(3, storeRq(10 + i, `1.2.3.${i}`), 1000), data(3, dataset, 1000)]),
    encodeReleaseRq()
  ])
  for (let offset = 0; offset < stream.length; offset += 4099) peer.send(stream.subarray(offset, offset + 4099))
  await peer.until(5)
  const last = peer.replies.at(-1)
  assert.ok(
    last !== undefined && 'pdu' in last && last.pdu === PDU_TYPE.releaseRp,
    'the release answered after the stores'
  )
  await peer.untilClosed()
  assert.equal(
    responses(peer).map(response => [
      response.commandField,
      response.messageIdBeingRespondedTo,
      response.status,
      response.affectedSopInstanceUid,
      response.errorComment
    ]),
    [
      [0x8001, 10, 0, '1.2.3.0', undefined],
      [0x8001, 11, 0, '1.2.3.1', undefined],
      [0x8001, 12, 0xa900, '1.2.3.2', 'no'],
      [0x8001, 13, 0, '1.2.3.3', undefined]
    ]
  )
  assert.is(most, 1, 'one onStore at a time')
  assert.equal(
    received.map(request => request.sopInstanceUid),
    ['1.2.3.0', '1.2.3.1', '1.2.3.2', '1.2.3.3']
  )
  received.forEach((request, i) => {
    assert.ok(Buffer.from(request.dataset).equals(datasets[i] as Buffer), `data set ${i}`)
    assert.is(request.transferSyntaxUid, EXPLICIT_LE)
    assert.is(request.callingAeTitle, 'HANDMADE')
    assert.is(request.sopClassUid, CT)
  })
  fixture.answer = async () => ({ status: 0 })
})

test('C-STORE: the wrong SOP class for the context, an onStore out of resources, a bad status', async () => {
  const peer = await associate()
  const dataset = Buffer.alloc(100, 1)
  received.length = 0
  peer.send(command(3, storeRq(1, '1.2.4.1', MR)), data(3, dataset))
  await peer.until(1)
  fixture.answer = async () => {
    throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
  }
  peer.send(command(3, storeRq(2, '1.2.4.2')), data(3, dataset))
  await peer.until(2)
  fixture.answer = async () => ({ status: 0x1_0000 })
  peer.send(command(3, storeRq(3, '1.2.4.3')), data(3, dataset))
  await peer.until(3)
  fixture.answer = async () => ({ status: 0 })
  assert.equal(
    responses(peer).map(response => [response.status, response.errorComment]),
    [
      [0x0122, 'presentation context not accepted for this SOP class'],
      [0xa700, 'no space left on device'],
      [0xc000, 'onStore answered an invalid status 65536']
    ]
  )
  assert.equal(
    received.map(request => request.sopInstanceUid),
    ['1.2.4.2', '1.2.4.3'],
    'the wrong SOP class never reached onStore'
  )
  await release(peer)
})

test('protocol errors inside an association end it with an A-ABORT and one warning', async () => {
  const cases: Array<[what: string, bytes: () => Buffer]> = [
    ['a PDV on a context that was not proposed', () => command(5, echoRq(1))],
    ['a data set PDV with no command', () => data(3, Buffer.alloc(10))],
    ['a second A-ASSOCIATE-RQ', () => rq()],
    ['an A-ASSOCIATE-AC from the SCU', () => Buffer.from([2, 0, 0, 0, 0, 0])],
    ['a command field nobody defined', () => command(1, { ...echoRq(1), commandField: 0x0777 })],
    ['a P-DATA-TF over the maximum we announced', () => Buffer.from([4, 0, 0, 0x10, 0, 7])]
  ]
  for (const [what, bytes] of cases) {
    const peer = await associate()
    const warnings = logLines.filter(line => line['level'] === 40).length
    peer.send(bytes())
    await peer.untilClosed()
    const last = peer.replies.at(-1)
    assert.ok(last !== undefined && 'pdu' in last && last.pdu === PDU_TYPE.abort, `${what}: A-ABORT`)
    assert.ok([0, 2].includes(decodeAbort(last.body).source), what)
    const added = logLines.filter(line => line['level'] === 40).slice(warnings)
    assert.is(added.length, 1, `${what}: ${JSON.stringify(added)}`)
  }
})

test('an A-ABORT from the SCU closes the association; an SCU that vanishes is a warning', async () => {
  const aborting = await associate()
  aborting.send(Buffer.from([7, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
  await aborting.untilClosed()
  assert.ok(logLines.some(line => line['msg'] === 'DICOM association aborted by the peer'))

  const vanishing = await associate()
  const warnings = logLines.filter(line => line['level'] === 40).length
  vanishing.socket.end()
  await vanishing.untilClosed()
  assert.ok(
    logLines
      .filter(line => line['level'] === 40)
      .slice(warnings)
      .some(line => /without releasing/.test(String(line['reason'])))
  )
})

test.run()
