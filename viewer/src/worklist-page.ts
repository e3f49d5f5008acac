/**
 * The worklist: this node's cases, live (polled every 2 s), sorted by priority then due time, with a TAT
 * countdown that turns red when overdue, each study's availability on this node, filters, claim and
 * release, and this reader's on-duty status; a member reached only through a relay is marked "via relay".
 * Critical results: the site sees a banner of those not acknowledged yet (critical/banner.ts); every case with
 * one is marked, acknowledged or not.
 */
import {
  ApiError,
  type Availability,
  type CriticalResult,
  type DutyEntry,
  json,
  type Session,
  type WorklistEntry
} from './api.ts'
import { createCriticalBanner } from './critical/banner.ts'
import { listCritical } from './critical/common.ts'
import { clear, h, relative } from './dom.ts'
import { pollEvery } from './polling.ts'
import { RelayedMembers } from './relayed-members.ts'
import type { View } from './view.ts'

const POLL_MS = 2_000

/** The worklist as last seen, so that opening a case does not have to ask for it again. */
export const lastSeen = new Map<string, WorklistEntry>()
const RANK = { STAT: 0, URGENT: 1, ROUTINE: 2 } as const

export function sortCases(cases: WorklistEntry[]): WorklistEntry[] {
  return [...cases].sort((a, b) => RANK[a.priority] - RANK[b.priority] || Date.parse(a.dueAt) - Date.parse(b.dueAt))
}

export function openWorklistPage(root: HTMLElement, session: Session): View {
  const filters = { mine: false, stat: false, subspecialty: session.role === 'radiologist' }
  let cases: WorklistEntry[] = []
  const availability = new Map<string, Availability>()
  let duty: DutyEntry | undefined
  const relayed = new RelayedMembers()
  const banner = createCriticalBanner()
  /** the cases with a critical result: 'open' while one of them is not acknowledged */
  let critical = new Map<string, 'open' | 'acknowledged'>()
  let message = ''
  let closed = false

  const body = h('tbody')
  const dutyBadge = h('span', { class: 'duty', id: 'duty' })
  const notice = h('span', { class: 'error', id: 'notice' })
  const checkbox = (key: keyof typeof filters, label: string): HTMLElement =>
    h(
      'label',
      {},
      h('input', {
        type: 'checkbox',
        id: `filter-${key}`,
        checked: filters[key],
        onchange: (e: Event) => {
          filters[key] = (e.target as HTMLInputElement).checked
          render()
        }
      }),
      label
    )
  clear(
    root,
    h(
      'div',
      { class: 'page' },
      session.role === 'site' ? banner.element : null,
      h(
        'div',
        { class: 'toolbar' },
        h('h1', { style: 'font-size:18px;margin:0' }, 'Worklist'),
        session.role === 'radiologist' ? dutyBadge : null,
        session.role === 'radiologist'
          ? checkbox('subspecialty', `my subspecialties (${session.subspecialties.join(', ') || 'none'})`)
          : null,
        checkbox('stat', 'STAT only'),
        session.role === 'radiologist' ? checkbox('mine', 'mine') : null,
        notice
      ),
      h(
        'table',
        { class: 'worklist', id: 'worklist' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['Priority', 'Due', 'Status', 'Study', 'Subspecialty', 'Site', 'Reader', 'Images', ''].map(t =>
              h('th', {}, t)
            )
          )
        ),
        body
      )
    )
  )

  const act = async (entry: WorklistEntry, action: 'claim' | 'release'): Promise<void> => {
    try {
      const updated = await json<WorklistEntry>(`/api/worklist/${entry.caseId}/${action}`, { method: 'POST' })
      cases = cases.map(c => (c.caseId === updated.caseId ? { ...c, ...updated } : c))
      lastSeen.set(updated.caseId, { ...lastSeen.get(updated.caseId), ...updated })
      message = ''
    } catch (error) {
      message = error instanceof ApiError ? error.message : String(error)
    }
    render()
  }

  function visible(): WorklistEntry[] {
    return sortCases(
      cases.filter(
        entry =>
          (!filters.stat || entry.priority === 'STAT') &&
          (!filters.mine || entry.claimedBy === session.peerId || entry.consultants.includes(session.peerId)) &&
          (!filters.subspecialty ||
            session.subspecialties.length === 0 ||
            session.subspecialties.includes(entry.subspecialty) ||
            // A second opinion was asked of this reader by name, whatever its subspecialty.
            entry.purpose === 'second-opinion')
      )
    )
  }

  function render(): void {
    if (closed) return
    notice.textContent = message
    if (duty !== undefined) {
      dutyBadge.textContent = duty.onDuty ? 'On duty' : 'Off duty'
      dutyBadge.className = duty.onDuty ? 'duty' : 'duty off'
    }
    const now = Date.now()
    const rows = visible().map(entry => {
      const open = entry.status === 'SCHEDULED' || entry.status === 'IN PROGRESS'
      const dueIn = Date.parse(entry.dueAt) - now
      const overdue = open && dueIn < 0
      const local = availability.get(entry.studyInstanceUid)
      const share = local === undefined || local.instancesTotal === 0 ? 0 : local.instancesLocal / local.instancesTotal
      const mine = entry.claimedBy === session.peerId
      const flagged = critical.get(entry.caseId)
      return h(
        'tr',
        { 'data-case': entry.caseId, 'data-status': entry.status, 'data-critical': flagged },
        h(
          'td',
          {},
          h('span', { class: `priority ${entry.priority}` }, entry.priority),
          flagged === undefined
            ? null
            : h('span', { class: `critical-mark ${flagged}` }, flagged === 'open' ? 'CRITICAL' : 'critical ✓')
        ),
        h(
          'td',
          { class: overdue ? 'overdue' : '', title: entry.dueAt },
          open ? (overdue ? `overdue ${relative(dueIn).replace(' ago', '')}` : relative(dueIn)) : '—'
        ),
        h('td', { class: 'status' }, entry.status),
        h('td', {}, `${entry.modalities.join('/')} ${entry.bodyPart}`.trim() || entry.studyInstanceUid.slice(-12)),
        h(
          'td',
          {},
          entry.subspecialty,
          entry.purpose === 'second-opinion' ? h('span', { class: 'muted second-opinion' }, ' · second opinion') : null
        ),
        h('td', {}, entry.siteName || entry.site.slice(-8), relayed.mark(entry.site)),
        h(
          'td',
          {},
          entry.claimedBy === null
            ? ''
            : (entry.claimedByName ?? entry.claimedBy.slice(-8)) +
                (entry.consultants.length > 0 ? ` +${entry.consultants.length}` : ''),
          relayed.mark(entry.claimedBy)
        ),
        h(
          'td',
          {
            title:
              local === undefined ? 'not on this node' : `${local.instancesLocal} / ${local.instancesTotal} images here`
          },
          h('span', { class: 'bar' }, h('span', { style: `width:${Math.round(share * 100)}%` })),
          ` ${local === undefined ? '' : `${local.instancesLocal}/${local.instancesTotal}`}`,
          // A STAT study streamed as it is acquired: more images will come until the site sees it stable.
          entry.complete
            ? null
            : h(
                'span',
                { class: 'arriving', title: 'the study is still being acquired: more images will come' },
                ' arriving'
              )
        ),
        h(
          'td',
          {},
          session.role === 'radiologist' && entry.status === 'SCHEDULED'
            ? h(
                'button',
                {
                  class: 'claim',
                  onclick: () => {
                    void act(entry, 'claim')
                  }
                },
                'Claim'
              )
            : null,
          mine && entry.status === 'IN PROGRESS'
            ? h(
                'button',
                {
                  class: 'release',
                  onclick: () => {
                    void act(entry, 'release')
                  }
                },
                'Release'
              )
            : null,
          ' ',
          h('a', { href: `#/case/${entry.caseId}`, class: 'open' }, 'Open')
        )
      )
    })
    clear(
      body,
      ...(rows.length > 0
        ? rows
        : [
            h(
              'tr',
              {},
              h(
                'td',
                { colspan: 9, class: 'muted' },
                cases.length === 0 ? 'No cases yet.' : 'No case matches the filters.'
              )
            )
          ])
    )
  }

  async function poll(): Promise<void> {
    try {
      cases = await json<WorklistEntry[]>('/api/worklist', { background: true })
      lastSeen.clear()
      for (const entry of cases) lastSeen.set(entry.caseId, entry)
      const critically = listCritical().catch(() => undefined)
      const links = relayed.refresh()
      await Promise.all(
        cases.map(async entry => {
          try {
            availability.set(
              entry.studyInstanceUid,
              await json<Availability>(`/api/studies/${entry.studyInstanceUid}/availability`, { background: true })
            )
          } catch {
            availability.delete(entry.studyInstanceUid)
          }
        })
      )
      // A failed poll leaves the banner as it was: it goes only when the node says the result is acknowledged.
      const results = await critically
      await links
      if (results !== undefined) {
        critical = criticalMarks(results)
        if (session.role === 'site')
          banner.update(
            results.filter(result => result.acknowledged === null),
            lastSeen
          )
      }
      if (session.role === 'radiologist')
        duty = (await json<DutyEntry[]>('/api/duty', { background: true })).find(d => d.peerId === session.peerId)
      render()
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return
    }
  }

  const stop = pollEvery(POLL_MS, poll)
  const ticking = setInterval(render, 1_000)
  return {
    close: () => {
      closed = true
      stop()
      clearInterval(ticking)
    }
  }
}

function criticalMarks(results: CriticalResult[]): Map<string, 'open' | 'acknowledged'> {
  const marks = new Map<string, 'open' | 'acknowledged'>()
  for (const result of results) {
    if (result.acknowledged === null) marks.set(result.caseId, 'open')
    else if (!marks.has(result.caseId)) marks.set(result.caseId, 'acknowledged')
  }
  return marks
}
