/**
 * The Query/Retrieve SCU against radmesh's own SCP in this process, for what a real PACS does not do on demand:
 * many matches arriving in one read are all taken, a query past the SCU's bound is cancelled (C-CANCEL) and
 * fails saying so, a refusal's status and comment reach the caller, and a C-GET's instances come back on the
 * association in the syntax they were stored in.
 */
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type Identifier, keyText } from '../../node/dicom/identifier.ts'
import { type DicomScp, startDicomScp } from '../../node/dicom/scp.ts'
import { collectDataset } from '../../node/dicom/scp/operations.ts'
import type { QueryRetrieveProvider, RetrieveInstance } from '../../node/dicom/scp/query-retrieve.ts'
import { findStudyRoot, getStudyRoot, keysOf } from '../../node/dicom/scu/query-retrieve.ts'
import { writeDataset } from '../../node/dicom/writer.ts'

const MATCHES = 40
const CT = '1.2.840.10008.5.1.4.1.1.2'
const EXPLICIT = '1.2.840.10008.1.2.1'
const dataset = writeDataset([{ tag: 0x00080018, vr: 'UI', value: '1.2.3.4.1' }], false)

const provider: QueryRetrieveProvider = {
  async find(request) {
    if (keyText(request.identifier, '00100020') === 'REFUSE') return { status: 0xa900, errorComment: 'not here' }
    return Array.from({ length: MATCHES }, (_, i): Identifier => {
      const answer: Identifier = new Map()
      answer.set('0020000D', { vr: 'UI', values: [`1.2.3.${i + 1}`] })
      return answer
    })
  },
  async retrieve() {
    const instance: RetrieveInstance = {
      studyUid: '1.2.3',
      seriesUid: '1.2.3.4',
      sopClassUid: CT,
      sopInstanceUid: '1.2.3.4.1',
      transferSyntaxUid: EXPLICIT,
      async *dataset() {
        yield dataset
      }
    }
    return [instance]
  },
  destination: () => undefined,
  async retrieved() {}
}

let scp: DicomScp
test.before(async () => {
  scp = await startDicomScp({
    port: 0,
    host: '127.0.0.1',
    aeTitle: 'OWNPACS',
    log: pino({ level: 'silent' }),
    onStore: async () => ({ status: 0 }),
    queryRetrieve: provider
  })
})
test.after(async () => {
  await scp.stop()
})

const peer = () => ({ aeTitle: 'OWNPACS', host: '127.0.0.1', port: scp.port })
const byPatient = (id: string) => keysOf({ '00100020': ['LO', id], '0020000D': ['UI', ''] })

test('every match is taken, however the responses arrive', async () => {
  const matches = await findStudyRoot(peer(), 'RADMESH', 'STUDY', byPatient('P1'))
  assert.equal(
    matches.map(m => keyText(m, '0020000D')),
    Array.from({ length: MATCHES }, (_, i) => `1.2.3.${i + 1}`)
  )
})

test('a query past the bound is cancelled and fails, saying how many it took', async () => {
  const error = (await findStudyRoot(peer(), 'RADMESH', 'STUDY', byPatient('P1'), 5).catch(e => e)) as Error
  assert.instance(error, Error)
  assert.match(error.message, /OWNPACS found more than 5 matches at STUDY level/)
})

test('a refusal reaches the caller with its status and comment', async () => {
  const error = (await findStudyRoot(peer(), 'RADMESH', 'STUDY', byPatient('REFUSE')).catch(e => e)) as Error
  assert.match(error.message, /OWNPACS answered the C-FIND with status 0xa900 \(not here\)/)
})

test('a C-GET brings the instance back on the association, in its stored syntax, byte for byte', async () => {
  const received: Array<{ syntax: string; bytes: Buffer }> = []
  const outcome = await getStudyRoot(
    peer(),
    'RADMESH',
    keysOf({ '00080052': ['CS', 'STUDY'], '0020000D': ['UI', '1.2.3'] }),
    {
      open: () => collectDataset(),
      store: async request => {
        received.push({ syntax: request.transferSyntaxUid, bytes: Buffer.from(request.dataset) })
        return { status: 0 }
      }
    }
  )
  assert.equal(outcome, { status: 0, completed: 1, failed: 0, warning: 0 })
  assert.equal(received, [{ syntax: EXPLICIT, bytes: Buffer.from(dataset) }])
})

test.run()
