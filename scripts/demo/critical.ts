/**
 * The demo's critical result: the site's routing.json gives critical findings a 6 s deadline (fractions of a
 * minute are allowed) and a call list of two, so the walk-through sees a result raised by the reader, escalated
 * to the second person on the list, and acknowledged by name at the site, in seconds rather than an hour.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { type Running, say, until } from './common.ts'

/** Minutes (0.1: 6 s) before an unacknowledged critical result escalates. */
const CRITICAL_DEADLINE_MINUTES = 0.1
const CALL_LIST = ['Dr Emma Ward', 'Dr Sam Chief']
const ACK_ROLE = 'ED attending'

interface CriticalResult {
  id: string
  caseId: string
  byName: string | null
  level: string
  raisedAt: string
  acknowledged: { by: string; role: string; at: string } | null
  escalations: Array<{ step: number; at: string; notify: string | null }>
}

/** HOME/routing.json of the site: the default rules and due times, with the demo's critical settings. */
export async function writeSiteRouting(siteHome: string): Promise<void> {
  const routing = { critical: { deadlines: { critical: CRITICAL_DEADLINE_MINUTES }, callList: CALL_LIST } }
  await fs.writeFile(join(siteHome, 'routing.json'), `${JSON.stringify(routing, null, 2)}\n`)
}

/** The reader flags a finding critical; the site sees it escalate, then acknowledges it; the reader sees that. */
export async function criticalResult(site: Running, reader: Running, caseId: string, text: string): Promise<void> {
  const raised = await reader.api<CriticalResult & { error?: { message: string } }>(
    'POST',
    `/api/cases/${caseId}/critical`,
    { level: 'critical', text }
  )
  if (raised.status !== 200) throw new Error(`the critical result was refused: ${raised.body.error?.message ?? ''}`)
  const id = raised.body.id
  const atSite = async (): Promise<CriticalResult | undefined> =>
    (await site.api<CriticalResult[]>('GET', '/api/critical')).body.find(r => r.id === id)
  const told = await until('the site to see the critical result', atSite)
  say(
    `${reader.member.name} flags a critical result on case ${caseId}; ${site.member.name} tells ` +
      `${told.escalations[0]?.notify ?? 'its call list'} (call list in routing.json, deadline 6 s for the demo)`
  )
  const escalated = await until('the critical result to escalate', async () => {
    const result = await atSite()
    return result !== undefined && result.escalations.length > 1 ? result : undefined
  })
  const step = escalated.escalations[1]
  const after = (Date.parse(step?.at ?? '') - Date.parse(escalated.raisedAt)) / 1000
  const acked = await site.api<{ error?: { message: string } }>('POST', `/api/critical/${id}/ack`, {
    by: step?.notify ?? 'the site',
    role: ACK_ROLE
  })
  if (acked.status !== 200) throw new Error(`the acknowledgement was refused: ${acked.body.error?.message ?? ''}`)
  const seen = await until(`${reader.member.name} to see the acknowledgement`, async () =>
    (await reader.api<CriticalResult[]>('GET', '/api/critical')).body.find(r => r.id === id && r.acknowledged !== null)
  )
  say(
    `critical result raised by ${escalated.byName ?? reader.member.name}, escalated to ${step?.notify ?? '?'} ` +
      `after ${after.toFixed(0)} s, acknowledged by ${seen.acknowledged?.by ?? '?'} (${ACK_ROLE}); ` +
      `${reader.member.name} sees the acknowledgement`
  )
}
