/**
 * A case's second opinions, in its report panel at the site: the de-identified copies it shared for a second
 * opinion, whom each went to, and the report written on each once FINAL (`GET /api/cases/:caseId/second-opinions`).
 * Shown beside the case's own report, never in it; the section stays hidden while there are none, and on a
 * reader's node, where the route answers none (only the site holds the way back from a copy).
 */
import type { SecondOpinion } from '../../../protocol/api/second-opinions.ts'
import { json, type Session, type WorklistEntry } from '../api.ts'
import { clear, h } from '../dom.ts'
import { pollEvery } from '../polling.ts'
import type { View } from '../view.ts'

const POLL_MS = 5_000
const SECTIONS = ['findings', 'impression'] as const

export function openSecondOpinions(root: HTMLElement, entry: WorklistEntry, session: Session): View {
  if (session.role !== 'site' || entry.purpose === 'second-opinion') return { close: () => {} }
  let closed = false
  let shown = ''
  const render = (opinions: SecondOpinion[]): void => {
    const seen = JSON.stringify(opinions)
    if (closed || seen === shown) return
    shown = seen
    if (opinions.length === 0) {
      clear(root)
      return
    }
    clear(
      root,
      h('h3', { style: 'font-size:13px;margin:.8rem 0 0' }, 'Second opinions'),
      h(
        'ul',
        { class: 'second-opinions', id: 'second-opinions' },
        ...opinions.map(opinion => {
          const to = opinion.sharedWith.map(member => member.name).join(', ')
          const report = opinion.report
          return h(
            'li',
            { 'data-copy-case': opinion.copyCaseId, 'data-state': report === null ? 'waiting' : report.status },
            h(
              'div',
              { class: 'muted' },
              `De-identified copy shared with ${to} on ${new Date(opinion.madeAt).toLocaleString()}: `,
              report === null ? (opinion.status ?? 'not published yet') : `${report.status} by ${report.signedByName}`
            ),
            report === null
              ? null
              : h(
                  'div',
                  { class: 'second-opinion-report' },
                  ...SECTIONS.filter(name => report.sections[name].trim() !== '').map(name =>
                    h('p', {}, h('strong', {}, `${name[0]?.toUpperCase()}${name.slice(1)}: `), report.sections[name])
                  ),
                  ...report.addenda.map(addendum => h('p', {}, h('strong', {}, 'Addendum: '), addendum.text))
                )
          )
        })
      )
    )
  }
  const refresh = async (): Promise<void> => {
    try {
      render(await json<SecondOpinion[]>(`/api/cases/${entry.caseId}/second-opinions`, { background: true }))
    } catch {
      // A poll that fails is tried again at the next one.
    }
  }
  const stop = pollEvery(POLL_MS, refresh)
  return {
    close: () => {
      closed = true
      stop()
    }
  }
}
