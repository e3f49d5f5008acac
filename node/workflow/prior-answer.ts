/**
 * The answer of `GET /api/cases/:caseId/priors` (protocol/api/priors.ts): at the case's site from its search as
 * kept (prior-state.ts), elsewhere from the site's `priors` record of the case; `local` from what this node holds.
 */
import type { CasePriors, PriorStudy } from '../../protocol/api/priors.ts'
import type { Availability } from '../exchange/availability.ts'
import type { CaseState } from '../worklist/cases.ts'
import type { PriorSearch } from './prior-state.ts'

/** At the site: the search, each shared prior local once the archive holds its instances. */
export async function answerFromSearch(
  state: Pick<CaseState, 'caseId' | 'studyUid'>,
  search: PriorSearch,
  held: (prior: PriorSearch['priors'][number]) => Promise<boolean>
): Promise<CasePriors> {
  const priors = await Promise.all(
    search.priors.map(async prior => ({ ...prior, local: prior.state === 'shared' && (await held(prior)) }))
  )
  const { state: searchState, pacs, attempts, lastError, nextAttemptAt } = search
  return {
    caseId: state.caseId,
    studyInstanceUid: state.studyUid,
    search: { state: searchState, pacs, attempts, lastError, nextAttemptAt },
    priors
  }
}

/**
 * From the case's `priors` record: `done` once the site listed them, `pending` before (`none` at a site of
 * its own case that names no PACS); each prior local once this node holds the whole study.
 */
export async function answerFromRecord(
  state: Pick<CaseState, 'caseId' | 'studyUid' | 'priors'>,
  here: { mine: boolean; pacs: string | null },
  availability: (studyUid: string) => Promise<Availability | undefined>
): Promise<CasePriors> {
  const listed = state.priors
  const priors = await Promise.all(
    (listed ?? []).map(async (entry): Promise<PriorStudy> => {
      const held = entry.state === 'shared' ? await availability(entry.studyUid) : undefined
      return {
        studyInstanceUid: entry.studyUid,
        studyDate: entry.studyDate,
        studyDescription: entry.studyDescription,
        modalities: entry.modalities,
        bodyPart: entry.bodyPart,
        accessionNumber: entry.accessionNumber,
        instances: entry.instances,
        state: entry.state,
        local: held?.complete === true,
        error: entry.error === '' ? null : entry.error
      }
    })
  )
  return {
    caseId: state.caseId,
    studyInstanceUid: state.studyUid,
    search: {
      state: listed !== undefined ? 'done' : here.mine && here.pacs === null ? 'none' : 'pending',
      pacs: here.pacs,
      attempts: 0,
      lastError: null,
      nextAttemptAt: null
    },
    priors
  }
}
