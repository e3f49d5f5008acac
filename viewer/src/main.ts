/**
 * The reading viewer: one page, three views chosen by the URL hash.
 *   #/              the worklist (worklist-page.ts)
 *   #/case/CASEID   a case: its study (study/page.ts) and its report (report/panel.ts)
 *   #/study/UID     a study of this node's archive, no report (a site's own studies, imported files)
 * It talks only to its own node (api.ts); the node's session ends after the configured idle time.
 */
import { isSignedOut, json, markSignedOut, onSignedOut, type Session } from './api.ts'
import { clear, h } from './dom.ts'
import { openStudyPage } from './study/page.ts'
import type { View } from './view.ts'
import { openWorklistPage } from './worklist-page.ts'

const app = document.getElementById('app') as HTMLElement
const nav = document.getElementById('nav') as HTMLElement
let current: View | undefined
let session: Session | undefined

function showSignedOut(): void {
  current?.close()
  current = undefined
  clear(nav)
  clear(
    app,
    h(
      'div',
      { class: 'signedout', id: 'signed-out' },
      h('h1', {}, 'Signed out'),
      h('p', {}, 'This viewer session ended (idle too long, or signed out). Patient data is no longer shown.'),
      h(
        'p',
        { class: 'muted' },
        'Open a new sign-in link: run "radmesh viewer --home HOME" on this node, or restart it.'
      )
    )
  )
}

async function route(): Promise<void> {
  if (isSignedOut() || session === undefined) return
  current?.close()
  current = undefined
  const hash = location.hash.replace(/^#\/?/, '')
  const [kind, id] = hash.split('/')
  if (kind === 'case' && id !== undefined)
    current = await openStudyPage(app, { caseId: decodeURIComponent(id), session })
  else if (kind === 'study' && id !== undefined)
    current = await openStudyPage(app, { studyUid: decodeURIComponent(id), session })
  else current = openWorklistPage(app, session)
}

async function start(): Promise<void> {
  onSignedOut(showSignedOut)
  try {
    session = await json<Session>('/api/session')
  } catch {
    markSignedOut()
    return
  }
  if (session.actor !== 'viewer') return
  clear(
    nav,
    h('a', { href: '#/' }, 'Worklist'),
    h('span', { class: 'muted' }, `${session.role}`),
    h(
      'button',
      {
        id: 'sign-out',
        onclick: () => {
          void json('/api/signout', { method: 'POST' }).finally(markSignedOut)
        }
      },
      'Sign out'
    )
  )
  window.addEventListener('hashchange', () => {
    void route()
  })
  await route()
}

void start()
