/**
 * The site's banner of open critical results, above its worklist: level, case, text, when it was raised and how
 * far it escalated. It stays until someone at the site acknowledges the result by name; the worklist's poll
 * feeds it. Items are kept by id, so a poll does not wipe a name being typed.
 */
import type { CriticalResult, WorklistEntry } from '../api.ts'
import { clear, h } from '../dom.ts'
import { ackForm, at, escalationStep, LEVEL_LABELS } from './common.ts'

interface Item {
  element: HTMLElement
  details: HTMLElement
}

const caseLabel = (result: CriticalResult, entry: WorklistEntry | undefined): string =>
  entry === undefined
    ? `case ${result.caseId.slice(-8)}`
    : `${entry.modalities.join('/')} ${entry.bodyPart}`.trim() || `case ${result.caseId.slice(-8)}`

export interface CriticalBanner {
  readonly element: HTMLElement
  /** the open critical results as the node now lists them, and the worklist to name their cases */
  update(open: CriticalResult[], cases: ReadonlyMap<string, WorklistEntry>): void
}

export function createCriticalBanner(): CriticalBanner {
  const items = new Map<string, Item>()
  const list = h('ul', {})
  const title = h('strong', {})
  const element = h(
    'div',
    { class: 'critical-banner', id: 'critical-banner', role: 'alert', hidden: true },
    title,
    list
  )

  const remove = (id: string): void => {
    items.get(id)?.element.remove()
    items.delete(id)
    show()
  }
  const show = (): void => {
    element.hidden = items.size === 0
    title.textContent = `${items.size} critical result${items.size === 1 ? '' : 's'} to acknowledge`
  }

  return {
    element,
    update(open, cases) {
      const ids = new Set(open.map(result => result.id))
      for (const id of [...items.keys()]) if (!ids.has(id)) remove(id)
      for (const result of open) {
        let item = items.get(result.id)
        if (item === undefined) {
          const details = h('span', { class: 'critical-details' })
          const entry = h(
            'li',
            { class: `critical-item ${result.level}`, 'data-critical-id': result.id },
            h('span', { class: `critical-level ${result.level}` }, LEVEL_LABELS[result.level]),
            details,
            ackForm(result, acked => {
              remove(acked.id)
            })
          )
          item = { element: entry, details }
          items.set(result.id, item)
          list.append(entry)
        }
        const reader = result.byName ?? result.by.slice(-8)
        item.element.classList.toggle('overdue', result.overdue)
        clear(
          item.details,
          h('a', { href: `#/case/${result.caseId}` }, caseLabel(result, cases.get(result.caseId))),
          result.originalCaseId === undefined
            ? null
            : h(
                'a',
                { href: `#/case/${result.originalCaseId}`, class: 'original-case' },
                " (a second opinion: the patient's case)"
              ),
          ` ${result.text} `,
          h('span', { class: 'muted' }, `raised by ${reader} at ${at(result.raisedAt)}; ${escalationStep(result)}`),
          result.overdue ? h('span', { class: 'overdue' }, ' overdue') : null
        )
      }
      show()
    }
  }
}
