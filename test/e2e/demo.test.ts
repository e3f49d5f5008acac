/**
 * `npm run demo -- --state DIR`: starts the consortium, writes nodes.json as the README says, and every node
 * in it answers with its peers; a second run on the same DIR plays the scenario again on new studies; Ctrl-C
 * (SIGINT) and SIGTERM each stop every node the demo started, and a node that cannot start is reported in its
 * own words. The tests run in order on one DIR, as a user would run the demo again and again.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ROOT } from '../../scripts/lib/cli.ts'
import { startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

interface NodeEntry {
  name: string
  role: string
  peerId: string
  home: string
  http: string
  token: string
  viewerUrl: string
  dicomPort: number | null
  aeTitle: string | null
}
interface Demo {
  child: ChildProcess
  output: () => string
}

const READY = /Ctrl-C stops every node/
/** A demo run on this machine takes about half a minute; under a loaded test run, more. */
const READY_MS = 150_000
let state = ''
/** The de-identified copies the runs shared, each a study of its own in the site's archive. */
const copies: string[] = []

/** The walk-through's lines after the report: critical result, HL7 into the RIS, C-FIND, the de-identified share. */
function assertLaterSteps(output: string): void {
  const escalated = 'escalated to Dr Sam Chief after \\d+ s, acknowledged by Dr Sam Chief'
  assert.match(output, new RegExp(`^• critical result raised by Dr Ada Neuro, ${escalated}`, 'm'))
  assert.match(output, /^• ORU\^R01 accepted by the RIS \(AA\) .*parsed by python3-hl7: ORU\^R01\^ORU_R01 v2\.5\.1/m)
  assert.match(output, /^• C-FIND: 1 study \(findscu as DEMO_PACS .*CT HEAD STROKE PROTOCOL, CT\\SR, 81 instances/m)
  assert.match(output, /^• prior found in the PACS .*: Dr Ada Neuro holds CT HEAD of 2023-01-15 \(20 images\)/m)
  const shared = /^• de-identified copy (2\.25\.\d+) of the knee MR shared with Dr Ada Neuro for a second opinion: /m
  const copy = shared.exec(output)?.[1]
  assert.ok(copy !== undefined, 'the de-identified share is shown')
  assert.match(output, new RegExp(`^• de-identified copy ${copy} .*: no patient name in it`, 'm'))
  assert.match(output, /^• the critical result went to the RIS too: ORU\^R01 status P, OBX-8 AA, delivered \(AA\)/m)
  assert.match(output, /^• Dr Ada Neuro signed the second opinion on the copy's own case .*came back to/m)
  copies.push(copy)
}

function runDemo(): Demo {
  const child = spawn(process.execPath, [join(ROOT, 'scripts/demo.ts'), '--state', state], {
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (c: Buffer) => {
    output += c.toString()
  })
  child.stderr.on('data', (c: Buffer) => {
    output += c.toString()
  })
  return { child, output: () => output }
}

/** The pids of the `radmesh start` processes whose HOME is under `state`, read from /proc. */
async function nodePids(): Promise<number[]> {
  const pids: number[] = []
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const args = (await fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0')
    const at = args.indexOf('--home')
    if (args.includes('start') && at >= 0 && args[at + 1]?.startsWith(`${state}/`) === true) pids.push(Number(name))
  }
  return pids
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Sends `signal` to the demo, waits for it to exit, and checks that every node it had started is gone. */
async function stopDemo(demo: Demo, signal: NodeJS.Signals): Promise<number | null> {
  const pids = await nodePids()
  assert.is(pids.length, 3, `three node processes run on ${state}`)
  const exited = once(demo.child, 'exit') as Promise<[number | null]>
  demo.child.kill(signal)
  const [code] = await exited
  assert.equal(pids.filter(alive), [], `every node is gone once the demo has exited on ${signal}`)
  return code
}

/** Whatever a failed test left running: the demo, then its nodes. */
async function cleanUp(demo: Demo): Promise<void> {
  if (demo.child.exitCode === null && demo.child.signalCode === null) {
    const exited = once(demo.child, 'exit')
    demo.child.kill('SIGTERM')
    await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 15_000))])
  }
  for (const pid of (await nodePids()).filter(alive)) process.kill(pid, 'SIGKILL')
}

const get = async <T>(node: NodeEntry, path: string): Promise<T> =>
  (await (await fetch(`${node.http}${path}`, { headers: { authorization: `Bearer ${node.token}` } })).json()) as T
const readNodes = async (): Promise<NodeEntry[]> =>
  JSON.parse(await fs.readFile(join(state, 'nodes.json'), 'utf8')) as NodeEntry[]
type Studies = Array<Record<string, { Value?: unknown[] }>>
type Cases = Array<{ caseId: string; studyInstanceUid: string; priority: string; status: string }>

test.before(async () => {
  state = await tempDir('radmesh-demo-test-')
})

test(
  'the demo starts a site and two radiologists, all connected, described in nodes.json, and reads a stroke CT ' +
    'from scanner to signed report back at the site; Ctrl-C stops every node',
  async () => {
    const demo = runDemo()
    try {
      await waitFor('the demo to be ready', () => READY.test(demo.output()), READY_MS, 100)
      assertLaterSteps(demo.output())
      const nodes = await readNodes()
      assert.equal(nodes.map(n => n.role).sort(), ['radiologist', 'radiologist', 'site'])
      for (const node of nodes) {
        for (const key of ['name', 'role', 'peerId', 'home', 'http', 'token', 'viewerUrl', 'dicomPort', 'aeTitle']) {
          assert.ok(key in node, key)
        }
        assert.match(node.http, /^http:\/\/127\.0\.0\.1:\d+$/)
        assert.ok(node.viewerUrl.startsWith(`${node.http}/`))
        const health = (await (await fetch(`${node.http}/api/health`)).json()) as { peerId: string }
        assert.is(health.peerId, node.peerId)
        const peers = await get<Array<{ peerId: string }>>(node, '/api/peers')
        assert.equal(
          peers.map(p => p.peerId).sort(),
          nodes
            .filter(n => n !== node)
            .map(n => n.peerId)
            .sort()
        )
      }
      const site = nodes.find(n => n.role === 'site') as NodeEntry
      assert.is(typeof site.dicomPort, 'number')
      assert.is(site.aeTitle, 'RADMESH')
      const studies = (await get<Studies>(site, '/dicom-web/studies')).filter(
        s => !copies.includes(s['0020000D']?.Value?.[0] as string)
      )
      // The stroke patient's prior, retrieved from the PACS (Orthanc): a study of the archive, not a case.
      assert.is(studies.length, 3, 'the demo feeds the site a CT and an MR, and the CT brings a prior')
      assert.ok(studies.some(s => s['00081030']?.Value?.[0] === 'CT HEAD'))
      const ct = studies.find(s => s['00081030']?.Value?.[0] === 'CT HEAD STROKE PROTOCOL')
      assert.equal(ct?.['00201208']?.Value, [81], '80 CT images and the SR of the signed report')
      const studyUid = ct?.['0020000D']?.Value?.[0] as string
      for (const reader of nodes.filter(n => n.role === 'radiologist')) {
        const availability = await get<{ complete: boolean; instancesLocal: number }>(
          reader,
          `/api/studies/${studyUid}/availability`
        )
        // 80 CT images; 81 once the reader has followed the study's newer version, with the report's SR.
        assert.ok(
          availability.complete && [80, 81].includes(availability.instancesLocal),
          `${reader.name} fetched the study: ${JSON.stringify(availability)}`
        )
      }
      const cases = (await get<Cases>(site, '/api/worklist')).filter(c => !copies.includes(c.studyInstanceUid))
      // Open cases first (by priority, then due time), then the ones closed, latest first.
      assert.equal(
        cases.map(c => `${c.priority} ${c.status}`),
        ['ROUTINE SCHEDULED', 'STAT COMPLETED']
      )
      const stroke = cases.find(c => c.priority === 'STAT')
      const ada = nodes.find(n => n.name === 'Dr Ada Neuro') as NodeEntry
      const report = await get<{ status: string; signatures: Array<{ verified: boolean }> }>(
        ada,
        `/api/cases/${stroke?.caseId}/report`
      )
      assert.is(report.status, 'FINAL')
      assert.ok(report.signatures.length === 1 && report.signatures[0]?.verified === true)
      const fhir = await get<{ resourceType: string; status: string }>(site, `/api/cases/${stroke?.caseId}/report/fhir`)
      assert.equal([fhir.resourceType, fhir.status], ['DiagnosticReport', 'final'])
      type Critical = { caseId: string; acknowledged: { by: string } | null; escalations: unknown[] }
      const critical = (await get<Critical[]>(site, '/api/critical')).filter(c => c.caseId === stroke?.caseId)
      assert.equal(
        critical.map(c => [c.acknowledged?.by, c.escalations.length]),
        [['Dr Sam Chief', 2]]
      )
      type Delivered = { delivery: { hl7: Array<{ resultStatus: string; state: string; ack?: { code: string } }> } }
      const { delivery } = await get<Delivered>(site, `/api/cases/${stroke?.caseId}/report`)
      assert.equal(
        delivery.hl7.map(d => [d.resultStatus, d.state, d.ack?.code]),
        [
          ['F', 'delivered', 'AA'],
          ['P', 'delivered', 'AA']
        ]
      )
      const copy = await get<Studies>(ada, `/dicom-web/studies/${copies[0]}/metadata`)
      assert.is(copy.length, 12, 'Dr Ada holds the de-identified copy of the knee MR')
      assert.ok(
        copy.every(instance => instance['00120062']?.Value?.[0] === 'YES'),
        'Patient Identity Removed'
      )
      // Each viewer URL signs a browser in: a session cookie, then the page and its bundle.
      for (const node of nodes) {
        const signIn = await fetch(node.viewerUrl, { redirect: 'manual' })
        assert.is(signIn.status, 302, `${node.name}'s viewer link`)
        const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
        const session = (await (await fetch(`${node.http}/api/session`, { headers: { cookie } })).json()) as {
          actor: string
          name: string
        }
        assert.equal([session.actor, session.name], ['viewer', node.name])
        assert.match(await (await fetch(`${node.http}/`)).text(), node.name)
        const bundle = await fetch(`${node.http}/viewer/app.js`)
        assert.equal([bundle.status, bundle.headers.get('content-type')], [200, 'text/javascript; charset=utf-8'])
      }
      assert.is(await stopDemo(demo, 'SIGINT'), 0)
      for (const node of nodes) {
        await fetch(`${node.http}/api/health`).then(
          () => assert.unreachable(`${node.name} still answers`),
          () => {}
        )
      }
    } finally {
      await cleanUp(demo)
    }
  }
)

test(
  'a second run on the same state plays the scenario on new studies and rewrites nodes.json; SIGTERM stops ' +
    'every node',
  async () => {
    const before = await readNodes()
    const demo = runDemo()
    try {
      await waitFor('the second run to be ready', () => READY.test(demo.output()), READY_MS, 100)
      assert.not.match(demo.output(), /^\s+at /m, 'no stack trace')
      assertLaterSteps(demo.output())
      const nodes = await readNodes()
      assert.equal(
        nodes.map(n => n.peerId),
        before.map(n => n.peerId),
        'the same members'
      )
      assert.ok(
        nodes.every((node, i) => node.viewerUrl !== before[i]?.viewerUrl),
        'the nodes of this run'
      )
      const site = nodes.find(n => n.role === 'site') as NodeEntry
      const studies = (await get<Studies>(site, '/dicom-web/studies')).filter(
        s => !copies.includes(s['0020000D']?.Value?.[0] as string)
      )
      assert.is(studies.length, 5, "a new CT and a new MR beside the first run's (the prior is the same)")
      const cases = (await get<Cases>(site, '/api/worklist')).filter(c => !copies.includes(c.studyInstanceUid))
      assert.equal(cases.map(c => `${c.priority} ${c.status}`).sort(), [
        'ROUTINE SCHEDULED',
        'ROUTINE SCHEDULED',
        'STAT COMPLETED',
        'STAT COMPLETED'
      ])
      assert.is(new Set(cases.map(c => c.studyInstanceUid)).size, 4)
      assert.is(await stopDemo(demo, 'SIGTERM'), 0)
    } finally {
      await cleanUp(demo)
    }
  }
)

test(
  'a node that cannot start is reported in its own words, without a stack, and the demo stops the nodes it ' +
    'had started',
  async () => {
    // Another node already runs on Dr Ada's HOME: the site starts, then Dr Ada's node refuses the locked HOME.
    const squatter = await startNode(join(state, 'neuro'))
    const demo = runDemo()
    try {
      const [code] = (await once(demo.child, 'exit')) as [number | null]
      assert.is(code, 1)
      assert.match(demo.output(), /^\[neuro\] radmesh: .*another radmesh node is running on this HOME/m)
      assert.match(demo.output(), /^demo: Dr Ada Neuro did not start/m)
      assert.not.match(demo.output(), /^\s+at /m, 'no stack trace')
      assert.equal(await nodePids(), [squatter.process.pid], 'only the node the demo did not start is left')
    } finally {
      await squatter.stop()
      await cleanUp(demo)
    }
  }
)

test.run()
