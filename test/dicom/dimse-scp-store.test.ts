/**
 * C-STORE through the SCP from hand-made associations: data sets cut into many PDVs and PDUs, stores sent
 * ahead of their answers, the wrong SOP class for a context, and onStore failing or answering a bad status.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeReleaseRq, PDU_TYPE } from '../../node/dicom/dimse/pdu.ts'
import type { DicomScp } from '../../node/dicom/scp.ts'
import { RecordingScp } from '../helpers/recording-scp.ts'
import {
  AE_TITLE,
  associate as associateOn,
  command,
  CT,
  data,
  EXPLICIT_LE,
  MR,
  type Peer,
  release,
  responses,
  storeRq
} from './dimse-scp-helpers.ts'

const fixture = new RecordingScp()
const { received } = fixture
let scp: DicomScp

test.before(async () => {
  scp = await fixture.start(AE_TITLE)
})

test.after(async () => {
  await scp.stop()
})

const associate = async (): Promise<Peer> => await associateOn(scp.port)

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
test.run()
