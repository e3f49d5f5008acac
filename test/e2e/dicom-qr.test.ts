/**
 * Query/Retrieve on a real node process (`radmesh start --dicom --dicom-peer`), driven by DCMTK's own tools in
 * processes of their own: findscu at every level of both models (wildcards, date and time ranges, UID lists,
 * character sets, sequence matching), getscu, and movescu to itself and to a storescp, each object compared byte for byte with
 * what was stored; C-CANCEL, an unknown destination, a destination that takes none of the stored syntaxes,
 * and the audit trail (110112 Query, 110106 Export). Then a real Orthanc queries the node from its
 * /modalities API and retrieves a study into itself by C-MOVE.
 */
import { spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateCt, type GeneratedStudy } from '../../scripts/generate-ct.ts'
import { ownChild, stopChild } from '../../scripts/lib/children.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { type OrthancServer, startOrthanc } from '../../scripts/lib/orthanc.ts'
import { runTool, storescu } from '../../scripts/lib/dcmtk.ts'
import { type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { freePort } from '../../scripts/lib/ports.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { datasetStart } from '../helpers/dicom.ts'
import type { Command } from '../../node/dicom/dimse/command.ts'
import { writeDataset } from '../../node/dicom/writer.ts'
import { associateRq, commandPdu, dataPdu, EXPLICIT_LE, RawAssociation } from '../../scripts/fuzz/scu.ts'

const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1'

let node: StartedNode
let orthanc: OrthancServer
let storescpPort: number
let movescuPort: number
let implicitOnlyPort: number
const studies: GeneratedStudy[] = []
const children: Array<ReturnType<typeof spawn>> = []

/** Study A (Doe John, 5 Jan 2024 08:30), B (Doe Jane, 20 Mar 2024 14:15, two series), C (Müller, 2023). */
const PATIENTS = [
  { patientName: 'DOE^JOHN', patientId: 'P1', date: '20240105', time: '083000', series: 1 },
  { patientName: 'DOE^JANE', patientId: 'P2', date: '20240320', time: '141500', series: 2 },
  { patientName: 'MÜLLER^HANS', patientId: 'P3', date: '20230711', time: '101010', series: 1 }
]

/**
 * Sequences dcmodify puts in each study: A two procedure codes, B none, C one and an order in
 * RequestAttributesSequence. B is retrieved by getscu, storescp and Orthanc, which compare bytes and each
 * rewrite sequence lengths their own way (getscu undefined, the others explicit); A, moved to movescu, keeps them.
 */
const SEQUENCES = [
  ['(0008,1032)[0].(0008,0100)=CTHEAD', '(0008,1032)[0].(0008,0104)=CT head', '(0008,1032)[1].(0008,0100)=CTNECK'],
  [],
  ['(0008,1032)[0].(0008,0100)=CTCHEST', '(0040,0275)[0].(0040,1001)=RP77', '(0040,0275)[0].(0040,0009)=SPS7']
].map(keys => keys.flatMap(k => (k.startsWith('-') ? [k] : ['-i', k])))

async function listen(command: string, args: string[], port: number): Promise<void> {
  const child = ownChild(spawn(command, args, { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'ignore' }))
  children.push(child)
  await waitFor(`${command} to listen`, async () => (await runTool('echoscu', ['127.0.0.1', String(port)])).code === 0)
}

test.before(async () => {
  const dir = await tempDir()
  for (const [i, p] of PATIENTS.entries()) {
    const study = await generateCt({
      out: join(dir, String(i)),
      slices: 2,
      series: p.series,
      rows: 32,
      columns: 32,
      seed: 100 + i,
      patientName: p.patientName,
      patientId: p.patientId
    })
    for (const file of study.files) {
      const dates = ['-m', `StudyDate=${p.date}`, '-m', `StudyTime=${p.time}`]
      const modified = await runTool('dcmodify', ['-nb', ...dates, ...(SEQUENCES[i] ?? []), file])
      assert.is(modified.code, 0, modified.stderr)
    }
    studies.push(study)
  }
  ;[storescpPort, movescuPort, implicitOnlyPort] = [await freePort(), await freePort(), await freePort()]
  const consortium = await createScratchConsortium()
  const home = await consortium.member('QR Site', 'site')
  await fs.writeFile(join(home, 'dicom-peers.json'), JSON.stringify({ peers: [`MOVESCU=127.0.0.1:${movescuPort}`] }))
  const dicomPort = await freePort()
  orthanc = await startOrthanc({ modalities: { radmesh: ['RADMESH', '127.0.0.1', dicomPort] } })
  node = await startNode(home, {
    dicom: dicomPort,
    extraArgs: [
      '--dicom-peer',
      `ORTHANC=127.0.0.1:${orthanc.dicomPort}`,
      '--dicom-peer',
      `STORESCP=127.0.0.1:${storescpPort}`,
      '--dicom-peer',
      `IMPLICITONLY@127.0.0.1:${implicitOnlyPort}`
    ]
  })
  const stored = await storescu(
    node.dicomPort,
    'RADMESH',
    studies.flatMap(s => s.files)
  )
  assert.is(stored.code, 0, stored.stderr)
})

test.after(async () => {
  for (const child of children) await stopChild(child)
  await orthanc?.stop()
  await node?.kill()
})

/** A DCMTK SCU against the node: `tool ARGS… -k KEY… 127.0.0.1 PORT`, as FINDSCU unless `-aet` is given. */
async function scu(tool: string, args: string[], keys: string[]): Promise<{ code: number | null; output: string }> {
  const all = ['-aec', 'RADMESH', ...args, ...keys.flatMap(k => ['-k', k]), '127.0.0.1', String(node.dicomPort)]
  const { code, stdout, stderr } = await runTool(tool, all)
  return { code, output: stdout + stderr }
}

/** findscu's answers: one map of "(gggg,eeee)" to value per Pending response, in order. */
async function findscu(model: '-S' | '-P', keys: string[], extra: string[] = []): Promise<Array<Map<string, string>>> {
  const { code, output } = await scu('findscu', ['-v', model, ...extra], keys)
  assert.is(code, 0, output)
  const answers: Array<Map<string, string>> = []
  for (const block of output.split(/Find Response: \d+ \(Pending\)/).slice(1)) {
    const answer = new Map<string, string>()
    for (const [, tag, value] of block.matchAll(/\((\w{4},\w{4})\) \w\w (\[[^\]]*\]|\(no value available\)|=\w+)/g)) {
      const text = value as string
      const shown = text.startsWith('[') ? text.slice(1, -1).trim() : text.startsWith('(') ? '' : text
      answer.set((tag as string).toLowerCase(), shown)
    }
    answers.push(answer)
  }
  return answers
}

const ids = (answers: Array<Map<string, string>>): string[] => answers.map(a => a.get('0010,0020') ?? '?').sort()

test('C-FIND STUDY, Study Root: single values, wildcards, date and time ranges, universal matching', async () => {
  assert.equal(ids(await findscu('-S', ['QueryRetrieveLevel=STUDY', 'PatientID'])), ['P1', 'P2', 'P3'])
  assert.equal(ids(await findscu('-S', ['QueryRetrieveLevel=STUDY', 'PatientName=DOE^J*', 'PatientID'])), ['P1', 'P2'])
  assert.equal(ids(await findscu('-S', ['QueryRetrieveLevel=STUDY', 'PatientName=DOE^JA?E', 'PatientID'])), ['P2'])
  assert.equal(ids(await findscu('-S', ['QueryRetrieveLevel=STUDY', 'PatientName=DOE', 'PatientID'])), [])
  const year = ['QueryRetrieveLevel=STUDY', 'StudyDate=20240101-20241231', 'PatientID']
  assert.equal(ids(await findscu('-S', year)), ['P1', 'P2'])
  assert.equal(ids(await findscu('-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=-20240201', 'PatientID'])), ['P1', 'P3'])
  assert.equal(ids(await findscu('-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=20240320-', 'PatientID'])), ['P2'])
  assert.equal(ids(await findscu('-S', ['QueryRetrieveLevel=STUDY', 'StudyTime=0800-1200', 'PatientID'])), ['P1', 'P3'])
  const [a, b] = studies
  const list = `StudyInstanceUID=${a?.studyInstanceUid}\\${b?.studyInstanceUid}`
  const answers = await findscu('-S', [
    'QueryRetrieveLevel=STUDY',
    list,
    'PatientID',
    'StudyDate',
    'ModalitiesInStudy',
    'NumberOfStudyRelatedInstances',
    'RetrieveAETitle',
    'StudyDescription',
    'IssuerOfPatientID'
  ])
  assert.equal(ids(answers), ['P1', 'P2'])
  const jane = answers.find(x => x.get('0010,0020') === 'P2')
  assert.is(jane?.get('0008,0020'), '20240320')
  assert.is(jane?.get('0008,0061'), 'CT')
  assert.is(jane?.get('0020,1208'), '4')
  assert.is(jane?.get('0008,0054'), 'RADMESH')
  assert.is(jane?.get('0008,0052'), 'STUDY')
  assert.is(jane?.get('0010,0021'), '', 'a key radmesh does not hold comes back empty')
})

test('C-FIND PATIENT (Patient Root), SERIES and IMAGE: the unique keys above, counts, UIDs', async () => {
  const patients = await findscu('-P', [
    'QueryRetrieveLevel=PATIENT',
    'PatientID',
    'PatientName=DOE*',
    'NumberOfPatientRelatedStudies'
  ])
  assert.equal(ids(patients), ['P1', 'P2'])
  assert.is(patients[0]?.get('0020,1200'), '1')
  const b = studies[1] as GeneratedStudy
  const series = await findscu('-P', [
    'QueryRetrieveLevel=SERIES',
    'PatientID=P2',
    `StudyInstanceUID=${b.studyInstanceUid}`,
    'SeriesInstanceUID',
    'Modality=CT',
    'NumberOfSeriesRelatedInstances'
  ])
  assert.equal(series.map(s => s.get('0020,000e')).sort(), b.series.map(s => s.seriesInstanceUid).sort())
  const images = await findscu('-S', [
    'QueryRetrieveLevel=IMAGE',
    `StudyInstanceUID=${b.studyInstanceUid}`,
    `SeriesInstanceUID=${b.series[0]?.seriesInstanceUid}`,
    'SOPInstanceUID',
    'InstanceNumber=2',
    'SOPClassUID'
  ])
  assert.is(images.length, 1)
  assert.is(images[0]?.get('0008,0016'), '=CTImageStorage', 'DCMTK prints a UID it knows by name')
  assert.is(images[0]?.get('0020,0013'), '2')
})

test('C-FIND sequence matching: an item key matches any item; matching items come back; other sequences empty', async () => {
  const codes = (value: string) => [
    'QueryRetrieveLevel=STUDY',
    'PatientID',
    `(0008,1032)[0].(0008,0100)=${value}`,
    '(0008,1032)[0].(0008,0104)'
  ]
  const neck = await findscu('-S', codes('CTNECK'))
  assert.equal(ids(neck), ['P1'])
  // Only the item that matched comes back, with the item keys asked for.
  assert.is(neck[0]?.get('0008,0100'), 'CTNECK')
  assert.is(neck[0]?.get('0008,0104'), '')
  const head = await findscu('-S', codes('CTHEAD'))
  assert.is(head[0]?.get('0008,0104'), 'CT head')
  assert.equal(ids(await findscu('-S', codes('CT*'))), ['P1', 'P3'])
  assert.equal(ids(await findscu('-S', codes('MRHEAD'))), [])
  // An empty item key: universal matching, every study.
  assert.equal(ids(await findscu('-S', codes(''))), ['P1', 'P2', 'P3'])
  // At SERIES level, the series' RequestAttributesSequence.
  const order = [
    'QueryRetrieveLevel=SERIES',
    'PatientID',
    '(0040,0275)[0].(0040,1001)=RP77',
    '(0040,0275)[0].(0040,0009)'
  ]
  const series = await findscu('-S', order)
  assert.equal(ids(series), ['P3'])
  assert.is(series[0]?.get('0040,0009'), 'SPS7')
  // A sequence the index does not keep: universal, answered with no item.
  const other = ['QueryRetrieveLevel=STUDY', 'PatientID', '(0008,1110)[0].(0008,1155)=1.2.3']
  assert.equal(ids(await findscu('-S', other)), ['P1', 'P2', 'P3'])
})

test('C-FIND, character sets: UTF-8 keys match; names go back in a character set that holds them', async () => {
  const answers = await findscu('-S', [
    'QueryRetrieveLevel=STUDY',
    'SpecificCharacterSet=ISO_IR 192',
    'PatientName=MÜLL*',
    'PatientID'
  ])
  assert.equal(ids(answers), ['P3'])
  // Written back in Latin-1 (ISO_IR 100), the request naming no character set: dcmdump converts it to read it.
  const out = await tempDir()
  const extracted = await scu(
    'findscu',
    ['-S', '-X', '-od', out],
    ['QueryRetrieveLevel=STUDY', 'PatientID=P3', 'PatientName']
  )
  assert.is(extracted.code, 0, extracted.output)
  const asSent = await runTool('dcmdump', [join(out, 'rsp0001.dcm')])
  assert.match(asSent.stdout, /\(0008,0005\) CS \[ISO_IR 100\]/)
  const converted = await runTool('dcmdump', ['+U8', join(out, 'rsp0001.dcm')])
  assert.match(converted.stdout, /\(0010,0010\) PN \[MÜLLER\^HANS\]/)
})

test('C-FIND: a level the model does not have is refused; a C-CANCEL stops the query (Cancel, no match)', async () => {
  const wrong = await scu('findscu', ['-v', '-S'], ['QueryRetrieveLevel=PATIENT', 'PatientID'])
  assert.match(wrong.output, /Final Find Response \(Error: DataSetDoesNotMatchSOPClass\)/)

  const raw = await RawAssociation.connect(node.dicomPort)
  const answer = await raw.associate(
    associateRq('RADMESH', 'CANCELER', [{ id: 1, abstractSyntax: STUDY_ROOT_FIND, transferSyntaxes: [EXPLICIT_LE] }])
  )
  assert.is(answer.type, 'associate-ac')
  const identifier = writeDataset([
    { tag: 0x00080052, vr: 'CS', value: 'IMAGE' },
    { tag: 0x00080018, vr: 'UI', value: '' }
  ])
  const find: Command = {
    affectedSopClassUid: STUDY_ROOT_FIND,
    commandField: 0x0020,
    messageId: 7,
    priority: 0,
    commandDataSetType: 0x0102
  }
  const cancel: Command = { commandField: 0x0fff, messageIdBeingRespondedTo: 7, commandDataSetType: 0x0101 }
  // The C-CANCEL follows at once: it is taken while the C-FIND runs, not queued behind it.
  await raw.send(commandPdu(1, find), dataPdu(1, identifier, true), commandPdu(1, cancel))
  const final = await raw.next(10_000)
  assert.is(final.type === 'command' ? final.command.status : final.type, 0xfe00)
  assert.is(final.type === 'command' ? final.command.messageIdBeingRespondedTo : 0, 7)
  assert.is((await raw.release()).type, 'release-rp')
})

async function sameAsStored(dir: string, study: GeneratedStudy, files?: string[]): Promise<void> {
  const received = (await fs.readdir(dir)).filter(name => !name.startsWith('.'))
  assert.is(received.length, (files ?? study.files).length, `files in ${dir}`)
  const wanted = new Map<string, Buffer>()
  for (const file of files ?? study.files) {
    const bytes = await fs.readFile(file)
    wanted.set(bytes.subarray(datasetStart(bytes)).toString('base64'), bytes)
  }
  for (const name of received) {
    const bytes = await fs.readFile(join(dir, name))
    assert.ok(wanted.has(bytes.subarray(datasetStart(bytes)).toString('base64')), `${name}: the data set as stored`)
  }
}

test('C-GET (getscu): every instance of a study on the same association, byte for byte', async () => {
  const out = await tempDir()
  const b = studies[1] as GeneratedStudy
  const { code, output } = await scu(
    'getscu',
    ['-S', '-od', out],
    ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${b.studyInstanceUid}`]
  )
  assert.is(code, 0, output)
  await sameAsStored(out, b)
})

test('C-MOVE to itself (a destination in HOME) and to a storescp (--dicom-peer), byte for byte', async () => {
  const out = await tempDir()
  const a = studies[0] as GeneratedStudy
  const toItself = ['-S', '-aet', 'MOVESCU', '-aem', 'MOVESCU', '+P', String(movescuPort), '-od', out]
  const moved = await scu('movescu', toItself, ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${a.studyInstanceUid}`])
  assert.is(moved.code, 0, moved.output)
  await sameAsStored(out, a)

  const scpDir = await tempDir()
  await listen('storescp', ['-od', scpDir, '-aet', 'STORESCP', String(storescpPort)], storescpPort)
  const b = studies[1] as GeneratedStudy
  const series = b.series[1]
  const toScp = await scu(
    'movescu',
    ['-v', '-S', '-aem', 'STORESCP'],
    [
      'QueryRetrieveLevel=SERIES',
      `StudyInstanceUID=${b.studyInstanceUid}`,
      `SeriesInstanceUID=${series?.seriesInstanceUid}`
    ]
  )
  assert.is(toScp.code, 0, toScp.output)
  assert.match(toScp.output, /Received Move Response 1 \(Pending\)/)
  await waitFor('storescp to write the series', async () => (await fs.readdir(scpDir)).length === series?.files.length)
  await sameAsStored(scpDir, b, series?.files)
})

test('C-MOVE: an unknown destination is refused; one taking none of the stored syntaxes fails clearly', async () => {
  const a = studies[0] as GeneratedStudy
  const study = `StudyInstanceUID=${a.studyInstanceUid}`
  const unknown = await scu('movescu', ['-S', '-aem', 'NOBODY'], ['QueryRetrieveLevel=STUDY', study])
  assert.match(unknown.output, /Refused: MoveDestinationUnknown/)

  const dir = await tempDir()
  // storescp taking Implicit VR Little Endian only: the stored Explicit VR Little Endian instances have nowhere to go.
  await listen('storescp', ['+xi', '-od', dir, '-aet', 'IMPLICITONLY', String(implicitOnlyPort)], implicitOnlyPort)
  const refused = await scu('movescu', ['-d', '-S', '-aem', 'IMPLICITONLY'], ['QueryRetrieveLevel=STUDY', study])
  const { output } = refused
  assert.match(output, /DIMSE Status +: 0xa702: Refused: Out of resources - Unable to perform sub-operations/)
  assert.match(output, /IMPLICITONLY accepts no context in 1\.2\.840\.10008\.1\.2\.1/)
  assert.match(output, /FailedSOPInstanceUIDList/)
  assert.equal(await fs.readdir(dir), [], 'nothing altered was sent')
})

test('every retrieve is audited as 110106 Export, every query as 110112', async () => {
  const { body } = await node.api<{ records: Array<{ eventCode: string; detail?: string; actor: { id: string } }> }>(
    'GET',
    '/api/audit?limit=1000'
  )
  const exports = body.records.filter(r => r.eventCode === '110106')
  assert.ok(
    exports.some(r => /C-GET by GETSCU: 4 sent, 0 failed/.test(r.detail ?? '')),
    JSON.stringify(exports)
  )
  assert.ok(exports.some(r => /C-MOVE to STORESCP: 2 sent/.test(r.detail ?? '')))
  assert.ok(exports.some(r => /C-MOVE to IMPLICITONLY: 0 sent, 2 failed/.test(r.detail ?? '')))
  assert.ok(body.records.some(r => r.eventCode === '110112' && /^C-FIND STUDY by 00100010/.test(r.detail ?? '')))
})

test('Orthanc queries the node (/modalities/radmesh/query) and retrieves a study into itself by C-MOVE', async () => {
  const b = studies[1] as GeneratedStudy
  const query = await orthanc.request<{ ID: string }>('POST', '/modalities/radmesh/query', {
    Level: 'Study',
    Query: { PatientName: 'DOE^JA*', StudyDate: '20240301-20240331', StudyInstanceUID: '' }
  })
  const answers = await orthanc.request<Array<Record<string, { Value: string }>>>(
    'GET',
    `/queries/${query.ID}/answers?expand&simplify`
  )
  assert.equal(
    answers.map(a => a['StudyInstanceUID']),
    [b.studyInstanceUid]
  )
  const series = await orthanc.request<{ ID: string }>('POST', '/modalities/radmesh/query', {
    Level: 'Series',
    Query: { StudyInstanceUID: b.studyInstanceUid, SeriesInstanceUID: '', Modality: 'CT' }
  })
  assert.is((await orthanc.request<unknown[]>('GET', `/queries/${series.ID}/answers`)).length, 2)
  await orthanc.request('POST', `/queries/${query.ID}/retrieve`, { TargetAet: 'ORTHANC', Synchronous: true })
  const instances = await orthanc.request<string[]>('GET', '/instances')
  assert.is(instances.length, b.files.length)
  const dir = await tempDir()
  for (const id of instances) {
    const file = await fetch(`${orthanc.http}/instances/${id}/file`)
    await fs.writeFile(join(dir, `${id}.dcm`), Buffer.from(await file.arrayBuffer()))
  }
  await sameAsStored(dir, b)
})

test.run()
