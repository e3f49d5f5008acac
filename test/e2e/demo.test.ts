/**
 * `npm run demo -- --state DIR`: starts the consortium, writes nodes.json as the contract says, and every
 * node in it answers with its peers; Ctrl-C stops all of them.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ROOT, tempDir, waitFor } from '../helpers/processes.ts'

interface NodeEntry { name: string, role: string, peerId: string, home: string, http: string, token: string, viewerUrl: string, dicomPort: number | null, aeTitle: string | null }

test('the demo starts a site and two radiologists, all connected, described in nodes.json, and reads a stroke CT from scanner to signed report back at the site', async () => {
  const state = await tempDir('radmesh-demo-test-')
  const demo = spawn(process.execPath, [join(ROOT, 'scripts/demo.ts'), '--state', state], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  demo.stdout.on('data', (c: Buffer) => { output += c.toString() })
  demo.stderr.on('data', (c: Buffer) => { output += c.toString() })
  try {
    await waitFor('the demo to be ready', () => /Ctrl-C stops every node/.test(output), 150_000, 100)
    const nodes = JSON.parse(await fs.readFile(join(state, 'nodes.json'), 'utf8')) as NodeEntry[]
    assert.equal(nodes.map(n => n.role).sort(), ['radiologist', 'radiologist', 'site'])
    for (const node of nodes) {
      for (const key of ['name', 'role', 'peerId', 'home', 'http', 'token', 'viewerUrl', 'dicomPort', 'aeTitle']) assert.ok(key in node, key)
      assert.match(node.http, /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.ok(node.viewerUrl.startsWith(`${node.http}/`))
      const health = await (await fetch(`${node.http}/api/health`)).json() as { peerId: string }
      assert.is(health.peerId, node.peerId)
      const peers = await (await fetch(`${node.http}/api/peers`, { headers: { authorization: `Bearer ${node.token}` } })).json() as Array<{ peerId: string }>
      assert.equal(peers.map(p => p.peerId).sort(), nodes.filter(n => n !== node).map(n => n.peerId).sort())
    }
    const site = nodes.find(n => n.role === 'site') as NodeEntry
    assert.is(typeof site.dicomPort, 'number')
    assert.is(site.aeTitle, 'RADMESH')
    const get = async <T>(node: NodeEntry, path: string): Promise<T> => await (await fetch(`${node.http}${path}`, { headers: { authorization: `Bearer ${node.token}` } })).json() as T
    const studies = await get<Array<Record<string, { Value?: unknown[] }>>>(site, '/dicom-web/studies')
    assert.is(studies.length, 2, 'the demo feeds the site a CT and an MR')
    const ct = studies.find(s => s['00081030']?.Value?.[0] === 'CT HEAD STROKE PROTOCOL')
    assert.equal(ct?.['00201208']?.Value, [81], '80 CT images and the SR of the signed report')
    const studyUid = ct?.['0020000D']?.Value?.[0] as string
    for (const reader of nodes.filter(n => n.role === 'radiologist')) {
      const availability = await get<{ complete: boolean, instancesLocal: number }>(reader, `/api/studies/${studyUid}/availability`)
      assert.equal({ complete: availability.complete, instancesLocal: availability.instancesLocal }, { complete: true, instancesLocal: 80 }, `${reader.name} fetched the study`)
    }
    const cases = await get<Array<{ caseId: string, priority: string, status: string, finalAt: string | null }>>(site, '/api/worklist')
    // Open cases first (by priority, then due time), then the ones closed, latest first.
    assert.equal(cases.map(c => `${c.priority} ${c.status}`), ['ROUTINE SCHEDULED', 'STAT COMPLETED'])
    const stroke = cases.find(c => c.priority === 'STAT')
    const report = await get<{ status: string, signatures: Array<{ verified: boolean }> }>(nodes.find(n => n.name === 'Dr Ada Neuro') as NodeEntry, `/api/cases/${stroke?.caseId}/report`)
    assert.is(report.status, 'FINAL')
    assert.ok(report.signatures.length === 1 && report.signatures[0]?.verified === true)
    const fhir = await get<{ resourceType: string, status: string }>(site, `/api/cases/${stroke?.caseId}/report/fhir`)
    assert.equal([fhir.resourceType, fhir.status], ['DiagnosticReport', 'final'])
    // Each viewer URL signs a browser in: a session cookie, then the page and its bundle.
    for (const node of nodes) {
      const signIn = await fetch(node.viewerUrl, { redirect: 'manual' })
      assert.is(signIn.status, 302, `${node.name}'s viewer link`)
      const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
      const session = await (await fetch(`${node.http}/api/session`, { headers: { cookie } })).json() as { actor: string, name: string }
      assert.equal([session.actor, session.name], ['viewer', node.name])
      assert.match(await (await fetch(`${node.http}/`)).text(), node.name)
      const bundle = await fetch(`${node.http}/viewer/app.js`)
      assert.equal([bundle.status, bundle.headers.get('content-type')], [200, 'text/javascript; charset=utf-8'])
    }
    const exited = once(demo, 'exit')
    demo.kill('SIGINT')
    await exited
    for (const node of nodes) {
      await fetch(`${node.http}/api/health`).then(() => assert.unreachable(`${node.name} still answers after Ctrl-C`), () => {})
    }
  } finally {
    demo.kill('SIGKILL')
  }
})

test.run()
