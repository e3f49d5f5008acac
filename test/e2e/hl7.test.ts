/**
 * Reports into the site's RIS over HL7 v2, with real processes: a site started with `--ris`, a reader, DCMTK as
 * the modality and Debian's python3-hl7 as the RIS (an MLLP listener that parses and checks each message).
 * A FINAL report reaches a RIS that was down at first, across a restart of the site, as an ORU^R01 v2.5.1 with
 * status F; its addendum follows with status C; a critical result flagged on the case follows as an ORU^R01 of
 * its own (status P, OBX-8 AA); an AE from the RIS shows on the case; the RIS's placer and filler order numbers
 * in a study go into ORC-2/3 and OBR-2/3.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import { createScratchConsortium, type ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { connected, knowsRadiologists, p2pAddr, type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { freePort } from '../../scripts/lib/ports.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { type Hl7Receiver, startHl7Receiver } from '../../scripts/lib/hl7-receiver.ts'

interface Hl7Status {
  controlId: string
  resultStatus: string
  state: string
  attempts: number
  lastError?: string
  ack?: { code: string; text: string }
}
interface ReportView {
  status: string
  delivery?: { hl7: Hl7Status[] }
}

let consortium: ScratchConsortium
const nodes: StartedNode[] = []
let receiver: Hl7Receiver | undefined

test.before(async () => {
  consortium = await createScratchConsortium('HL7')
})

test.after(async () => {
  await Promise.all(
    nodes.map(async node => {
      await node.kill()
    })
  )
  await receiver?.stop()
})

/** A study from the modality, through the case on the reader's worklist, to a FINAL report; its case id. */
async function finalReport(
  site: StartedNode,
  reader: StartedNode,
  patientId: string,
  seed: number,
  orders: { placerOrderNumber?: string; fillerOrderNumber?: string } = {}
): Promise<string> {
  const dir = await tempDir()
  const study = await generateCt({
    ...orders,
    out: dir,
    slices: 4,
    rows: 32,
    columns: 32,
    seed,
    patientId,
    patientName: "O'BRIEN^MARY|ANN",
    studyDescription: 'CT HEAD STROKE'
  })
  assert.is((await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
  const caseId = await waitFor(
    "the case on the reader's worklist",
    async () => {
      const list = (await reader.api<Array<{ caseId: string; studyInstanceUid: string }>>('GET', '/api/worklist')).body
      return list.find(e => e.studyInstanceUid === study.studyInstanceUid)?.caseId
    },
    30_000
  )
  assert.is((await reader.api('POST', `/api/worklist/${caseId}/claim`)).status, 200)
  const written = await reader.api('PUT', `/api/cases/${caseId}/report`, {
    sections: {
      indication: 'Left weakness.',
      findings: 'No haemorrhage.\nHyperdense right MCA | sign ^ present & noted.',
      impression: 'Right MCA infarct.'
    }
  })
  assert.is(written.status, 200, JSON.stringify(written.body))
  const signed = await reader.api<ReportView>('POST', `/api/cases/${caseId}/report/sign`, { status: 'FINAL' })
  assert.is(signed.status, 200, JSON.stringify(signed.body))
  return caseId
}

async function hl7Of(site: StartedNode, caseId: string): Promise<Hl7Status[]> {
  return (await site.api<ReportView>('GET', `/api/cases/${caseId}/report`)).body.delivery?.hl7 ?? []
}

test('FINAL -> ORU^R01 F to a RIS down at first, kept across a restart; addendum -> C; AE on the case', async () => {
  const risPort = await freePort()
  const risArgs = ['--stable-after', '1s', '--ris', `127.0.0.1:${risPort}`, '--ris-retry', '1s']
  const siteHome = await consortium.member('County Hospital', 'site')
  let site = await startNode(siteHome, { dicom: true, extraArgs: risArgs })
  nodes.push(site)
  const readerHome = await consortium.member('Dr Alice Neuro', 'radiologist', [], ['--subspecialty', 'neuro'])
  const reader = await startNode(readerHome, { peers: [p2pAddr(site)], extraArgs: ['--stable-after', '1s'] })
  nodes.push(reader)
  await connected(site, reader)
  await knowsRadiologists(site, 1, 15_000)

  // The RIS is down: the message waits in the outbox, attempted and pending.
  const caseId = await finalReport(site, reader, 'PID-1', 11)
  const waiting = await waitFor(
    'a failed attempt shown on the case',
    async () => (await hl7Of(site, caseId)).find(s => s.attempts >= 1),
    30_000
  )
  assert.equal([waiting.state, waiting.resultStatus], ['pending', 'F'])
  assert.match(waiting.lastError ?? '', /ECONNREFUSED/)

  // The site restarts (SIGKILL: nothing is flushed on the way out), then the RIS comes up.
  await site.kill()
  site = await startNode(siteHome, {
    dicom: site.dicomPort,
    p2pPort: site.p2pPort,
    wsPort: site.wsPort,
    httpPort: site.httpPort,
    extraArgs: risArgs
  })
  nodes.push(site)
  receiver = await startHl7Receiver(risPort, { reject: ['PID-2'] })
  const [oru] = await waitFor(
    'the ORU^R01 at the RIS',
    () => receiver?.received.length === 1 && receiver.received,
    30_000
  )
  assert.ok(oru !== undefined)
  const qido = await site.fetch('/dicom-web/studies?PatientID=PID-1')
  const accession = ((await qido.json()) as Array<Record<string, { Value?: string[] }>>)[0]?.['00080050']?.Value?.[0]
  assert.ok(accession !== undefined && accession !== '')
  assert.equal(oru.problems, [], 'python3-hl7 finds the message well formed')
  // No order numbers in this study: the accession number stands for both, in ORC and OBR alike.
  assert.equal(
    [oru.type, oru.version, oru.resultStatus, oru.accession, oru.placer, oru.filler, oru.caseId, oru.patientId],
    ['ORU^R01^ORU_R01', '2.5.1', 'F', accession, accession, accession, caseId, 'PID-1']
  )
  assert.equal([oru.obrPlacer, oru.obrFiller], [accession, accession])
  assert.equal([oru.sendingFacility, oru.procedure, oru.orderStatus], ['County Hospital', '^CT HEAD STROKE', 'CM'])
  assert.is(oru.patientName, "O'BRIEN^MARY\\F\\ANN")
  assert.ok(oru.interpreter.startsWith(`${reader.peerId}&`), oru.interpreter)
  assert.equal(
    oru.obx.map(o => [o.code, o.type, o.status]),
    [
      ['18785-6', 'FT', 'F'],
      ['59776-5', 'FT', 'F'],
      ['19005-8', 'FT', 'F']
    ]
  )
  assert.is(oru.obx[1]?.text, 'No haemorrhage.\rHyperdense right MCA | sign ^ present & noted.')
  const delivered = await waitFor(
    'the AA on the case',
    async () => (await hl7Of(site, caseId)).find(s => s.state === 'delivered'),
    10_000
  )
  assert.equal([delivered.ack?.code, delivered.controlId], ['AA', oru.controlId])
  assert.ok(delivered.attempts >= 2)

  // An addendum: the report again, status C, the addendum as its own OBX.
  await connected(site, reader, 20_000)
  const addendum = await reader.api('POST', `/api/cases/${caseId}/report/addendum`, { text: 'Also a small SDH.' })
  assert.is(addendum.status, 200, JSON.stringify(addendum.body))
  const [, corrected] = await waitFor(
    'the correction at the RIS',
    () => receiver?.received.length === 2 && receiver.received,
    30_000
  )
  assert.equal(
    [corrected?.resultStatus, corrected?.problems, corrected?.obx.at(-1)?.code, corrected?.obx.at(-1)?.text],
    ['C', [], '55107-7', 'Also a small SDH.']
  )
  assert.not.equal(corrected?.controlId, oru.controlId)

  // A critical result: to the RIS as well as the call list, through the same outbox, its AA on the case.
  const finding = 'Acute SDH | 9 mm ^ midline shift.'
  const flagged = await reader.api<{ id: string }>('POST', `/api/cases/${caseId}/critical`, {
    level: 'critical',
    text: finding
  })
  assert.is(flagged.status, 200, JSON.stringify(flagged.body))
  const notice = await waitFor(
    'the critical result at the RIS',
    () => receiver?.received.find(m => m.resultStatus === 'P'),
    30_000
  )
  assert.equal(notice.problems, [], 'python3-hl7 finds the critical result well formed')
  assert.equal(
    [notice.type, notice.patientId, notice.caseId, notice.placer, notice.accession, notice.orderStatus],
    ['ORU^R01^ORU_R01', 'PID-1', caseId, accession, accession, 'IP']
  )
  assert.equal(notice.obx, [
    { code: 'RADMESH-CRITICAL', type: 'FT', status: 'P', abnormal: 'AA', text: `CRITICAL: ${finding}` }
  ])
  assert.ok(notice.interpreter.startsWith(`${reader.peerId}&`), notice.interpreter)
  const toldRis = await waitFor(
    "the critical result's AA on the case",
    async () => (await hl7Of(site, caseId)).find(s => s.resultStatus === 'P' && s.state === 'delivered'),
    10_000
  )
  assert.is(toldRis.controlId, notice.controlId)

  // The RIS refuses the next one: AE, with its reason, on the case. Its study names the RIS's order numbers
  // (0040,2016/2017), indexed at ingest: ORC-2/3 and OBR-2/3 carry them.
  const refusedCase = await finalReport(site, reader, 'PID-2', 12, {
    placerOrderNumber: 'PL-2026-0042',
    fillerOrderNumber: 'FL-0077'
  })
  const refused = await waitFor(
    'the AE on the case',
    async () => (await hl7Of(site, refusedCase)).find(s => s.state === 'rejected'),
    30_000
  )
  assert.equal([refused.ack?.code, refused.ack?.text, refused.attempts], ['AE', 'no such order here', 1])
  const ordered = receiver?.received.find(m => m.patientId === 'PID-2')
  assert.equal(
    [ordered?.placer, ordered?.filler, ordered?.obrPlacer, ordered?.obrFiller],
    ['PL-2026-0042', 'FL-0077', 'PL-2026-0042', 'FL-0077']
  )
  assert.is.not(ordered?.accession, 'PL-2026-0042', 'the accession number stays in OBR-18')
  type Audit = { records: Array<{ event: string; outcome: number; detail?: string }> }
  const audit = await site.api<Audit>('GET', '/api/audit?limit=1000')
  const exports = audit.body.records?.filter(r => r.event === 'export' && /HL7/.test(r.detail ?? '')) ?? []
  assert.equal(exports.map(r => r.outcome).sort(), [0, 0, 0, 8], JSON.stringify(exports))
  assert.ok(
    exports.some(r => /critical result of case .* \(P\)/.test(r.detail ?? '')),
    JSON.stringify(exports)
  )
})

test.run()
