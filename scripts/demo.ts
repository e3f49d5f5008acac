/**
 * `npm run demo [-- --state DIR]`: a small radmesh consortium on this machine.
 *
 * Creates a consortium with one site and two radiologists (or reuses the one in DIR), starts each as its
 * own `radmesh start` process on loopback (the site with a DICOM port), waits until they are connected,
 * sends the site a synthetic CT study by C-STORE (DCMTK storescu when installed, else `radmesh import`),
 * prints each node's viewer URL, and runs until Ctrl-C. With --state DIR, DIR/nodes.json describes the nodes (see the README).
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
    '--http', `127.0.0.1:${httpPort}`, '--no-mdns', ...(dicomPort === null ? [] : ['--dicom', String(dicomPort), '--ae', 'RADMESH']), ...peers], { stdio: ['ignore', 'pipe', 'pipe'] })
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

// Feed the site a study, as its CT scanner would.
const site = running.find(node => node.role === 'site') as Running
const studyDir = join(state, 'incoming-ct')
if (!await exists(studyDir)) await generateCt({ out: studyDir, slices: 40, series: 2, rows: 256, columns: 256, patientName: 'DEMO^STROKE', studyDescription: 'CT HEAD WITHOUT CONTRAST', seed: 2026 })
const storescu = spawn('storescu', ['-aec', 'RADMESH', '-aet', 'DEMO_CT', '+sd', '+r', '127.0.0.1', String(site.dicomPort), studyDir], { stdio: 'ignore', env: { ...process.env, TCP_NODELAY: '1' } })
const [storescuCode] = await once(storescu, 'exit').catch(() => [-1]) as [number]
if (storescuCode === 0) step(`CT scanner (storescu) sent ${studyDir} to ${site.name} by C-STORE`)
else {
  await cli(['import', '--home', site.home, studyDir])
  step(`imported ${studyDir} into ${site.name} (DCMTK storescu not installed)`)
}

// Share the study with both radiologists, end to end encrypted; each fetches it from whoever holds it.
const studyUid = await (async () => {
  const response = await fetch(`http://127.0.0.1:${site.httpPort}/dicom-web/studies?PatientName=DEMO*`, { headers: { authorization: `Bearer ${await token(site.home)}` } })
  const list = await response.json() as Array<Record<string, { Value?: string[] }>>
  return list[0]?.['0020000D']?.Value?.[0] as string
})()
const readers = running.filter(node => node.role === 'radiologist')
await cli(['share', '--home', site.home, studyUid, ...readers.flatMap(reader => ['--to', reader.peerId])])
step(`${site.name} shared study ${studyUid} with ${readers.map(r => r.name).join(' and ')} (key wrapped for each; chunks AES-256-GCM)`)
const fetched: string[] = []
for (const reader of readers) {
  const started = Date.now()
  await cli(['fetch', '--home', reader.home, studyUid, '--timeout', '60'])
  const response = await fetch(`http://127.0.0.1:${reader.httpPort}/api/studies/${studyUid}/availability`, { headers: { authorization: `Bearer ${await token(reader.home)}` } })
  const availability = await response.json() as { instancesTotal: number, bytesTotal: number, sources?: Record<string, number> }
  const from = Object.entries(availability.sources ?? {}).filter(([, bytes]) => bytes > 0).map(([peer, bytes]) => `${running.find(n => n.peerId === peer)?.name ?? peer} ${(bytes / 1e6).toFixed(1)} MB`)
  step(`${reader.name} fetched ${availability.instancesTotal} instances (${(availability.bytesTotal / 1e6).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s${from.length > 0 ? ` from ${from.join(' + ')}` : ' (already local)'}`)
  fetched.push(reader.name)
}

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
process.stdout.write(`  study ${studyUid} is readable by ${fetched.join(' and ')}: WADO-RS on their nodes returns the site's exact bytes\n\n`)
process.stdout.write(`state: ${state} (nodes.json lists each node's URL and API token)\n`)
process.stdout.write('try:   npx radmesh audit --home ' + join(state, 'site') + ' --verify\n')
process.stdout.write('try:   npx radmesh status --home ' + join(state, 'site') + '\n')
process.stdout.write('Ctrl-C stops every node.\n')
