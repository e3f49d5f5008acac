/**
 * Critical results end to end, in separate processes over real libp2p: a reader flags a finding on a case routed
 * to it -> the site lists it at /api/critical within seconds and its webhook gets the notice -> unacknowledged
 * past its deadline (seconds here, from routing.json) it escalates to the next person on the call list -> the
 * reader records a call -> the site acknowledges it by name -> the reader sees the acknowledgement; /api/tat
 * counts it. The reader sees each escalation as the site's signed record of it (its own settings know nothing of
 * the site's deadlines), even one made while it was cut off (killed, then started again).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createScratchConsortium, type ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { connected, p2pAddr, type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { type Critical, claimedCriticalCase } from './critical-helpers.ts'

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

test('flagged -> listed at the site, webhook told -> escalated -> call recorded -> acknowledged by name', async () => {
  const webhook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/critical`
  // Three seconds to acknowledge a critical result: the deadline passes within the test.
  const critical = { deadlines: { critical: 0.05 }, callList: ['Dr Ward', webhook, 'Dr Chief'] }
  // Only the site has these settings: the reader knows the escalations from the site's records of them.
  const claimed = await claimedCriticalCase(consortium, started, { routing: { critical }, seed: 19 })
  const { site, caseId } = claimed
  let reader = claimed.reader

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

  // The reader is cut off (killed) while the site escalates; back, it learns the escalation from the site's record.
  const escalatedBefore = notices.some(n => n.event === 'critical-escalated' && n.critical.id === id)
  await reader.kill()
  const escalated = await waitFor(
    'the escalation to the next person on the list',
    async () => notices.find(n => n.event === 'critical-escalated' && n.critical.id === id),
    20_000
  )
  assert.equal([escalated.step, escalated.notify], [1, 'Dr Chief'])
  if (escalatedBefore) console.log('(the escalation came before the reader was cut off: a slow machine)')
  reader = await startNode(reader.home, {
    p2pPort: reader.p2pPort,
    wsPort: reader.wsPort,
    httpPort: reader.httpPort,
    peers: [p2pAddr(site)],
    extraArgs: ['--stable-after', '1s']
  })
  started.push(reader)
  await connected(site, reader, 20_000)
  const onReader = await waitFor(
    'the reader to see it escalated',
    async () =>
      (await reader.api<Critical[]>('GET', '/api/critical')).body.find(c => c.id === id && c.escalations.length === 2),
    10_000
  )
  assert.is(onReader.overdue, true)
  assert.equal(
    onReader.escalations.map(e => [e.step, e.notify]),
    [
      [0, 'Dr Ward'],
      [1, 'Dr Chief']
    ]
  )

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
  const [onSite, onReaderNow] = await Promise.all(
    [site, reader].map(async node => (await node.api<Critical[]>('GET', '/api/critical')).body.find(c => c.id === id))
  )
  assert.equal(onReaderNow?.escalations, onSite?.escalations, "both show the site's records of its steps")
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
