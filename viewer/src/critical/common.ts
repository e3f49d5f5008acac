/**
 * Critical results in the viewer: what the site's banner (banner.ts), the case's report panel (case-section.ts)
 * and the reader's worklist share: asking the node for them, saying where one stands, and the acknowledgement
 * form (the name of the person at the site who took it).
 */
import { CRITICAL_LEVELS, MAX_PERSON_NAME, MAX_PERSON_ROLE } from '../../../protocol/collab/records.ts'
import { ApiError, type CriticalResult, json } from '../api.ts'
import { h } from '../dom.ts'

export const LEVELS = CRITICAL_LEVELS
export const LEVEL_LABELS: Record<CriticalResult['level'], string> = {
  critical: 'Critical',
  urgent: 'Urgent',
  unexpected: 'Unexpected'
}

/** The critical results of the cases this node is on; `open`: those not acknowledged yet. */
export async function listCritical(open = false): Promise<CriticalResult[]> {
  return await json<CriticalResult[]>(`/api/critical${open ? '?open=true' : ''}`, { background: true })
}

export const at = (iso: string): string => new Date(iso).toLocaleString()

/** "acknowledged by Dr Ward (ED attending) at 07/12/2026, 06:01:02" or "not acknowledged" */
export function acknowledgement(result: CriticalResult): string {
  const ack = result.acknowledged
  if (ack === null) return result.overdue ? 'NOT acknowledged, overdue' : 'not acknowledged yet'
  return `acknowledged by ${ack.by}${ack.role === '' ? '' : ` (${ack.role})`} at ${at(ack.at)}`
}

/** Step 0 is the raise; the latest step is how far up the call list it went. */
export function escalationStep(result: CriticalResult): string {
  const last = result.escalations.at(-1)
  if (last === undefined) return 'step 0'
  const told = last.notify === null ? '' : `, ${last.notify} told`
  return last.step === 0 ? `step 0${told}` : `escalated to step ${last.step}${told} at ${at(last.at)}`
}

/** The lines under a result: raised, each escalation, each call, then the acknowledgement. */
export function history(result: CriticalResult): string[] {
  const by = result.byName ?? result.by.slice(-8)
  return [
    `raised by ${by} at ${at(result.raisedAt)}`,
    ...result.escalations
      .filter(e => e.step > 0)
      .map(e => `escalated (step ${e.step})${e.notify === null ? '' : ` to ${e.notify}`} at ${at(e.at)}`),
    ...result.calls.map(c => `call at ${at(c.at)}: ${c.note}`),
    acknowledgement(result)
  ]
}

/**
 * The site's acknowledgement: who took the result (required) and their role. `done` gets the result as the node
 * now holds it; the form says what went wrong otherwise.
 */
export function ackForm(result: CriticalResult, done: (acked: CriticalResult) => void): HTMLElement {
  const name = h('input', { class: 'ack-name', placeholder: 'Your name', maxlength: MAX_PERSON_NAME })
  const role = h('input', { class: 'ack-role', placeholder: 'Role (optional)', maxlength: MAX_PERSON_ROLE })
  const problem = h('span', { class: 'error ack-error' })
  const button = h('button', { class: 'ack primary', type: 'submit' }, 'Acknowledge')
  const submit = async (): Promise<void> => {
    problem.textContent = ''
    const by = name.value.trim()
    if (by === '') {
      problem.textContent = 'Say who takes it: your name.'
      name.focus()
      return
    }
    button.disabled = true
    try {
      const body = role.value.trim() === '' ? { by } : { by, role: role.value.trim() }
      done(await json<CriticalResult>(`/api/critical/${result.id}/ack`, { method: 'POST', body }))
    } catch (error) {
      problem.textContent = error instanceof ApiError ? error.message : String(error)
    } finally {
      button.disabled = false
    }
  }
  return h(
    'form',
    {
      class: 'ack-form',
      onsubmit: (event: Event) => {
        event.preventDefault()
        void submit()
      }
    },
    name,
    role,
    button,
    problem
  )
}
