/**
 * A reader fetches a case's shared priors from the case's site, one after the other, once the case's own images
 * are whole (they are what the reader opens first): a STAT case's priors are local by the time it is read.
 */
import type { AuditActor } from '../audit/log.ts'
import type { Exchange } from '../exchange/exchange.ts'
import type { Logger } from '../log.ts'
import type { CaseState } from '../worklist/cases.ts'

/** A reader waits this long at most for a case's own images before it fetches the priors anyway. */
const CURRENT_FIRST_MS = 10 * 60_000
const POLL_MS = 1_000
/** A prior's fetch that failed (its key may not have reached the reader yet) is tried this many times. */
const FETCH_ATTEMPTS = 5
const FETCH_RETRY_MS = 10_000

export interface PriorShareOptions {
  exchange: Pick<Exchange, 'share'>
  log: Logger
  actor: AuditActor
}

/** A consultant a reader invited gets the keys of the case's shared priors too (the workflow gives the case's). */
export async function sharePriorsWith(
  state: Pick<CaseState, 'caseId' | 'priors'> | undefined,
  consultant: string,
  { exchange, log, actor }: PriorShareOptions
): Promise<void> {
  for (const prior of (state?.priors ?? []).filter(p => p.state === 'shared')) {
    try {
      await exchange.share(prior.studyUid, [consultant], actor)
    } catch (error) {
      log.warn(
        { event: 'prior-share-failed', case: state?.caseId, study: prior.studyUid, err: error },
        `could not give the consultant the key of prior ${prior.studyUid}: ${(error as Error).message}`
      )
    }
  }
}

export interface PriorFetchOptions {
  exchange: Pick<Exchange, 'fetch' | 'availability'>
  log: Logger
  actor: AuditActor
  stopped: () => boolean
}

export async function fetchCasePriors(
  state: CaseState,
  { exchange, log, actor, stopped }: PriorFetchOptions
): Promise<void> {
  const deadline = Date.now() + CURRENT_FIRST_MS
  while (!stopped() && Date.now() < deadline) {
    if ((await exchange.availability(state.studyUid))?.complete === true) break
    await new Promise(resolve => setTimeout(resolve, POLL_MS).unref())
  }
  for (const prior of state.priors ?? []) {
    if (stopped() || prior.state !== 'shared') continue
    for (let attempt = 1; attempt <= FETCH_ATTEMPTS && !stopped(); attempt++) {
      if ((await exchange.availability(prior.studyUid))?.complete === true) break
      log.info(
        { event: 'prior-fetch', case: state.caseId, study: prior.studyUid, attempt },
        `fetching prior ${prior.studyUid} of case ${state.caseId}`
      )
      // From the case's site only, as the case's own study: a member's forged version is never taken for it.
      const fetch = exchange.fetch(prior.studyUid, actor, { origin: state.site })
      await fetch.settled()
      const { state: outcome, error } = await fetch.availability()
      if (outcome !== 'failed') break
      log.warn(
        { event: 'prior-fetch-retry', case: state.caseId, study: prior.studyUid, error },
        `fetching prior ${prior.studyUid} failed (${error}); trying again in ${FETCH_RETRY_MS / 1000} s`
      )
      await new Promise(resolve => setTimeout(resolve, FETCH_RETRY_MS).unref())
    }
  }
}
