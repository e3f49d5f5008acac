/**
 * Critical results end to end, in separate processes over real libp2p: a reader flags a finding on a case routed
 * to it -> the site lists it at /api/critical within seconds and its webhook gets the notice -> unacknowledged
 * past its deadline (seconds here, from routing.json) it escalates to the next person on the call list -> the
 * reader records a call -> the site acknowledges it by name -> the reader sees the acknowledgement; /api/tat
 * counts it.
 */
import { promises as fs } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import { createScratchConsortium, type ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { connected, p2pAddr, type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

interface Critical {
  id: string
  caseId: string
  level: string
  text: string
  by: string
  byName: string | null
  acknowledged: { by: string; role: string; at: string } | null
  escalations: Array<{ step: number; at: string; notify: string | null }>
  overdue: boolean
  calls: Array<{ by: string; note: string; at: string }>
}
interface Notice {
  event: string
  step: number
  notify: string | null
  critical: Critical
}

let consortium: ScratchConsortium
const started: StartedNode[] = []
let receiver: Server
const notices: Notice[] = []

test.before(async () => {
  consortium = await createScratchConsortium('Critical')
  receiver = createServer((request, response) => {
    let body = ''
    request.on('data', chunk => {
      body += chunk
    })
    request.on('end', () => {
      notices.push(JSON.parse(body) as Notice)
      response.end('ok')
    })
  })
  await new Promise<void>(resolve => receiver.listen(0, '127.0.0.1', resolve))
})

test.after(async () => {
  await Promise.all(
    started.map(async node => {
      await node.kill()
    })
  )
  receiver.close()
})

async function start(home: string, peers: StartedNode[] = [], dicom = false): Promise<StartedNode> {
  const node = await startNode(home, { dicom, peers: peers.map(p2pAddr), extraArgs: ['--stable-after', '1s'] })
  started.push(node)
  return node
}

test('flagged -> listed at the site, webhook told -> escalated -> call recorded -> acknowledged by name', async () => {
  const webhook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/critical`
  // Three seconds to acknowledge a critical result: the deadline passes within the test.
  const critical = { deadlines: { critical: 0.05 }, callList: ['Dr Ward', webhook, 'Dr Chief'] }
  const siteHome = await consortium.member('County Hospital', 'site')
  await fs.writeFile(join(siteHome, 'routing.json'), JSON.stringify({ critical }))
  const readerHome = await consortium.member('Dr Alice Neuro', 'radiologist', [], ['--subspecialty', 'neuro'])
  // The reader's node derives escalations with the same deadlines (the consortium's policy).
  await fs.writeFile(join(readerHome, 'routing.json'), JSON.stringify({ critical: { deadlines: critical.deadlines } }))
  const site = await start(siteHome, [], true)
  const reader = await start(readerHome, [site])
  await connected(site, reader)
  await waitFor(
    'the site to know the reader',
    async () => (await site.api<unknown[]>('GET', '/api/duty')).body.length === 1,
    15_000
  )

  const dir = await tempDir()
  await generateCt({
    out: dir,
    slices: 4,
    series: 1,
    rows: 32,
    columns: 32,
    seed: 19,
    studyDescription: 'CT HEAD STROKE',
    bodyPart: 'HEAD'
  })
  const sent = await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])
  assert.is(sent.code, 0, sent.stderr)
  const caseId = await waitFor(
    "the case on the reader's worklist",
    async () => (await reader.api<Array<{ caseId: string }>>('GET', '/api/worklist')).body[0]?.caseId,
    20_000
  )
  assert.is((await reader.api('POST', `/api/worklist/${caseId}/claim`)).status, 200)

  const refused = await site.api<{ error: { code: string } }>('POST', `/api/cases/${caseId}/critical`, {
    level: 'critical',
    text: 'not a reader'
  })
  assert.equal([refused.status, refused.body.error.code], [403, 'RADMESH_NOT_ALLOWED'])
  const bad = await reader.api<{ error: { code: string } }>('POST', `/api/cases/${caseId}/critical`, {
    level: 'mild',
    text: 'x'
  })
  assert.equal([bad.status, bad.body.error.code], [400, 'RADMESH_BAD_REQUEST'])

  const flaggedAt = Date.now()
  const flagged = await reader.api<Critical>('POST', `/api/cases/${caseId}/critical`, {
    level: 'critical',
    text: 'Acute right subdural haematoma with 6 mm midline shift.'
  })
  assert.is(flagged.status, 200, JSON.stringify(flagged.body))
  const { id } = flagged.body
  const atSite = await waitFor(
    'the site to list the critical result',
    async () => (await site.api<Critical[]>('GET', '/api/critical?open=true')).body.find(c => c.id === id),
    10_000
  )
  assert.ok(Date.now() - flaggedAt < 10_000)
  assert.is(atSite.byName, 'Dr Alice Neuro')
  assert.is(atSite.acknowledged, null)
  const raised = await waitFor(
    'the webhook to get the notice',
    async () => notices.find(n => n.event === 'critical-raised' && n.critical.id === id),
    10_000
  )
  assert.equal([raised.step, raised.notify, raised.critical.text], [0, 'Dr Ward', flagged.body.text])

  const escalated = await waitFor(
    'the escalation to the next person on the list',
    async () => notices.find(n => n.event === 'critical-escalated' && n.critical.id === id),
    20_000
  )
  assert.equal([escalated.step, escalated.notify], [1, 'Dr Chief'])
  const onReader = await waitFor(
    'the reader to see it escalated',
    async () =>
      (await reader.api<Critical[]>('GET', '/api/critical')).body.find(c => c.id === id && c.escalations.length === 2),
    10_000
  )
  assert.is(onReader.overdue, true)

  const call = await reader.api<Critical>('POST', `/api/critical/${id}/call`, { note: 'Phoned Dr Chief, ED.' })
  assert.is(call.status, 200, JSON.stringify(call.body))
  const notSite = await reader.api<{ error: { code: string } }>('POST', `/api/critical/${id}/ack`, { by: 'Alice' })
  assert.equal([notSite.status, notSite.body.error.code], [403, 'RADMESH_NOT_ALLOWED'])
  await waitFor(
    'the site to see the call',
    async () => (await site.api<Critical[]>('GET', '/api/critical')).body.find(c => c.id === id)?.calls.length === 1,
    10_000
  )

  const acked = await site.api<Critical>('POST', `/api/critical/${id}/ack`, { by: 'Dr Ward', role: 'ED attending' })
  assert.is(acked.status, 200, JSON.stringify(acked.body))
  assert.equal([acked.body.acknowledged?.by, acked.body.acknowledged?.role], ['Dr Ward', 'ED attending'])
  const seen = await waitFor(
    'the reader to see the acknowledgement',
    async () => (await reader.api<Critical[]>('GET', '/api/critical')).body.find(c => c.id === id)?.acknowledged,
    10_000
  )
  assert.is(seen?.by, 'Dr Ward')
  assert.is((await site.api<Critical[]>('GET', '/api/critical?open=true')).body.length, 0)
  const missing = await site.api('POST', `/api/critical/${'0'.repeat(24)}/ack`, { by: 'X' })
  assert.is(missing.status, 404)

  const tat = await site.api<{ byCriticalLevel: Array<{ level: string; raised: number; acknowledged: number }> }>(
    'GET',
    '/api/tat'
  )
  assert.equal(
    tat.body.byCriticalLevel.find(l => l.level === 'critical'),
    { ...tat.body.byCriticalLevel[0], level: 'critical', raised: 1, acknowledged: 1 }
  )
  const escalations = notices.filter(n => n.critical.id === id).length
  await new Promise(resolve => setTimeout(resolve, 4000))
  assert.is(notices.filter(n => n.critical.id === id).length, escalations, 'nothing more once acknowledged')
})

test.run()
