/**
 * Notices of a critical result to the site's call list: a JSON POST to each webhook URL of the list, on the raise
 * and on each escalation, tried again a few times when the receiver is down or answers an error. Other ways to
 * tell people (HL7 to the RIS, say) plug in as a `CriticalNoticeSink`.
 */
import type { Logger } from 'pino'
import type { CriticalResult } from '../../protocol/api/critical.ts'

export interface CriticalNotice {
  event: 'critical-raised' | 'critical-escalated'
  /** 0 for the raise, 1 and on for escalations */
  step: number
  /** the person on the call list to tell now, if the list names anyone */
  notify: string | null
  critical: CriticalResult
}

export type CriticalNoticeSink = (notice: CriticalNotice) => Promise<void>

/** Tries of one notice to one URL, the wait before the second (doubling after), and how long each may take. */
export const WEBHOOK_ATTEMPTS = 4
export const WEBHOOK_FIRST_RETRY_MS = 2000
export const WEBHOOK_TIMEOUT_MS = 10_000

/** POSTs the notice to `url`; resolves true once a 2xx answer came, false after the last try failed. */
export async function postWebhook(
  url: string,
  notice: CriticalNotice,
  log: Logger,
  retry = { attempts: WEBHOOK_ATTEMPTS, firstRetryMs: WEBHOOK_FIRST_RETRY_MS }
): Promise<boolean> {
  let wait = retry.firstRetryMs
  // A webhook URL may carry a token in its query: it is logged without it.
  const where = url.replace(/[?#].*$/, '')
  for (let attempt = 1; attempt <= retry.attempts; attempt++) {
    try {
      const answer = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(notice),
        signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS)
      })
      await answer.body?.cancel()
      if (answer.ok) return true
      log.warn(
        { event: 'critical-webhook-failed', url: where, status: answer.status, attempt },
        `the webhook answered ${answer.status} to a critical result notice`
      )
    } catch (error) {
      log.warn(
        { event: 'critical-webhook-failed', url: where, attempt, error: (error as Error).message },
        'a critical result notice did not reach its webhook'
      )
    }
    if (attempt < retry.attempts) await new Promise(resolve => setTimeout(resolve, wait))
    wait *= 2
  }
  log.error(
    { event: 'critical-webhook-gave-up', url: where, critical: notice.critical.id },
    `a critical result notice could not be delivered to ${where}`
  )
  return false
}
