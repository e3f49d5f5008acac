/**
 * The node as an SCU (a C-MOVE's sub-operations), against its own SCP in-process: the association proposed,
 * the contexts the peer accepts, a data set streamed in pieces arriving byte for byte, the response; a
 * context the peer refuses is not there to send on; a rejection or a closed port fails with what happened.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { pino } from 'pino'
import { TRANSFER_SYNTAX } from '../../node/dicom/dictionary.ts'
import { type DicomScp, type StoreRequest, startDicomScp } from '../../node/dicom/scp.ts'
import { ScuAssociation } from '../../node/dicom/scu/association.ts'
import { freePort } from '../../scripts/lib/ports.ts'

const CT = '1.2.840.10008.5.1.4.1.1.2'
const MR = '1.2.840.10008.5.1.4.1.1.4'
const MPEG2 = '1.2.840.10008.1.2.4.100'

const received: Array<StoreRequest<Uint8Array>> = []
let scp: DicomScp

test.before(async () => {
  scp = await startDicomScp({
    port: 0,
    host: '127.0.0.1',
    aeTitle: 'DEST',
    log: pino({ level: 'silent' }),
    onStore: async request => {
      received.push(request)
      return { status: 0 }
    }
  })
})

test.after(async () => {
  await scp.stop()
})

const open = (calledAeTitle = 'DEST') =>
  ScuAssociation.open({
    host: '127.0.0.1',
    port: scp.port,
    calledAeTitle,
    callingAeTitle: 'RADMESH',
    contexts: [
      { id: 1, abstractSyntax: CT, transferSyntaxes: [TRANSFER_SYNTAX.explicitLittle] },
      { id: 3, abstractSyntax: MR, transferSyntaxes: [MPEG2] }
    ]
  })

test('a C-STORE in pieces arrives byte for byte on the context accepted; the refused one is not offered', async () => {
  const scu = await open()
  assert.equal(
    scu.accepted.map(c => [c.id, c.abstractSyntax, c.transferSyntax]),
    [[1, CT, TRANSFER_SYNTAX.explicitLittle]]
  )
  assert.is(scu.contextFor(MR, MPEG2), undefined)
  const context = scu.contextFor(CT, TRANSFER_SYNTAX.explicitLittle)
  assert.ok(context !== undefined)
  const bytes = Buffer.alloc(3_000_000)
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff
  const pieces = async function* () {
    for (let at = 0; at < bytes.length; at += 700_001) yield bytes.subarray(at, at + 700_001)
  }
  const response = await scu.store(
    context,
    {
      affectedSopClassUid: CT,
      affectedSopInstanceUid: '1.2.3.4',
      priority: 0,
      moveOriginatorAeTitle: 'MOVESCU',
      moveOriginatorMessageId: 9
    },
    pieces()
  )
  assert.is(response.status, 0)
  assert.is(response.affectedSopInstanceUid, '1.2.3.4')
  await scu.release()
  assert.is(received.length, 1)
  assert.is(received[0]?.sopInstanceUid, '1.2.3.4')
  assert.ok(Buffer.from(received[0]?.dataset ?? []).equals(bytes))
})

test('a rejection, and a port where no one listens, fail the open with what happened', async () => {
  try {
    await open('SOMEONE')
    assert.unreachable('associated with the wrong AE title')
  } catch (error) {
    assert.match((error as Error).message, /association rejected \(result 1, source 1, reason 7\)/)
  }
  const port = await freePort()
  try {
    await ScuAssociation.open({ host: '127.0.0.1', port, calledAeTitle: 'X', callingAeTitle: 'Y', contexts: [] })
    assert.unreachable('connected to nothing')
  } catch (error) {
    assert.match((error as Error).message, /ECONNREFUSED/)
  }
})

test.run()
