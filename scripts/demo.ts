/**
 * `npm run demo [-- --state DIR]`: a small radmesh consortium on this machine.
 *
 * Creates a consortium with one site and two radiologists (or reuses the one in DIR), starts each as its
 * own `radmesh start` process on loopback (the site with a DICOM port), waits until they are connected,
 * and walks through a night shift: the site's scanners send a stroke CT and a knee MR by C-STORE (DCMTK
 * storescu when installed, else `radmesh import`); the site's node routes them into cases on the readers'
 * worklists; the STAT CT is prefetched, claimed (the other reader is refused), co-written by two readers,
 * flagged as a critical result (escalated by the site's call list, acknowledged by name), signed FINAL, and lands
 * back at the site as a DICOM SR, a FHIR report and an HL7 ORU^R01 to its RIS (python3-hl7, when installed); a
 * PACS finds the study by C-FIND. The stroke patient's head CT of 2023 comes from the hospital's PACS (Orthanc,
 * when installed) as the case's prior, and the report compares with it. The knee case stays open, and a
 * de-identified copy goes to a second reader.
 *
 * Every run on the same DIR sends new studies (run N has its own seeds), so the scenario plays again on the
 * cases of that run (its studies in DIR/incoming/run-N) while the earlier ones stay in the archives and
 * worklists. DIR/nodes.json describes the nodes of the current run (docs/DEMO.md), written once the walk-through
 * is done. The demo runs until Ctrl-C or SIGTERM, then stops every node it started; when something fails
 * (a node that does not start says why in its own words) it says what, stops them too and exits 1.
 */
import { promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { generateCt } from './generate-ct.ts'
import { stopChildren } from './lib/children.ts'
import { radmeshOk } from './lib/cli.ts'
import { runTool } from './lib/dcmtk.ts'
import type { Hl7Receiver } from './lib/hl7-receiver.ts'
import type { OrthancServer } from './lib/orthanc.ts'
import { NodeStartError, p2pAddr, peersOf, startNode } from './lib/node-process.ts'
import { waitFor } from './lib/wait.ts'
import { deidentifiedShare, queryStudy } from './demo/archive.ts'
import { AE_TITLE, type Case, caseOf, MEMBERS, type Running, say, until } from './demo/common.ts'
import { criticalResult, writeSiteRouting } from './demo/critical.ts'
import { loadPrior, pacsArgs, priorAtReader, STROKE_PATIENT_ID, startPacs } from './demo/priors.ts'
import { reportToRis, startRis } from './demo/ris.ts'

const exists = async (path: string): Promise<boolean> =>
  await fs.access(path).then(
    () => true,
    () => false
  )

// Stopping: on a signal, or after a failure, every node this demo started gets SIGTERM and is waited for.
let stopping = false
async function stop(code: number): Promise<never> {
  stopping = true
  await stopChildren()
  process.exit(code)
}
process.once('SIGINT', () => {
  void stop(0)
})
process.once('SIGTERM', () => {
  void stop(0)
})

/** Creates what is missing of the consortium in `state`: the consortium itself, each member's HOME. */
async function ensureConsortium(state: string): Promise<void> {
  const consortiumDir = join(state, 'consortium')
  if (!(await exists(join(consortiumDir, 'consortium.json')))) {
    say(`creating consortium "Demo Teleradiology Network" in ${consortiumDir}`)
    await radmeshOk(['consortium', 'create', '--dir', consortiumDir, '--name', 'Demo Teleradiology Network'])
  }
  for (const member of MEMBERS) {
    const home = join(state, member.key)
    if (await exists(join(home, 'certificate.json'))) continue
    say(`init + admit ${member.name} (${member.role})`)
    const subspecialty = member.subspecialties.length > 0 ? ['--subspecialty', member.subspecialties.join(',')] : []
    await radmeshOk(['init', '--home', home, '--name', member.name, '--role', member.role, ...subspecialty])
    await radmeshOk(['consortium', 'admit', '--dir', consortiumDir, '--home', home])
  }
}

/**
 * Starts the three nodes, each radiologist dialling the ones started before it, and waits until all connect;
 * `siteArgs` go to the site's `radmesh start` only.
 */
async function startNodes(state: string, siteArgs: string[]): Promise<Running[]> {
  const running: Running[] = []
  for (const member of MEMBERS) {
    const site = member.role === 'site'
    const node = await startNode(join(state, member.key), {
      peers: running.map(p2pAddr),
      ...(site ? { dicom: true } : {}),
      extraArgs: ['--stable-after', '2s', ...(site ? ['--ae', AE_TITLE, ...siteArgs] : [])],
      // radmesh's own default pack space, as a user's node has
      preallocateMib: null
    }).catch((error: unknown) => {
      if (!(error instanceof NodeStartError)) throw error
      // The node's own words first (e.g. another node already runs on this HOME), then the demo's.
      process.stderr.write(
        error.output
          .trimEnd()
          .split('\n')
          .map(line => `[${member.key}] ${line}\n`)
          .join('')
      )
      throw new Error(`${member.name} did not start (its HOME is ${error.home})`)
    })
    node.process.once('exit', code => {
      if (stopping) return
      process.stderr.write(`[${member.key}] exited with ${code}:\n${node.output().trimEnd()}\n`)
      fail(new Error(`${member.name}'s node stopped`))
    })
    running.push({ ...node, member })
    say(`started ${member.name}`)
  }
  await waitFor(
    'the three nodes to connect to each other',
    async () => (await Promise.all(running.map(peersOf))).every(peers => peers.length === running.length - 1),
    30_000,
    200
  )
  return running
}

/** DIR/nodes.json: what a user (or a test) needs to reach each node of this run. */
async function writeNodesJson(state: string, running: Running[]): Promise<void> {
  const nodes = running.map(node => ({
    name: node.member.name,
    role: node.member.role,
    peerId: node.peerId,
    home: node.home,
    http: node.http,
    token: node.token,
    viewerUrl: node.viewerUrl,
    dicomPort: node.member.role === 'site' ? node.dicomPort : null,
    aeTitle: node.member.role === 'site' ? AE_TITLE : null
  }))
  await fs.writeFile(join(state, 'nodes.json'), `${JSON.stringify(nodes, null, 2)}\n`, { mode: 0o600 })
}

/** This run's number on `state`: one more than the runs whose studies are already there. */
async function runNumber(state: string): Promise<number> {
  await fs.mkdir(join(state, 'incoming'), { recursive: true })
  const runs = (await fs.readdir(join(state, 'incoming'))).filter(name => /^run-\d+$/.test(name))
  return runs.length + 1
}

/** Sends a folder to the site as a scanner would (storescu), or imports it when DCMTK is not installed. */
async function send(site: Running, dir: string, description: string): Promise<void> {
  const args = ['-aec', AE_TITLE, '-aet', 'DEMO_SCANNER', '+sd', '+r', '127.0.0.1', String(site.dicomPort), dir]
  const sent = await runTool('storescu', args).then(
    result => result.code === 0,
    () => false
  )
  if (sent) {
    say(`scanner (storescu) sent ${description} to ${site.member.name} by C-STORE`)
    return
  }
  await radmeshOk(['import', '--home', site.home, dir])
  say(`imported ${description} into ${site.member.name} (DCMTK storescu not installed)`)
}

/** The night shift, on this run's studies. */
async function scenario(
  state: string,
  run: number,
  ris: Hl7Receiver | string,
  pacs: OrthancServer | string,
  [site, ada, hawk]: Running[]
): Promise<void> {
  if (site === undefined || ada === undefined || hawk === undefined) throw new Error('three nodes expected')
  // Every member's certificate reaches the site through the worklist before a study is routed.
  await until(
    'the site to know both radiologists',
    async () => (await site.api<unknown[]>('GET', '/api/duty')).body.length === 2
  )

  // Feed the site studies, as its scanners would: a stroke CT (STAT, neuro) and a knee MR (routine, msk).
  const incoming = join(state, 'incoming', `run-${run}`)
  const seed = 2026 + 2 * (run - 1)
  if (run > 1) say(`run ${run} on this state: new studies, the earlier cases stay where they are`)
  const ct = await generateCt({
    out: join(incoming, 'ct'),
    slices: 40,
    series: 2,
    rows: 256,
    columns: 256,
    patientName: 'DEMO^STROKE',
    patientId: STROKE_PATIENT_ID,
    studyDescription: 'CT HEAD STROKE PROTOCOL',
    bodyPart: 'HEAD',
    seed
  })
  const mr = await generateCt({
    out: join(incoming, 'mr'),
    slices: 12,
    rows: 128,
    columns: 128,
    patientName: 'DEMO^KNEE',
    studyDescription: 'MRI KNEE',
    bodyPart: 'KNEE',
    modality: 'MR',
    seed: seed + 1
  })
  await loadPrior(pacs, incoming)
  await send(site, join(incoming, 'ct'), 'a CT head (stroke protocol)')
  await send(site, join(incoming, 'mr'), 'an MR knee')

  // The site's node turns each stable study into a case, routed by modality, body part and description.
  const studyUid = ct.studyInstanceUid
  const stroke = await until("the stroke case on Dr Ada's worklist", async () => await caseOf(ada, studyUid))
  say(
    `${site.member.name} published case ${stroke.caseId}: ${stroke.priority} ${stroke.subspecialty}, due ` +
      `${stroke.dueAt} (on both neuro readers' worklists; no patient data in the worklist)`
  )
  // STAT: the readers on duty prefetch the study at once, end to end encrypted, from whoever holds it.
  for (const reader of [ada, hawk]) {
    const started = Date.now()
    await radmeshOk(['fetch', '--home', reader.home, studyUid, '--timeout', '60'])
    const { body } = await reader.api<{ instancesTotal: number; bytesTotal: number }>(
      'GET',
      `/api/studies/${studyUid}/availability`
    )
    say(
      `${reader.member.name} has the ${body.instancesTotal} images (${(body.bytesTotal / 1e6).toFixed(1)} MB, ` +
        `AES-256-GCM chunks, key wrapped for them) ${((Date.now() - started) / 1000).toFixed(1)} s after asking: ` +
        'prefetched because STAT'
    )
  }

  // The patient's earlier head CT, from the hospital's PACS, follows the case's images to its readers.
  const comparison = await priorAtReader(pacs, ada, stroke.caseId)

  // Reading: Ada claims, Night Hawk is refused, Ada writes, consults Night Hawk, both write, Ada signs.
  const caseApi = `/api/cases/${stroke.caseId}`
  const claimed = await ada.api<Case>('POST', `/api/worklist/${stroke.caseId}/claim`)
  if (claimed.status !== 200) throw new Error(`Dr Ada's claim was answered ${claimed.status}`)
  say(`${ada.member.name} claims the case: ${claimed.body.status}`)
  await until('Night Hawk to see the claim', async () => {
    const seen = await caseOf(hawk, studyUid)
    return seen !== undefined && seen.claimedBy !== null
  })
  const refused = await hawk.api<{ error: { message: string } }>('POST', `/api/worklist/${stroke.caseId}/claim`)
  say(`${hawk.member.name} tries to claim it too: ${refused.status} (${refused.body.error.message.slice(0, 60)}…)`)
  await ada.api('PUT', `${caseApi}/report`, {
    sections: {
      indication: 'Sudden left-sided weakness, onset 02:10.',
      technique: 'Non-contrast CT of the head, 5 mm axial.',
      comparison,
      findings: 'No intracranial haemorrhage.'
    }
  })
  await ada.api('POST', `${caseApi}/consult`, { peerId: hawk.peerId })
  say(`${ada.member.name} writes a draft and invites ${hawk.member.name} to co-author`)
  type Report = { sections?: { findings: string } }
  await until(
    'Night Hawk to hold the report',
    async () =>
      (await hawk.api<Report>('GET', `${caseApi}/report`)).body.sections?.findings.includes('haemorrhage') === true
  )
  // Each writes from the text both read (base): what the other wrote meanwhile is kept, whichever lands first.
  const base = { findings: 'No intracranial haemorrhage.' }
  await Promise.all([
    ada.api('PUT', `${caseApi}/report`, {
      sections: { findings: 'No intracranial haemorrhage. Hyperdense right MCA sign.' },
      base
    }),
    hawk.api('PUT', `${caseApi}/report`, {
      sections: { findings: 'Loss of grey-white differentiation in the right insula. No intracranial haemorrhage.' },
      base
    })
  ])
  const merged = await until('both readers to show the same findings', async () => {
    const [a, h] = await Promise.all([ada, hawk].map(async node => await node.api<Report>('GET', `${caseApi}/report`)))
    const findings = a?.body.sections?.findings
    return findings !== undefined && findings === h?.body.sections?.findings ? findings : undefined
  })
  say(`both edited the findings at the same moment; merged on both nodes: "${merged}"`)
  await criticalResult(site, ada, stroke.caseId, 'Acute right MCA territory infarct: call the stroke team now.')
  await ada.api('PUT', `${caseApi}/report`, {
    sections: { impression: 'Acute right MCA territory infarct. No haemorrhage. Stroke team informed.' }
  })
  type Signed = { status: string; signatures?: Array<{ verified: boolean }>; error?: { message: string } }
  const signed = await ada.api<Signed>('POST', `${caseApi}/report/sign`, { status: 'FINAL' })
  if (signed.status !== 200) throw new Error(`signing was refused: ${signed.body.error?.message ?? signed.status}`)
  const verified = signed.body.signatures?.every(s => s.verified) === true
  say(`${ada.member.name} signs: ${signed.body.status}, Ed25519 signature verified: ${verified}`)
  const completed = await until('the site to see the case COMPLETED', async () => {
    const found = await caseOf(site, studyUid)
    return found?.status === 'COMPLETED' ? found : undefined
  })
  const minutes = (Date.parse(completed.finalAt ?? '') - Date.parse(completed.createdAt)) / 60_000
  say(`${site.member.name} sees it COMPLETED: turnaround ${minutes.toFixed(1)} min against a 60 min STAT target`)
  await until("the SR in the site's archive", async () => {
    const { status, body } = await site.api<unknown[]>('GET', `/dicom-web/studies/${studyUid}/series?Modality=SR`)
    return status === 200 && body.length > 0
  })
  const fhir = await site.api<{ status: string; conclusion: string }>('GET', `${caseApi}/report/fhir`)
  say(
    `the signed report is in ${site.member.name}'s archive as a DICOM Basic Text SR (QIDO/WADO, a PACS sees it) ` +
      `and as FHIR DiagnosticReport (${fhir.body.status}): "${fhir.body.conclusion}"`
  )
  await reportToRis(site, ris, stroke.caseId)
  await queryStudy(site, studyUid)

  // A second opinion outside the worklist: the site shares a de-identified copy of the knee MR with Ada by hand.
  const knee = await until('the knee case', async () => await caseOf(site, mr.studyInstanceUid))
  say(
    `the knee MR is a ${knee.priority} msk case waiting on ${hawk.member.name}'s worklist; ${site.member.name} ` +
      `also asks ${ada.member.name} for a second opinion by hand ("radmesh share --deidentify")`
  )
  await deidentifiedShare(site, ada, knee.studyInstanceUid, 'DEMO^KNEE', 'the knee MR', knee.caseId)
  await writeNodesJson(state, [site, ada, hawk])
  await summary(state, [site, ada, hawk], studyUid, knee)
}

async function summary(state: string, running: Running[], studyUid: string, knee: Case): Promise<void> {
  const [site, ada, hawk] = running as [Running, Running, Running]
  const write = (text: string): void => {
    process.stdout.write(`${text}\n`)
  }
  write('\nradmesh demo: a consortium of one site and two radiologists, Noise-encrypted libp2p on loopback\n')
  for (const node of running) {
    write(
      `  ${node.member.name} (${node.member.role})\n    peer     ${node.peerId}\n` +
        `    members  ${(await peersOf(node)).length} connected\n    viewer   ${node.viewerUrl}\n`
    )
  }
  const studies = (await site.api<unknown[]>('GET', '/dicom-web/studies')).body.length
  write(
    `  ${site.member.name} archive: ${studies} stud${studies === 1 ? 'y' : 'ies'}, DICOM C-STORE at ` +
      `${AE_TITLE}@127.0.0.1:${site.dicomPort}, DICOMweb at ${site.http}/dicom-web\n`
  )
  write(
    `  stroke CT ${studyUid}: read by ${ada.member.name} and ${hawk.member.name}, report FINAL; ` +
      `knee MR: case ${knee.caseId} is open for you to claim\n`
  )
  write(
    `  open ${hawk.member.name}'s viewer URL in a browser (on this machine): the worklist has the knee MR to ` +
      'claim and read;\n  the stroke CT case shows its images and the FINAL report. A used link is spent: ' +
      'npx radmesh viewer --home HOME prints a new one.\n'
  )
  write(`state: ${state} (nodes.json lists each node's URL and API token)`)
  write(`try:   npx radmesh audit --home ${site.home} --verify`)
  write(`try:   npx radmesh status --home ${site.home}`)
  write(
    `try:   curl -H "Authorization: Bearer ${hawk.token}" ${hawk.http}/api/worklist   (${hawk.member.name}'s ` +
      `worklist; POST …/api/worklist/${knee.caseId}/claim to take the knee case)`
  )
  write('Ctrl-C stops every node.')
}

/** Says what went wrong, in one message and without a stack, then stops every node and exits 1. */
function fail(error: unknown): void {
  if (stopping) return
  process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}; stopping every node\n`)
  void stop(1)
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { state: { type: 'string' } } })
  const state = resolve(values.state ?? (await fs.mkdtemp(join(tmpdir(), 'radmesh-demo-'))))
  await fs.mkdir(state, { recursive: true })
  await ensureConsortium(state)
  const run = await runNumber(state)
  // The site's critical-result settings and its RIS, before its node starts (it reads both at start).
  await writeSiteRouting(join(state, 'site'))
  const [ris, pacs] = await Promise.all([startRis(), startPacs()])
  const siteArgs = [...(typeof ris === 'string' ? [] : ['--ris', `127.0.0.1:${ris.port}`]), ...pacsArgs(pacs)]
  await scenario(state, run, ris, pacs, await startNodes(state, siteArgs))
}

main().catch(fail)
