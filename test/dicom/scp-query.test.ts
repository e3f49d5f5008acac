/**
 * The Query/Retrieve SCP in-process, from a raw SCU, on a stand-in provider: a C-MOVE sends to its destination
 * (another SCP here) with a Pending response after each sub-operation and stops at a C-CANCEL between two; an
 * identifier past its bound ends the association; without a provider, Query/Retrieve is refused at negotiation.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { pino } from 'pino'
import type { Command } from '../../node/dicom/dimse/command.ts'
import type { QueryRetrieveProvider, RetrieveInstance } from '../../node/dicom/scp.ts'
import { type DicomScp, startDicomScp } from '../../node/dicom/scp.ts'
import { writeDataset } from '../../node/dicom/writer.ts'
import { associateRq, commandPdu, dataPdu, EXPLICIT_LE, RawAssociation, type ScuEvent } from '../../scripts/fuzz/scu.ts'

const STUDY_MOVE = '1.2.840.10008.5.1.4.1.2.2.2'
const CT = '1.2.840.10008.5.1.4.1.1.2'
const log = pino({ level: 'silent' })

const scps: DicomScp[] = []
const stored: string[] = []

const instance = (n: number): RetrieveInstance => ({
  studyUid: '1.2',
  seriesUid: '1.2.3',
  sopClassUid: CT,
  sopInstanceUid: `1.2.3.${n}`,
  transferSyntaxUid: EXPLICIT_LE,
  dataset: async function* () {
    yield Buffer.from(`data set ${n}`)
  }
})

async function start(provider?: QueryRetrieveProvider): Promise<DicomScp> {
  const scp = await startDicomScp({
    port: 0,
    host: '127.0.0.1',
    aeTitle: 'RADMESH',
    log,
    onStore: async () => ({ status: 0 }),
    ...(provider === undefined ? {} : { queryRetrieve: provider })
  })
  scps.push(scp)
  return scp
}

test.after(async () => {
  await Promise.all(
    scps.map(async scp => {
      await scp.stop()
    })
  )
})

const move: Command = {
  affectedSopClassUid: STUDY_MOVE,
  commandField: 0x0021,
  messageId: 5,
  priority: 0,
  moveDestination: 'DEST',
  commandDataSetType: 0x0102
}
const identifier = writeDataset([
  { tag: 0x00080052, vr: 'CS', value: 'STUDY' },
  { tag: 0x0020000d, vr: 'UI', value: '1.2' }
])
const status = (event: ScuEvent): number | string =>
  event.type === 'command' ? (event.command.status ?? -1) : event.type

async function associate(port: number): Promise<RawAssociation> {
  const raw = await RawAssociation.connect(port)
  const answer = await raw.associate(
    associateRq('RADMESH', 'MOVER', [{ id: 1, abstractSyntax: STUDY_MOVE, transferSyntaxes: [EXPLICIT_LE] }])
  )
  assert.ok(answer.type === 'associate-ac' && answer.ac.presentationContexts[0]?.result === 0, JSON.stringify(answer))
  return raw
}

test('C-MOVE: Pending after each sub-operation; a C-CANCEL stops it between two (the rest remaining)', async () => {
  const destination = await startDicomScp({
    port: 0,
    host: '127.0.0.1',
    aeTitle: 'DEST',
    log,
    onStore: async request => {
      stored.push(request.sopInstanceUid)
      await new Promise(resolve => setTimeout(resolve, 150))
      return { status: 0 }
    }
  })
  scps.push(destination)
  const reports: unknown[] = []
  const scp = await start({
    find: async () => [],
    retrieve: async () => [1, 2, 3, 4, 5].map(instance),
    destination: ae => (ae === 'DEST' ? { aeTitle: 'DEST', host: '127.0.0.1', port: destination.port } : undefined),
    retrieved: async report => {
      reports.push([report.sent.length, report.failed.length])
    }
  })
  const raw = await associate(scp.port)
  await raw.send(commandPdu(1, move), dataPdu(1, identifier, true))
  const first = await raw.next(5_000)
  assert.is(status(first), 0xff00)
  assert.equal(
    first.type === 'command' && [first.command.remainingSubOperations, first.command.completedSubOperations],
    [4, 1]
  )
  await raw.send(commandPdu(1, { commandField: 0x0fff, messageIdBeingRespondedTo: 5, commandDataSetType: 0x0101 }))
  let final = await raw.next(5_000)
  while (status(final) === 0xff00) final = await raw.next(5_000)
  assert.is(status(final), 0xfe00)
  const counts = final.type === 'command' ? final.command : undefined
  assert.ok((counts?.remainingSubOperations ?? 0) >= 1, JSON.stringify(counts))
  assert.is((counts?.completedSubOperations ?? 0) + (counts?.remainingSubOperations ?? 0), 5)
  assert.is(stored.length, counts?.completedSubOperations)
  assert.equal(reports, [[stored.length, 0]], 'audited: what was sent, nothing failed')
  raw.destroy()
})

test('an identifier past 256 KiB ends the association with an A-ABORT', async () => {
  const scp = await start({
    find: async () => [],
    retrieve: async () => [],
    destination: () => undefined,
    retrieved: async () => {}
  })
  const raw = await associate(scp.port)
  await raw.send(commandPdu(1, move), dataPdu(1, Buffer.alloc(300_000), false))
  assert.is((await raw.next(5_000)).type, 'abort')
})

test('without a provider, Query/Retrieve contexts are refused at negotiation', async () => {
  const scp = await start()
  const raw = await RawAssociation.connect(scp.port)
  const answer = await raw.associate(
    associateRq('RADMESH', 'MOVER', [{ id: 1, abstractSyntax: STUDY_MOVE, transferSyntaxes: [EXPLICIT_LE] }])
  )
  assert.ok(answer.type === 'associate-ac')
  assert.is(answer.ac.presentationContexts[0]?.result, 3)
  raw.destroy()
})

test.run()
