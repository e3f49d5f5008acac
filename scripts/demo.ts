/**
 * `npm run demo [-- --state DIR]`: a small radmesh consortium on this machine.
 *
 * Creates a consortium with one site and two radiologists (or reuses the one in DIR), starts each as its
 * own `radmesh start` process on loopback (the site with a DICOM port), waits until they are connected,
 * and walks through a night shift: the site's scanners send a stroke CT and a knee MR by C-STORE (DCMTK
 * storescu when installed, else `radmesh import`); the site's node routes them into cases on the readers'
 * worklists; the STAT CT is prefetched, claimed (the other reader is refused), co-written by two readers,
 * signed FINAL, and lands back at the site as a DICOM SR and a FHIR report. The knee case stays open. It
 * prints each node's viewer URL and runs until Ctrl-C. With --state DIR, DIR/nodes.json describes the nodes (see the README).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { promises as fs } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { generateCt } from './generate-ct.ts'

const ROOT = resolve(import.meta.dirname, '..')
const CLI = join(ROOT, 'bin/radmesh')
const { values } = parseArgs({ options: { state: { type: 'string' } } })
const state = resolve(values.state ?? await fs.mkdtemp(join(tmpdir(), 'radmesh-demo-')))
await fs.mkdir(state, { recursive: true })

const MEMBERS = [
  { key: 'site', name: 'Riverside Community Hospital', role: 'site', subspecialties: [] },
  { key: 'neuro', name: 'Dr Ada Neuro', role: 'radiologist', subspecialties: ['neuro'] },
  { key: 'nighthawk', name: 'Dr Night Hawk', role: 'radiologist', subspecialties: ['body', 'neuro', 'msk'] }
] as const

async function cli (args: string[]): Promise<string> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr.on('data', (c: Buffer) => { err += c.toString() })
  const [code] = await once(child, 'exit') as [number]
  if (code !== 0) throw new Error(`radmesh ${args.join(' ')}: ${err.trim()}`)
  return out
}

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  return port
}

const exists = async (path: string): Promise<boolean> => await fs.access(path).then(() => true, () => false)
const step = (text: string): void => { process.stdout.write(`• ${text}\n`) }

const consortiumDir = join(state, 'consortium')
if (!await exists(join(consortiumDir, 'consortium.json'))) {
  step(`creating consortium "Demo Teleradiology Network" in ${consortiumDir}`)
  await cli(['consortium', 'create', '--dir', consortiumDir, '--name', 'Demo Teleradiology Network'])
}
for (const member of MEMBERS) {
  const home = join(state, member.key)
  if (await exists(join(home, 'certificate.json'))) continue
  step(`init + admit ${member.name} (${member.role})`)
  await cli(['init', '--home', home, '--name', member.name, '--role', member.role, ...(member.subspecialties.length > 0 ? ['--subspecialty', member.subspecialties.join(',')] : [])])
  await cli(['consortium', 'admit', '--dir', consortiumDir, '--home', home])
}

interface Running { key: string, name: string, role: string, home: string, p2pPort: number, httpPort: number, dicomPort: number | null, peerId: string, viewerUrl: string, child: ChildProcess }
const running: Running[] = []
let stopping = false
async function stopAll (): Promise<void> {
  stopping = true
  await Promise.all(running.map(async node => {
    if (node.child.exitCode !== null) return
    const exited = once(node.child, 'exit')
    node.child.kill('SIGTERM')
    await exited
  }))
}
process.once('SIGINT', () => { void stopAll().then(() => process.exit(0)) })
process.once('SIGTERM', () => { void stopAll().then(() => process.exit(0)) })

for (const member of MEMBERS) {
  const home = join(state, member.key)
  const p2pPort = await freePort()
  const httpPort = await freePort()
  const dicomPort = member.role === 'site' ? await freePort() : null
  // Each radiologist dials every node started before it; the site dials no one and is found.
  const peers = running.flatMap(node => ['--peer', `/ip4/127.0.0.1/tcp/${node.p2pPort}/p2p/${node.peerId}`])
  const child = spawn(process.execPath, [CLI, 'start', '--home', home, '--listen', `/ip4/127.0.0.1/tcp/${p2pPort}`,
    '--http', `127.0.0.1:${httpPort}`, '--no-mdns', '--stable-after', '2s', ...(dicomPort === null ? [] : ['--dicom', String(dicomPort), '--ae', 'RADMESH']), ...peers], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr.on('data', (c: Buffer) => { process.stderr.write(`[${member.key}] ${c.toString()}`) })
  child.on('exit', code => { if (!stopping) process.stderr.write(`[${member.key}] exited with ${code}\n`) })
  const deadline = Date.now() + 30_000
  while (!/^viewer: /m.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${member.name} did not start: ${output}`)
    await new Promise(r => setTimeout(r, 50))
  }
  running.push({
    key: member.key, name: member.name, role: member.role, home, p2pPort, httpPort, dicomPort, child,
    peerId: /peer (\S+)/.exec(output)?.[1] ?? '',
    viewerUrl: /^viewer: (\S+)$/m.exec(output)?.[1] ?? ''
  })
  step(`started ${member.name}`)
}

const token = async (home: string): Promise<string> => (await fs.readFile(join(home, 'api-token'), 'utf8')).trim()
async function peerCount (node: Running): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${node.httpPort}/api/peers`, { headers: { authorization: `Bearer ${await token(node.home)}` } })
  return (await response.json() as unknown[]).length
}
const deadline = Date.now() + 20_000
while (Date.now() < deadline) {
  const counts = await Promise.all(running.map(peerCount))
  if (counts.every(n => n === running.length - 1)) break
  await new Promise(r => setTimeout(r, 200))
}

// HTTP API of a node, with its token.
async function api<T> (node: Running, method: string, path: string, body?: unknown): Promise<{ status: number, body: T }> {
  const response = await fetch(`http://127.0.0.1:${node.httpPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${await token(node.home)}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return { status: response.status, body: await response.json() as T }
}
async function until<T> (what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > end) throw new Error(`the demo gave up waiting for ${what}`)
    await new Promise(r => setTimeout(r, 200))
  }
}

const site = running.find(node => node.role === 'site') as Running
const [ada, hawk] = running.filter(node => node.role === 'radiologist') as [Running, Running]
interface Case { caseId: string, studyInstanceUid: string, priority: string, subspecialty: string, status: string, claimedBy: string | null, createdAt: string, dueAt: string, claimedAt: string | null, finalAt: string | null }
// Every member's certificate reaches the site through the worklist before a study is routed.
await until('the site to know both radiologists', async () => (await api<unknown[]>(site, 'GET', '/api/duty')).body.length === 2 ? true : undefined)

// Feed the site studies, as its scanners would: a stroke CT (STAT, neuro) and a knee MR (routine, msk).
async function send (dir: string, description: string): Promise<void> {
  const storescu = spawn('storescu', ['-aec', 'RADMESH', '-aet', 'DEMO_SCANNER', '+sd', '+r', '127.0.0.1', String(site.dicomPort), dir], { stdio: 'ignore', env: { ...process.env, TCP_NODELAY: '1' } })
  const [code] = await once(storescu, 'exit').catch(() => [-1]) as [number]
  if (code === 0) step(`scanner (storescu) sent ${description} to ${site.name} by C-STORE`)
  else {
    await cli(['import', '--home', site.home, dir])
    step(`imported ${description} into ${site.name} (DCMTK storescu not installed)`)
  }
}
const ctDir = join(state, 'incoming-ct')
if (!await exists(ctDir)) await generateCt({ out: ctDir, slices: 40, series: 2, rows: 256, columns: 256, patientName: 'DEMO^STROKE', studyDescription: 'CT HEAD STROKE PROTOCOL', bodyPart: 'HEAD', seed: 2026 })
const mrDir = join(state, 'incoming-mr')
if (!await exists(mrDir)) await generateCt({ out: mrDir, slices: 12, rows: 128, columns: 128, patientName: 'DEMO^KNEE', studyDescription: 'MRI KNEE', bodyPart: 'KNEE', modality: 'MR', seed: 2027 })
await send(ctDir, 'a CT head (stroke protocol)')
await send(mrDir, 'an MR knee')

// The site's node turns each stable study into a case, routed by modality, body part and description.
const stroke = await until('the stroke case on Dr Ada\'s worklist', async () => (await api<Case[]>(ada, 'GET', '/api/worklist')).body.find(c => c.priority === 'STAT'))
step(`${site.name} published case ${stroke.caseId}: ${stroke.priority} ${stroke.subspecialty}, due ${stroke.dueAt} (on both neuro readers' worklists; no patient data in the worklist)`)
// STAT: the readers on duty prefetch the study at once, end to end encrypted, from whoever holds it.
const studyUid = stroke.studyInstanceUid
for (const reader of [ada, hawk]) {
  const started = Date.now()
  await cli(['fetch', '--home', reader.home, studyUid, '--timeout', '60'])
  const { body } = await api<{ instancesTotal: number, bytesTotal: number }>(reader, 'GET', `/api/studies/${studyUid}/availability`)
  step(`${reader.name} has the ${body.instancesTotal} images (${(body.bytesTotal / 1e6).toFixed(1)} MB, AES-256-GCM chunks, key wrapped for them) ${((Date.now() - started) / 1000).toFixed(1)} s after asking: prefetched because STAT`)
}

// Reading: Ada claims, Night Hawk is refused, Ada writes, consults Night Hawk, both write, Ada signs.
const claimed = await api<Case>(ada, 'POST', `/api/worklist/${stroke.caseId}/claim`)
step(`${ada.name} claims the case: ${claimed.body.status}`)
await until('Night Hawk to see the claim', async () => (await api<Case[]>(hawk, 'GET', '/api/worklist')).body.find(c => c.caseId === stroke.caseId && c.claimedBy !== null))
const refused = await api<{ error: { message: string } }>(hawk, 'POST', `/api/worklist/${stroke.caseId}/claim`)
step(`${hawk.name} tries to claim it too: ${refused.status} (${refused.body.error.message.slice(0, 60)}…)`)
await api(ada, 'PUT', `/api/cases/${stroke.caseId}/report`, { sections: { indication: 'Sudden left-sided weakness, onset 02:10.', technique: 'Non-contrast CT of the head, 5 mm axial.', comparison: 'None.', findings: 'No intracranial haemorrhage.' } })
await api(ada, 'POST', `/api/cases/${stroke.caseId}/consult`, { peerId: hawk.peerId })
step(`${ada.name} writes a draft and invites ${hawk.name} to co-author`)
await until('Night Hawk to hold the report', async () => (await api<{ sections?: { findings: string } }>(hawk, 'GET', `/api/cases/${stroke.caseId}/report`)).body.sections?.findings.includes('haemorrhage') === true ? true : undefined)
// Each writes from the text both read (base): what the other wrote meanwhile is kept, whichever lands first.
const base = { findings: 'No intracranial haemorrhage.' }
await Promise.all([
  api(ada, 'PUT', `/api/cases/${stroke.caseId}/report`, { sections: { findings: 'No intracranial haemorrhage. Hyperdense right MCA sign.' }, base }),
  api(hawk, 'PUT', `/api/cases/${stroke.caseId}/report`, { sections: { findings: 'Loss of grey-white differentiation in the right insula. No intracranial haemorrhage.' }, base })
])
const merged = await until('both readers to show the same findings', async () => {
  const [a, h] = await Promise.all([api<{ sections: { findings: string } }>(ada, 'GET', `/api/cases/${stroke.caseId}/report`), api<{ sections: { findings: string } }>(hawk, 'GET', `/api/cases/${stroke.caseId}/report`)])
  return a.body.sections.findings === h.body.sections.findings ? a.body.sections.findings : undefined
})
step(`both edited the findings at the same moment; merged on both nodes: "${merged}"`)
await api(ada, 'PUT', `/api/cases/${stroke.caseId}/report`, { sections: { impression: 'Acute right MCA territory infarct. No haemorrhage. Stroke team informed.' } })
const signed = await api<{ status: string, signatures: Array<{ name: string, verified: boolean }> }>(ada, 'POST', `/api/cases/${stroke.caseId}/report/sign`, { status: 'FINAL' })
step(`${ada.name} signs: ${signed.body.status}, Ed25519 signature verified: ${signed.body.signatures.every(s => s.verified)}`)
const completed = await until('the site to see the case COMPLETED', async () => (await api<Case[]>(site, 'GET', '/api/worklist')).body.find(c => c.caseId === stroke.caseId && c.status === 'COMPLETED'))
const minutes = (Date.parse(completed.finalAt as string) - Date.parse(completed.createdAt)) / 60_000
step(`${site.name} sees it COMPLETED: turnaround ${minutes.toFixed(1)} min against a 60 min STAT target`)
await until('the SR in the site\'s archive', async () => {
  const { status, body } = await api<unknown[]>(site, 'GET', `/dicom-web/studies/${studyUid}/series?Modality=SR`)
  return status === 200 && body.length > 0 ? true : undefined
})
const fhir = await api<{ status: string, conclusion: string }>(site, 'GET', `/api/cases/${stroke.caseId}/report/fhir`)
step(`the signed report is in ${site.name}'s archive as a DICOM Basic Text SR (QIDO/WADO, a PACS sees it) and as FHIR DiagnosticReport (${fhir.body.status}): "${fhir.body.conclusion}"`)

// A second opinion outside the worklist: the site shares the knee MR with Ada by hand.
const knee = await until('the knee case', async () => (await api<Case[]>(site, 'GET', '/api/worklist')).body.find(c => c.subspecialty === 'msk'))
await cli(['share', '--home', site.home, knee.studyInstanceUid, '--to', ada.peerId])
step(`the knee MR is a ${knee.priority} msk case waiting on ${hawk.name}'s worklist; ${site.name} also shared it with ${ada.name} by hand ("radmesh share")`)
const fetched = [ada.name, hawk.name]

const nodes = await Promise.all(running.map(async node => ({
  name: node.name,
  role: node.role,
  peerId: node.peerId,
  home: node.home,
  http: `http://127.0.0.1:${node.httpPort}`,
  token: await token(node.home),
  viewerUrl: node.viewerUrl,
  dicomPort: node.dicomPort,
  aeTitle: node.dicomPort === null ? null : 'RADMESH'
})))
await fs.writeFile(join(state, 'nodes.json'), `${JSON.stringify(nodes, null, 2)}\n`, { mode: 0o600 })

process.stdout.write('\nradmesh demo: a consortium of one site and two radiologists, Noise-encrypted libp2p on loopback\n\n')
for (const node of running) {
  process.stdout.write(`  ${node.name} (${node.role})\n    peer     ${node.peerId}\n    members  ${await peerCount(node)} connected\n    viewer   ${node.viewerUrl}\n\n`)
}
const token0 = await token(site.home)
const studies = await (await fetch(`http://127.0.0.1:${site.httpPort}/dicom-web/studies`, { headers: { authorization: `Bearer ${token0}` } })).json() as Array<Record<string, { Value?: unknown[] }>>
process.stdout.write(`  ${site.name} archive: ${studies.length} stud${studies.length === 1 ? 'y' : 'ies'}, DICOM C-STORE at RADMESH@127.0.0.1:${site.dicomPort}, DICOMweb at http://127.0.0.1:${site.httpPort}/dicom-web\n\n`)
process.stdout.write(`  stroke CT ${studyUid}: read by ${fetched.join(' and ')}, report FINAL; knee MR: case ${knee.caseId} is open for you to claim\n\n`)
process.stdout.write(`  open ${hawk.name}'s viewer URL in a browser (on this machine): the worklist has the knee MR to claim and read;\n  the stroke CT case shows its images and the FINAL report. A used link is spent: npx radmesh viewer --home HOME prints a new one.\n\n`)
process.stdout.write(`state: ${state} (nodes.json lists each node's URL and API token)\n`)
process.stdout.write('try:   npx radmesh audit --home ' + join(state, 'site') + ' --verify\n')
process.stdout.write('try:   npx radmesh status --home ' + join(state, 'site') + '\n')
process.stdout.write(`try:   curl -H "Authorization: Bearer ${await token(hawk.home)}" http://127.0.0.1:${hawk.httpPort}/api/worklist   (${hawk.name}'s worklist; POST …/api/worklist/${knee.caseId}/claim to take the knee case)\n`)
process.stdout.write('Ctrl-C stops every node.\n')
