/**
 * A case's priors on its page (GET /api/cases/:caseId/priors): each with its date, modality, name and where it
 * stands (found, retrieving, shared, local, failed), and how the search of the site's PACS goes ("PACS
 * unreachable, retrying at …"). Asked again every 2 s until the search has ended and every prior is on this node
 * or failed. A prior on this node opens beside the current study (study/compare.ts); one shared with this reader
 * but not here yet (the node fetches a STAT or claimed case's priors by itself) can be fetched now. The page also
 * hands the priors to the report, whose COMPARISON section offers them.
 */
import type { CasePriors, PriorStudy } from '../../../protocol/api/index.ts'
import { ApiError, json } from '../api.ts'
import { clear, h } from '../dom.ts'
import type { View } from '../view.ts'
import { formatDicomDate, priorStanding, priorsSettled, searchText, standingText, studyName } from './describe.ts'

const POLL_MS = 2_000

export interface PriorsPanel extends View {
  /** marks the prior shown beside the current study (undefined: none) */
  markOpen(studyInstanceUid: string | undefined): void
}

export function openPriorsPanel(
  root: HTMLElement,
  caseId: string,
  handlers: { onOpen(prior: PriorStudy): void; onPriors(priors: PriorStudy[]): void }
): PriorsPanel {
  const line = h('div', { class: 'muted', id: 'priors-search' }, 'Looking for priors…')
  const list = h('ul', { class: 'priors', id: 'priors-list' })
  clear(root, h('h3', {}, 'Priors'), line, list)
  let closed = false
  let timer: ReturnType<typeof setTimeout> | undefined
  let shown = ''
  let open: string | undefined

  const render = (answer: CasePriors): void => {
    const search = searchText(answer.search, answer.priors.length)
    line.textContent = search
    line.className = answer.search.state === 'retrying' || answer.search.state === 'failed' ? 'warn' : 'muted'
    line.dataset['state'] = answer.search.state
    const key = JSON.stringify(answer.priors)
    if (key === shown) return
    shown = key
    clear(
      list,
      ...answer.priors.map(prior => {
        const standing = priorStanding(prior)
        return h(
          'li',
          {
            class: prior.studyInstanceUid === open ? 'prior open' : 'prior',
            'data-prior': prior.studyInstanceUid,
            'data-state': standing
          },
          h(
            'div',
            { class: 'prior-when' },
            h('b', {}, formatDicomDate(prior.studyDate) || 'no date'),
            ` ${prior.modalities.join('/')}`
          ),
          h('div', { class: 'prior-name' }, studyName(prior)),
          h('div', { class: `prior-state ${standing}` }, standingText(prior)),
          standing === 'shared'
            ? h(
                'button',
                {
                  class: 'fetch-prior',
                  title: 'Fetch it to this node now',
                  onclick: (event: Event) => {
                    const button = event.currentTarget as HTMLButtonElement
                    button.disabled = true
                    json(`/api/studies/${encodeURIComponent(prior.studyInstanceUid)}/fetch`, { method: 'POST' })
                      .then(() => {
                        button.textContent = 'Fetching…'
                      })
                      .catch((error: unknown) => {
                        button.disabled = false
                        button.title = `Not fetched: ${error instanceof Error ? error.message : String(error)}`
                      })
                  }
                },
                'Fetch'
              )
            : h(
                'button',
                {
                  class: 'open-prior',
                  disabled: standing !== 'local',
                  title: standing === 'local' ? 'Show it beside the current study' : 'Not on this node',
                  onclick: () => {
                    handlers.onOpen(prior)
                  }
                },
                'Open beside'
              )
        )
      })
    )
    handlers.onPriors(answer.priors)
  }

  const poll = async (): Promise<void> => {
    let again = true
    try {
      const answer = await json<CasePriors>(`/api/cases/${encodeURIComponent(caseId)}/priors`, { background: true })
      if (closed) return
      render(answer)
      again = !priorsSettled(answer)
    } catch (error) {
      if (closed) return
      // A refusal (no such case here, not a reader of it) will not change by asking again; a node busy or
      // restarting will.
      const refused = error instanceof ApiError && error.status >= 400 && error.status < 500
      line.className = 'warn'
      line.textContent = `Priors cannot be shown: ${error instanceof Error ? error.message : String(error)}`
      again = !refused
    }
    if (again && !closed)
      timer = setTimeout(() => {
        void poll()
      }, POLL_MS)
  }
  void poll()

  return {
    markOpen: studyInstanceUid => {
      open = studyInstanceUid
      for (const item of list.querySelectorAll<HTMLElement>('li.prior'))
        item.classList.toggle('open', item.dataset['prior'] === open)
    },
    close: () => {
      closed = true
      clearTimeout(timer)
    }
  }
}
