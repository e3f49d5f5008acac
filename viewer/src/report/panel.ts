/**
 * The report of a case, written live: this browser is a Yjs client of the case's report document (bound to
 * this node's member by a signed binding it writes itself), synced with its own node, which checks every
 * change like a peer's and carries it to the other readers' nodes (node/http/api/report-live.ts).
 * Five sections; sign PRELIMINARY or FINAL; addendum after FINAL; invite a consultant; templates fill
 * empty sections. A FINAL report is read-only and shows its signatures, verified by this node. The case's critical
 * results (flag one, see who acknowledged it) are in critical/case-section.ts.
 */
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate } from 'y-protocols/awareness'
import * as Y from 'yjs'
import { SECTION_NAMES } from '../../../protocol/collab/records.ts'
import { ApiError, type DutyEntry, json, request, type ReportView, type Session, type WorklistEntry } from '../api.ts'
import { openCriticalSection } from '../critical/case-section.ts'
import { openSecondOpinions } from './second-opinions.ts'
import { clear, h } from '../dom.ts'
import type { View } from '../view.ts'
import { caretPoint } from './caret.ts'
import { type Offer, SectionOffers } from './offers.ts'
import { bindTextarea } from './textarea-binding.ts'
import { templatesFor } from './templates.ts'

const REMOTE = Symbol('from the node')
const LOCAL = Symbol('typed here')
// Not LOCAL: the textareas show what a template or an offered sentence put in, as they show a co-author's words.
const TEMPLATE = Symbol('from a template')
const OFFERED = Symbol('an offered sentence')

const LABELS: Record<(typeof SECTION_NAMES)[number], string> = {
  indication: 'Indication',
  technique: 'Technique',
  comparison: 'Comparison',
  findings: 'Findings',
  impression: 'Impression'
}

const fromBase64 = (text: string): Uint8Array => Uint8Array.from(atob(text), c => c.charCodeAt(0))

/** The report panel of a case; it offers sentences for COMPARISON (one per prior) given by the page. */
export interface ReportPanel extends View {
  offerComparisons(offers: Offer[]): void
}

export async function openReportPanel(
  root: HTMLElement,
  entry: WorklistEntry,
  session: Session,
  onStatus: (status: ReportView['status']) => void = () => {}
): Promise<ReportPanel> {
  const caseId = entry.caseId
  const me = session.peerId
  const doc = new Y.Doc()
  let view: ReportView | undefined
  let closed = false
  let bound = false
  const canWrite = (): boolean =>
    (entry.claimedBy === me || entry.consultants.includes(me)) &&
    view !== undefined &&
    view.status !== 'FINAL' &&
    view.status !== 'AMENDED'

  const awareness = new Awareness(doc)
  awareness.setLocalState(null)
  const presence = h('div', { class: 'presence', id: 'report-presence' })
  const statusBadge = h('span', { class: 'status', id: 'report-status' }, '…')
  const message = h('div', { class: 'error', id: 'report-message' })
  const authors = h('div', { class: 'presence', id: 'report-authors' })
  const areas = new Map<string, HTMLTextAreaElement>()
  const unbind: Array<() => void> = []
  for (const name of SECTION_NAMES) {
    const area = h('textarea', {
      id: `section-${name}`,
      'data-section': name,
      readonly: true,
      rows: name === 'findings' ? 8 : 3
    })
    areas.set(name, area)
    unbind.push(bindTextarea(area, doc.getText(name), LOCAL))
  }
  const comparisonOffers = new SectionOffers(doc.getText('comparison'), OFFERED, 'comparison-offers')
  const signatures = h('ul', { class: 'signatures', id: 'report-signatures' })
  const criticalSlot = h('div', { class: 'critical', id: 'critical' })
  const secondOpinionsSlot = h('div', { class: 'second-opinions-section' })
  const addendumText = h('textarea', { id: 'addendum-text', rows: 3, placeholder: 'Addendum to the FINAL report' })
  const consultSelect = h('select', { id: 'consult-peer' })
  const templateSelect = h(
    'select',
    { id: 'template' },
    h('option', { value: '' }, 'Template…'),
    ...templatesFor(entry.modalities, entry.bodyPart).map((t, i) => h('option', { value: String(i) }, t.name))
  )
  const run = async (what: string, action: () => Promise<unknown>): Promise<void> => {
    message.textContent = ''
    try {
      await action()
    } catch (error) {
      message.textContent = `${what}: ${error instanceof ApiError ? error.message : String(error)}`
    }
  }
  const signButton = (status: 'PRELIMINARY' | 'FINAL'): HTMLButtonElement =>
    h(
      'button',
      {
        id: `sign-${status.toLowerCase()}`,
        class: status === 'FINAL' ? 'primary' : '',
        onclick: () => {
          void run(`Sign ${status}`, async () => {
            await flushed()
            await json(`/api/cases/${caseId}/report/sign`, { method: 'POST', body: { status } })
          })
        }
      },
      `Sign ${status.toLowerCase()}`
    )
  const signPreliminary = signButton('PRELIMINARY')
  const signFinal = signButton('FINAL')
  const addendumButton = h(
    'button',
    {
      id: 'addendum',
      onclick: () => {
        void run('Addendum', async () => {
          await json(`/api/cases/${caseId}/report/addendum`, { method: 'POST', body: { text: addendumText.value } })
          addendumText.value = ''
        })
      }
    },
    'Add addendum'
  )
  const consultButton = h(
    'button',
    {
      id: 'consult',
      onclick: () => {
        void run('Invite', async () => {
          await json(`/api/cases/${caseId}/consult`, { method: 'POST', body: { peerId: consultSelect.value } })
        })
      }
    },
    'Invite consultant'
  )
  templateSelect.addEventListener('change', () => {
    const template = templatesFor(entry.modalities, entry.bodyPart)[Number(templateSelect.value)]
    templateSelect.value = ''
    if (template === undefined || !canWrite()) return
    doc.transact(() => {
      for (const [name, text] of Object.entries(template.sections)) {
        const section = doc.getText(name)
        if (section.length === 0 && text !== '') section.insert(0, text)
      }
    }, TEMPLATE)
  })

  clear(
    root,
    h('h2', {}, 'Report', statusBadge),
    presence,
    authors,
    h('div', { class: 'toolbar' }, templateSelect),
    ...SECTION_NAMES.flatMap(name => [
      h('label', { for: `section-${name}` }, LABELS[name]),
      h('div', { class: 'section' }, areas.get(name) as HTMLTextAreaElement),
      name === 'comparison' ? comparisonOffers.element : null
    ]),
    h('div', { class: 'actions' }, signPreliminary, signFinal),
    h('div', { class: 'actions' }, consultSelect, consultButton),
    h('div', { class: 'actions', id: 'addendum-box' }, addendumText, addendumButton),
    message,
    criticalSlot,
    secondOpinionsSlot,
    h('h3', { style: 'font-size:13px;margin:.8rem 0 0' }, 'Signatures'),
    signatures
  )
  const critical = openCriticalSection(criticalSlot, entry, session)
  const secondOpinions = openSecondOpinions(secondOpinionsSlot, entry, session)

  // Changes typed here go to the node one at a time, in order: the node checks each against the document
  // it holds, so an update must not overtake the one before it.
  let sending: Promise<void> = Promise.resolve()
  doc.on('update', (update: Uint8Array, origin: unknown) => {
    if (origin === REMOTE || closed) return
    sending = sending.then(async () => {
      if (closed) return
      try {
        await request(`/api/cases/${caseId}/report/live`, { method: 'POST', body: update, background: false })
      } catch (error) {
        message.textContent =
          `Not saved: ${error instanceof ApiError ? error.message : String(error)}. ` +
          'Reopen the case to see the report as it stands.'
        for (const area of areas.values()) area.readOnly = true
      }
    })
  })
  const flushed = async (): Promise<void> => {
    await sending
  }

  const applyView = (next: ReportView): void => {
    view = next
    statusBadge.textContent = next.status
    statusBadge.className = `status ${next.status}`
    if (root.dataset['status'] !== next.status) onStatus(next.status)
    root.dataset['status'] = next.status
    const writable = canWrite()
    for (const area of areas.values()) area.readOnly = !writable || !bound
    const holder = entry.claimedBy === me
    signPreliminary.disabled = !writable
    signFinal.disabled = !writable || !holder
    consultButton.disabled = !holder || !writable
    consultSelect.disabled = consultButton.disabled
    templateSelect.disabled = !writable
    comparisonOffers.setWritable(writable && bound)
    const final = next.status === 'FINAL' || next.status === 'AMENDED'
    ;(root.querySelector('#addendum-box') as HTMLElement).style.display =
      final && (holder || entry.consultants.includes(me)) ? '' : 'none'
    authors.textContent =
      next.authors.length === 0
        ? 'No one has written yet.'
        : `Written by ${next.authors.map(a => a.name || a.peerId.slice(-8)).join(', ')}`
    clear(
      signatures,
      ...next.signatures.map(s =>
        h(
          'li',
          { class: s.verified ? '' : 'error' },
          `${s.status} by ${s.name} at ${new Date(s.at).toLocaleString()} ` +
            `${s.verified ? '✓ verified' : '✗ NOT VERIFIED'}`
        )
      ),
      ...next.addenda.map(a => h('li', {}, `Addendum: ${a.text}`))
    )
    if (
      !writable &&
      document.activeElement instanceof HTMLTextAreaElement &&
      [...areas.values()].includes(document.activeElement)
    )
      document.activeElement.blur()
  }

  // Presence: this reader's name and cursor go to the node (which passes them to the other readers' nodes);
  // theirs come back on the live stream. Positions are Yjs relative positions, so they follow the text.
  let presenceSending = false
  let presencePending = false
  const sendPresence = (): void => {
    if (presenceSending) {
      presencePending = true
      return
    }
    presenceSending = true
    const update = encodeAwarenessUpdate(awareness, [doc.clientID])
    request(`/api/cases/${caseId}/report/presence`, { method: 'POST', body: update, background: true })
      .catch(() => {})
      .finally(() => {
        presenceSending = false
        if (presencePending) {
          presencePending = false
          sendPresence()
        }
      })
  }
  awareness.on(
    'update',
    ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }, origin: unknown) => {
      if (origin !== REMOTE && [...added, ...updated, ...removed].includes(doc.clientID)) sendPresence()
    }
  )
  const trackCursor = (name: string, area: HTMLTextAreaElement): void => {
    const update = (): void => {
      if (awareness.getLocalState() === null) return
      const text = doc.getText(name)
      const position = (index: number): unknown =>
        Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(text, index))
      awareness.setLocalStateField('cursor', {
        section: name,
        anchor: position(area.selectionStart),
        head: position(area.selectionEnd)
      })
    }
    for (const type of ['focus', 'select', 'keyup', 'click', 'input']) area.addEventListener(type, update)
    area.addEventListener('blur', () => {
      if (awareness.getLocalState() !== null) awareness.setLocalStateField('cursor', null)
    })
  }
  for (const [name, area] of areas) trackCursor(name, area)
  const renderPresence = (): void => {
    const here: string[] = []
    for (const area of areas.values()) area.classList.remove('others-here')
    for (const caret of root.querySelectorAll('.remote-caret')) caret.remove()
    for (const [clientId, state] of awareness.getStates()) {
      const user = (state as { user?: { name?: string; peerId?: string } }).user
      if (clientId === doc.clientID || user?.name === undefined || user.peerId === me) continue
      const cursor = (state as { cursor?: { section?: string; head?: unknown } | null }).cursor
      let where = ''
      if (cursor?.section !== undefined && areas.has(cursor.section)) {
        const area = areas.get(cursor.section) as HTMLTextAreaElement
        area.classList.add('others-here')
        const absolute = Y.createAbsolutePositionFromRelativePosition(
          Y.createRelativePositionFromJSON(cursor.head),
          doc
        )
        const before = doc
          .getText(cursor.section)
          .toString()
          .slice(0, absolute?.index ?? 0)
          .split('\n')
        where =
          ` in ${LABELS[cursor.section as keyof typeof LABELS]}, line ${before.length}, ` +
          `column ${(before.at(-1)?.length ?? 0) + 1}`
        const point = caretPoint(area, absolute?.index ?? 0)
        if (point.top >= 0 && point.top < area.clientHeight) {
          const caret = h(
            'span',
            { class: 'remote-caret', 'data-peer': user.peerId ?? '', title: user.name },
            h('span', { class: 'remote-caret-name' }, user.name)
          )
          caret.style.left = `${area.offsetLeft + point.left}px`
          caret.style.top = `${area.offsetTop + point.top}px`
          caret.style.height = `${point.height}px`
          area.parentElement?.append(caret)
        }
      }
      here.push(`● ${user.name}${where}`)
    }
    presence.textContent = here.length === 0 ? '' : `Also here: ${here.join(' · ')}`
  }
  awareness.on('change', renderPresence)
  doc.on('update', renderPresence)
  for (const area of areas.values()) area.addEventListener('scroll', renderPresence)

  // The live stream: the whole document first, then every change, and the report's status after each.
  const events = new EventSource(`/api/cases/${caseId}/report/live?background=1`)
  events.addEventListener('update', event => {
    Y.applyUpdate(doc, fromBase64((event as MessageEvent<string>).data), REMOTE)
  })
  events.addEventListener('awareness', event => {
    applyAwarenessUpdate(awareness, fromBase64((event as MessageEvent<string>).data), REMOTE)
  })
  events.addEventListener('view', event => {
    applyView(JSON.parse((event as MessageEvent<string>).data) as ReportView)
  })
  events.addEventListener('error', () => {
    // The node ends the stream when the session ends; EventSource would retry: ask once whether we are signed out.
    void json('/api/session', { background: true }).catch(() => {
      events.close()
    })
  })

  // A reader of the case binds this browser's Yjs client to its member; the binding is written by the client itself.
  if (entry.claimedBy === me || entry.consultants.includes(me)) {
    try {
      const binding = await json<{ clientId: number }>(`/api/cases/${caseId}/report/live/binding`, {
        method: 'POST',
        body: { clientId: doc.clientID }
      })
      doc.transact(() => {
        doc.getMap('editors').set(String(doc.clientID), binding)
      }, LOCAL)
      bound = true
      // After the binding is sent: the node only accepts presence of clients bound to its member.
      await flushed()
      awareness.setLocalState({ user: { name: session.name, peerId: me }, cursor: null })
      if (view !== undefined) applyView(view)
    } catch (error) {
      message.textContent =
        'This report cannot be edited here: ' + (error instanceof ApiError ? error.message : String(error))
    }
  }

  if (entry.claimedBy === me) {
    json<DutyEntry[]>('/api/duty', { background: true })
      .then(readers => {
        clear(
          consultSelect,
          ...readers
            .filter(r => r.peerId !== me && !entry.consultants.includes(r.peerId))
            .map(r => h('option', { value: r.peerId }, `${r.name}${r.onDuty ? '' : ' (off duty)'}`))
        )
      })
      .catch(() => {})
  }

  return {
    offerComparisons: offers => {
      comparisonOffers.set(offers)
    },
    close: () => {
      if (awareness.getLocalState() !== null) {
        awareness.setLocalState(null)
        sendPresence()
      }
      awareness.destroy()
      closed = true
      critical.close()
      secondOpinions.close()
      events.close()
      for (const u of unbind) u()
      doc.destroy()
    }
  }
}
