/**
 * The case's critical results, in its report panel: a reader of the case flags a finding (level and a short
 * text, when signing or at any time) and records the phone calls made about one; everyone sees each result's
 * state (raised, escalations, calls, acknowledged by whom and when), polled; the case's site can acknowledge
 * here too.
 */
import { MAX_CRITICAL_TEXT } from '../../../protocol/collab/records.ts'
import { ApiError, type CriticalResult, json, type Session, type WorklistEntry } from '../api.ts'
import { clear, h } from '../dom.ts'
import { pollEvery } from '../polling.ts'
import type { View } from '../view.ts'
import { ackForm, history, LEVEL_LABELS, LEVELS, listCritical } from './common.ts'

const POLL_MS = 2_000

export function openCriticalSection(root: HTMLElement, entry: WorklistEntry, session: Session): View {
  const caseId = entry.caseId
  const reader = entry.claimedBy === session.peerId || entry.consultants.includes(session.peerId)
  let closed = false
  let shown = ''

  const list = h('ul', { class: 'critical-list', id: 'critical-list' })
  const level = h('select', { id: 'critical-level' }, ...LEVELS.map(l => h('option', { value: l }, LEVEL_LABELS[l])))
  const text = h('textarea', {
    id: 'critical-text',
    rows: 2,
    maxlength: MAX_CRITICAL_TEXT,
    placeholder: 'The finding, in a sentence or two (read out on the phone)'
  })
  const flag = h('button', { id: 'critical-flag', class: 'critical-flag' }, 'Flag critical result')
  const message = h('div', { class: 'error', id: 'critical-message' })

  // Items are kept by id and only their text is redrawn, so a poll (or a change at the site) does not wipe a
  // name being typed into an acknowledgement form or a call note being written.
  const items = new Map<string, { element: HTMLElement; details: HTMLElement; ack: HTMLElement | null }>()
  const none = h('li', { class: 'muted' }, 'None flagged.')
  const render = (results: CriticalResult[]): void => {
    const seen = JSON.stringify(results)
    if (closed || seen === shown) return
    shown = seen
    const ids = new Set(results.map(result => result.id))
    for (const [id, item] of items) {
      if (ids.has(id)) continue
      item.element.remove()
      items.delete(id)
    }
    if (results.length === 0) list.append(none)
    else none.remove()
    for (const result of results) {
      let item = items.get(result.id)
      if (item === undefined) {
        const details = h('span', { class: 'critical-details' })
        const ack =
          session.role === 'site'
            ? ackForm(result, () => {
                void refresh()
              })
            : null
        const element = h(
          'li',
          { class: `critical-item ${result.level}`, 'data-critical-id': result.id },
          h('span', { class: `critical-level ${result.level}` }, LEVEL_LABELS[result.level]),
          details,
          ack,
          reader
            ? callForm(result, () => {
                void refresh()
              })
            : null
        )
        item = { element, details, ack }
        items.set(result.id, item)
        list.append(element)
      }
      const acknowledged = result.acknowledged !== null
      item.element.dataset.state = acknowledged ? 'acknowledged' : 'open'
      if (acknowledged) item.ack?.remove()
      clear(
        item.details,
        ' ',
        result.text,
        h('ul', { class: 'critical-history' }, ...history(result).map(line => h('li', {}, line)))
      )
    }
  }

  const refresh = async (): Promise<void> => {
    try {
      render((await listCritical()).filter(result => result.caseId === caseId))
    } catch {}
  }

  flag.addEventListener('click', () => {
    void (async () => {
      message.textContent = ''
      const finding = text.value.trim()
      if (finding === '') {
        message.textContent = 'Flag critical result: write the finding first.'
        return
      }
      flag.disabled = true
      try {
        await json<CriticalResult>(`/api/cases/${caseId}/critical`, {
          method: 'POST',
          body: { level: level.value, text: finding }
        })
        text.value = ''
        await refresh()
      } catch (error) {
        message.textContent = `Flag critical result: ${error instanceof ApiError ? error.message : String(error)}`
      } finally {
        flag.disabled = false
      }
    })()
  })

  clear(
    root,
    h('h3', { class: 'critical-heading' }, 'Critical results'),
    list,
    reader ? h('div', { class: 'actions critical-form', id: 'critical-form' }, level, text, flag) : null,
    message
  )
  const stop = pollEvery(POLL_MS, refresh)
  return {
    close: () => {
      closed = true
      stop()
    }
  }
}

/** A reader's note of a phone call about a result (whom they reached, what was said). */
function callForm(result: CriticalResult, done: () => void): HTMLElement {
  const note = h('input', {
    class: 'call-note',
    placeholder: 'Call: whom, what was said',
    maxlength: MAX_CRITICAL_TEXT
  })
  const problem = h('span', { class: 'error' })
  const submit = async (): Promise<void> => {
    problem.textContent = ''
    if (note.value.trim() === '') return
    try {
      await json(`/api/critical/${result.id}/call`, { method: 'POST', body: { note: note.value.trim() } })
      note.value = ''
      done()
    } catch (error) {
      problem.textContent = error instanceof ApiError ? error.message : String(error)
    }
  }
  const onsubmit = (event: Event): void => {
    event.preventDefault()
    void submit()
  }
  return h(
    'form',
    { class: 'ack-form call-form', onsubmit },
    note,
    h('button', { class: 'call', type: 'submit' }, 'Record call'),
    problem
  )
}
