/**
 * The SCP's Upper Layer and DIMSE behaviour where DCMTK's tools do not go: hand-made associations (built with
 * the codecs of node/dicom/dimse) that negotiate odd things, ask for services radmesh does not offer, or break
 * the protocol. (C-STORE over such associations: dimse-scp-store.test.ts.)
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { NO_DATA_SET } from '../../node/dicom/dimse/command.ts'
import {
  type AssociateRq,
  decodeAbort,
  decodeAssociateAc,
  decodeAssociateRj,
  PDU_TYPE
} from '../../node/dicom/dimse/pdu.ts'
import type { DicomScp } from '../../node/dicom/scp.ts'
import { RecordingScp } from '../helpers/recording-scp.ts'
import {
  AE_TITLE,
  associate as associateOn,
  command,
  CT,
  data,
  echoRq,
  EXPLICIT_LE,
  IMPLICIT_LE,
  MR,
  Peer,
  release,
  responses,
  rq,
  VERIFICATION
} from './dimse-scp-helpers.ts'

const fixture = new RecordingScp()
const { logLines } = fixture
let scp: DicomScp

test.before(async () => {
  scp = await fixture.start(AE_TITLE)
})

test.after(async () => {
  await scp.stop()
})

const open = async (): Promise<Peer> => await Peer.open(scp.port)
const associate = async (overrides: Partial<AssociateRq> = {}): Promise<Peer> => await associateOn(scp.port, overrides)

test('A-ASSOCIATE-AC: each context answered in order, our implementation and a 1 MiB maximum PDU', async () => {
  const peer = await open()
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
    const peer = await open()
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
