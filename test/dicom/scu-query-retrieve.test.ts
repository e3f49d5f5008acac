/**
 * The node as a Query/Retrieve SCU against a real PACS (Debian's Orthanc): C-FIND at study and series level by
 * patient, C-GET of a study whose instances come back on the same association byte for byte, C-MOVE to a
 * destination the PACS knows (an SCP in this process), and the failures a caller must see: a PACS that is
 * not listening, and a move to an AE title it does not know (Orthanc answers 0xC000, the standard 0xA801).
 */
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { keyText } from '../../node/dicom/identifier.ts'
import { type DicomScp, type StoreRequest, startDicomScp } from '../../node/dicom/scp.ts'
import { collectDataset } from '../../node/dicom/scp/operations.ts'
import { findStudyRoot, getStudyRoot, keysOf, moveStudyRoot } from '../../node/dicom/scu/query-retrieve.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { type OrthancServer, startOrthanc } from '../../scripts/lib/orthanc.ts'
import { freePort } from '../../scripts/lib/ports.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

let orthanc: OrthancServer
let destination: DicomScp
const moved: Array<StoreRequest<Uint8Array>> = []
/** SHA-256 of each data set (after the File Meta Information) as uploaded */
const uploaded = new Set<string>()
const studies: string[] = []

/** The data set of a Part 10 file: what follows the File Meta Information group. */
function datasetOf(file: Buffer): Buffer {
  const metaLength = file.readUInt32LE(128 + 4 + 8)
  return file.subarray(128 + 4 + 12 + metaLength)
}

test.before(async () => {
  const destinationPort = await freePort()
  destination = await startDicomScp({
    port: destinationPort,
    host: '127.0.0.1',
    aeTitle: 'MOVEDEST',
    log: pino({ level: 'silent' }),
    onStore: async request => {
      moved.push(request)
      return { status: 0 }
    }
  })
  // A PACS answers queries and retrieves only from the AE titles it knows (Orthanc's DicomModalities): the
  // node's is there with a port the node never listens on, as a C-GET needs none.
  orthanc = await startOrthanc({
    modalities: {
      movedest: ['MOVEDEST', '127.0.0.1', destinationPort],
      radmesh: ['RADMESH', '127.0.0.1', await freePort()]
    }
  })
  const dir = await tempDir('scu-qr-')
  for (const [i, bodyPart] of ['HEAD', 'CHEST'].entries()) {
    const study = await generateCt({
      out: `${dir}/${i}`,
      slices: 3,
      rows: 32,
      columns: 32,
      patientId: 'QR-PATIENT',
      issuerOfPatientId: 'HOSPITAL-A',
      bodyPart,
      seed: 700 + i,
      studyDate: new Date(Date.UTC(2025, i, 10))
    })
    studies.push(study.studyInstanceUid)
    for (const file of study.files) {
      const bytes = await fs.readFile(file)
      await orthanc.request('POST', '/instances', bytes)
      uploaded.add(sha(datasetOf(bytes)))
    }
  }
})

test.after(async () => {
  await orthanc?.stop()
  await destination?.stop()
})

const pacs = () => ({ aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.dicomPort })

test('C-FIND at STUDY level finds the patient’s studies with the keys asked for', async () => {
  const matches = await findStudyRoot(
    pacs(),
    'RADMESH',
    'STUDY',
    keysOf({
      '00100020': ['LO', 'QR-PATIENT'],
      '0020000D': ['UI', ''],
      '00080020': ['DA', ''],
      '00081030': ['LO', ''],
      '00080061': ['CS', ''],
      '00201208': ['IS', '']
    })
  )
  assert.equal(matches.map(m => keyText(m, '0020000D')).sort(), [...studies].sort())
  const first = matches.find(m => keyText(m, '0020000D') === studies[0])
  assert.ok(first)
  assert.equal(keyText(first, '00080020'), '20250110')
  assert.equal(keyText(first, '00081030'), 'HEAD WO CONTRAST')
  assert.equal(keyText(first, '00080061'), 'CT')
  assert.equal(keyText(first, '00201208'), '3')
})

test('C-FIND with a date range and at SERIES level answers the body part', async () => {
  const inFebruary = await findStudyRoot(
    pacs(),
    'RADMESH',
    'STUDY',
    keysOf({ '00100020': ['LO', 'QR-PATIENT'], '00080020': ['DA', '20250201-20250228'], '0020000D': ['UI', ''] })
  )
  assert.equal(
    inFebruary.map(m => keyText(m, '0020000D')),
    [studies[1]]
  )
  const series = await findStudyRoot(
    pacs(),
    'RADMESH',
    'SERIES',
    keysOf({ '0020000D': ['UI', studies[1] as string], '00180015': ['CS', ''], '00080060': ['CS', ''] })
  )
  assert.equal(series.length, 1)
  assert.equal(keyText(series[0] as never, '00180015'), 'CHEST')
})

test('C-GET brings a study’s instances back on the same association, byte for byte', async () => {
  const received: Array<StoreRequest<Uint8Array>> = []
  const outcome = await getStudyRoot(
    pacs(),
    'RADMESH',
    keysOf({ '00080052': ['CS', 'STUDY'], '0020000D': ['UI', studies[0] as string] }),
    {
      open: () => collectDataset(),
      store: async request => {
        received.push(request)
        return { status: 0 }
      }
    }
  )
  assert.equal(outcome, { status: 0, completed: 3, failed: 0, warning: 0 })
  assert.equal(received.length, 3)
  for (const request of received) {
    assert.equal(request.transferSyntaxUid, '1.2.840.10008.1.2.1')
    assert.ok(uploaded.has(sha(request.dataset)), `${request.sopInstanceUid} arrived as it was uploaded`)
  }
})

test('C-MOVE sends a study to a destination the PACS knows', async () => {
  moved.length = 0
  const outcome = await moveStudyRoot(
    pacs(),
    'RADMESH',
    keysOf({ '00080052': ['CS', 'STUDY'], '0020000D': ['UI', studies[1] as string] }),
    'MOVEDEST'
  )
  assert.equal(outcome.completed, 3)
  assert.equal(moved.length, 3)
})

test('C-MOVE to an AE title the PACS does not know fails with its status', async () => {
  const error = await moveStudyRoot(
    pacs(),
    'RADMESH',
    keysOf({ '00080052': ['CS', 'STUDY'], '0020000D': ['UI', studies[1] as string] }),
    'NOBODY'
  ).catch((e: unknown) => e as Error)
  assert.instance(error, Error)
  assert.match(
    (error as Error).message,
    /ORTHANC answered the C-MOVE with status 0x(a801|c000)/,
    (error as Error).message
  )
})

test('a PACS that is not listening fails the query at once, saying so', async () => {
  const port = await freePort()
  const error = await findStudyRoot(
    { aeTitle: 'DOWN', host: '127.0.0.1', port },
    'RADMESH',
    'STUDY',
    keysOf({ '00100020': ['LO', 'X'] })
  ).catch((e: unknown) => e as Error)
  assert.match((error as Error).message, /ECONNREFUSED/)
})

test.run()
