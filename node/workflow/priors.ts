/**
 * A case's priors: the patient's earlier studies, found in the site's PACS and read beside the case's study.
 *
 * At the case's site, when a case of its own is published (its `case` record reaches the worklist), the node
 * searches its PACS (prior-search.ts), retrieves the studies the rule picks into its archive, shares each with
 * the case's readers (their keys wrapped for them, as for the case's study) and lists them in a `priors` record
 * of the case (protocol/collab/prior-records.ts). The case has gone out already: a PACS that is down delays
 * nothing. A failed search is tried again after 5 s, then twice as long each time up to 5 minutes, for a day;
 * each step is logged and kept on disk (prior-state.ts), so a restart resumes it. A study retrieved as a prior
 * is never a case of its own: the workflow asks `isPrior` before it publishes one for a stable study.
 *
 * At a reader, the list is the site's record; a reader that fetches the case's study (a STAT case while on
 * duty, a case it claimed or consults on) fetches its shared priors once the case's own images are whole.
 */
import type { AuditActor, AuditLog } from '../audit/log.ts'
import type { CasePriors } from '../../protocol/api/priors.ts'
import type { WorklistRecord } from '../../protocol/collab/records.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { Archive } from '../archive/archive.ts'
import type { DicomDestination } from '../dicom/peers.ts'
import type { Exchange } from '../exchange/exchange.ts'
import type { Identity } from '../identity/keys.ts'
import type { Logger } from '../log.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { CaseState } from '../worklist/cases.ts'
import type { PriorRule } from '../worklist/prior-rule.ts'
import type { Worklist } from '../worklist/worklist.ts'
import { findPriors, pacsText, retrievePrior, subjectOf } from './prior-search.ts'
import { answerFromRecord, answerFromSearch } from './prior-answer.ts'
import { fetchCasePriors, sharePriorsWith } from './prior-fetch.ts'
import { type PriorSearch, PriorSearches, recordEntries } from './prior-state.ts'

export interface PriorRetry {
  /** the first retry after this long; each next one twice as long */
  firstMs: number
  /** at most this long between two attempts */
  maxMs: number
  /** a search still failing this long after the case was published is given up */
  giveUpMs: number
}
export const DEFAULT_PRIOR_RETRY: PriorRetry = { firstMs: 5_000, maxMs: 300_000, giveUpMs: 24 * 3600_000 }

export interface CasePriorsOptions {
  home: string
  /** the site's PACS; none: no search */
  pacs: DicomDestination | undefined
  rule: PriorRule
  /** the node's AE title, calling the PACS */
  aeTitle: string
  archive: Archive
  exchange: Pick<Exchange, 'share' | 'fetch' | 'availability'>
  worklist: Pick<Worklist, 'onChange' | 'caseState' | 'requireCase' | 'ensureCase' | 'add' | 'liveCases'>
  identity: Pick<Identity, 'peerId'>
  registry: Pick<MembershipRegistry, 'isMember' | 'self'>
  /** whether a radiologist is on duty now (the workflow's shifts) */
  onDuty: (peerId: string) => boolean
  /** each query of the PACS about a patient is audited (110112 Query) */
  audit?: Pick<AuditLog, 'append'>
  log: Logger
  retry?: PriorRetry
}

export class CasePriorsService {
  readonly #o: CasePriorsOptions
  readonly #retry: PriorRetry
  readonly #searches: PriorSearches
  /** study UIDs this site retrieved, or is retrieving, as priors */
  readonly #priorStudies = new Set<string>()
  readonly #timers = new Map<string, NodeJS.Timeout>()
  readonly #running = new Set<string>()
  /** cases whose priors this reader has begun to fetch */
  readonly #fetching = new Set<string>()
  #unsubscribe: (() => void) | undefined
  #stopped = false

  constructor(options: CasePriorsOptions) {
    this.#o = options
    this.#retry = options.retry ?? DEFAULT_PRIOR_RETRY
    this.#searches = new PriorSearches(options.home, options.log)
  }

  get #isSite(): boolean {
    return this.#o.registry.self.role === 'site'
  }

  get #actor(): AuditActor {
    return { type: 'peer', id: this.#o.identity.peerId }
  }

  async start(): Promise<void> {
    if (this.#isSite) {
      for (const search of await this.#searches.load()) {
        for (const prior of search.priors) this.#priorStudies.add(prior.studyInstanceUid)
        if (['pending', 'querying', 'retrying'].includes(search.state)) this.#schedule(search)
        else if (search.state === 'done' && !search.published) this.#schedule(search)
      }
    }
    this.#unsubscribe = this.#o.worklist.onChange(changed => {
      this.#react(changed)
    })
    this.#react()
  }

  stop(): void {
    this.#stopped = true
    this.#unsubscribe?.()
    for (const timer of this.#timers.values()) clearTimeout(timer)
    this.#timers.clear()
  }

  /** Whether the site retrieved this study as a prior (and so must not make a case of it). */
  isPrior(studyUid: string): boolean {
    return this.#priorStudies.has(studyUid)
  }

  // The answer of GET /api/cases/:caseId/priors

  async casePriors(caseId: string): Promise<CasePriors> {
    const state = this.#o.worklist.requireCase(caseId)
    const mine = state.site === this.#o.identity.peerId
    const search = this.#isSite && mine ? this.#searches.get(caseId) : undefined
    if (search !== undefined) {
      return await answerFromSearch(
        state,
        search,
        async prior => await this.#heldHere(prior.studyInstanceUid, prior.instances)
      )
    }
    const pacs = mine && this.#o.pacs !== undefined ? pacsText(this.#o.pacs) : null
    return await answerFromRecord(state, { mine, pacs }, async uid => await this.#o.exchange.availability(uid))
  }

  async #heldHere(studyUid: string, instances: number): Promise<boolean> {
    const study = await this.#o.archive.study(studyUid)
    return study !== undefined && study.instanceCount >= Math.max(1, instances)
  }

  // What changed records mean here

  #react(changed?: WorklistRecord[]): void {
    const me = this.#o.identity.peerId
    if (this.#isSite) {
      if (this.#o.pacs === undefined) return
      const published =
        changed === undefined
          ? this.#o.worklist
              .liveCases()
              .filter(c => c.site === me && c.status !== 'COMPLETED' && c.status !== 'CANCELED')
          : changed.flatMap(r =>
              r.kind === 'case' && r.site === me ? (this.#o.worklist.caseState(r.caseId) ?? []) : []
            )
      for (const state of published) {
        // A de-identified copy's case (a second opinion) names no patient the PACS knows: nothing to search.
        if ((state as { purpose?: string }).purpose !== undefined) continue
        if (this.#searches.get(state.caseId) === undefined && !this.#running.has(state.caseId)) this.#begin(state)
      }
      return
    }
    for (const record of changed ?? []) {
      if (record.kind !== 'consult' || record.by !== me) continue
      const state = this.#o.worklist.caseState(record.caseId)
      void sharePriorsWith(state, record.consultant, { ...this.#o, actor: this.#actor })
    }
    const states =
      changed === undefined || changed.some(r => !('caseId' in r))
        ? this.#o.worklist.liveCases()
        : [...new Set(changed.map(r => (r as { caseId: string }).caseId))].flatMap(
            id => this.#o.worklist.caseState(id) ?? []
          )
    for (const state of states) {
      if (state.priors === undefined || state.priors.length === 0 || this.#fetching.has(state.caseId)) continue
      if (state.status === 'COMPLETED' || state.status === 'CANCELED') continue
      const stat = state.priority === 'STAT' && state.readers.includes(me) && this.#o.onDuty(me)
      const mine = state.claimedBy === me || state.consultants.includes(me)
      if (!stat && !mine) continue
      this.#fetching.add(state.caseId)
      const { exchange, log } = this.#o
      void fetchCasePriors(state, { exchange, log, actor: this.#actor, stopped: () => this.#stopped }).catch(
        (error: unknown) => {
          this.#o.log.warn({ err: error, case: state.caseId }, "could not fetch a case's priors")
        }
      )
    }
  }

  // Site: the search

  #begin(state: CaseState): void {
    const pacs = this.#o.pacs as DicomDestination
    const search: PriorSearch = {
      caseId: state.caseId,
      studyInstanceUid: state.studyUid,
      pacs: pacsText(pacs),
      state: 'pending',
      attempts: 0,
      lastError: null,
      nextAttemptAt: null,
      startedAt: state.createdAt,
      published: false,
      priors: []
    }
    this.#running.add(state.caseId)
    void this.#searches
      .save(search)
      .then(() => this.#attempt(search))
      .catch((error: unknown) => {
        this.#o.log.error({ err: error, case: state.caseId }, 'could not begin the search for priors')
      })
  }

  #schedule(search: PriorSearch): void {
    const due = search.nextAttemptAt === null ? 0 : Math.max(0, Date.parse(search.nextAttemptAt) - Date.now())
    clearTimeout(this.#timers.get(search.caseId))
    const timer = setTimeout(() => {
      this.#timers.delete(search.caseId)
      if (!this.#stopped) void this.#attempt(search)
    }, due)
    timer.unref()
    this.#timers.set(search.caseId, timer)
  }

  async #attempt(search: PriorSearch): Promise<void> {
    const { archive, worklist, log } = this.#o
    const pacs = this.#o.pacs
    if (pacs === undefined || this.#stopped) return
    this.#running.add(search.caseId)
    const caseId = search.caseId
    try {
      // A search resumed after a restart may be of a case no longer live: it is loaded from disk.
      const state = await worklist.ensureCase(caseId)
      if (state === undefined) {
        await this.#finish(search, 'failed', `case ${caseId} is not on this node's worklist any more`)
        return
      }
      if (search.state !== 'done') {
        await this.#searches.save({ ...search, state: 'querying', attempts: search.attempts + 1 })
        Object.assign(search, this.#searches.get(caseId))
        log.info(
          { event: 'prior-search', case: caseId, pacs: search.pacs, attempt: search.attempts },
          `searching ${search.pacs} for the priors of case ${caseId}`
        )
        const study = await archive.study(state.studyUid)
        if (study === undefined) throw new Error(`the case's study ${state.studyUid} is not in the archive`)
        const subject = subjectOf(study, state.bodyPart)
        if (typeof subject === 'string') {
          await this.#finish(search, 'failed', subject)
          return
        }
        const chosen = await findPriors(pacs, this.#o.aeTitle, subject, this.#o.rule).catch(async (error: unknown) => {
          await this.#audited(search, state.studyUid, 8, `failed: ${(error as Error).message}`)
          throw error
        })
        await this.#audited(search, state.studyUid, 0, `${chosen.length} prior(s) chosen`)
        search.priors = chosen.map(c => ({
          studyInstanceUid: c.studyInstanceUid,
          studyDate: c.studyDate,
          studyDescription: c.studyDescription,
          modalities: c.modalities,
          bodyPart: c.bodyParts.find(b => b.toUpperCase() === state.bodyPart.toUpperCase()) ?? c.bodyParts[0] ?? '',
          accessionNumber: c.accessionNumber,
          instances: c.instances,
          state: 'found',
          error: null
        }))
        // Known as priors before any of their instances is stored: none becomes a case.
        for (const prior of search.priors) this.#priorStudies.add(prior.studyInstanceUid)
        await this.#searches.save(search)
        for (const prior of search.priors) {
          if (this.#stopped) return
          await this.#retrieveAndShare(pacs, state, search, prior)
        }
        await this.#finish(search, 'done', null)
      }
      await this.#publish(search)
    } catch (error) {
      if (this.#stopped) return
      await this.#failed(search, (error as Error).message)
    } finally {
      this.#running.delete(caseId)
    }
  }

  async #retrieveAndShare(
    pacs: DicomDestination,
    state: CaseState,
    search: PriorSearch,
    prior: PriorSearch['priors'][number]
  ): Promise<void> {
    const { archive, exchange, registry, log } = this.#o
    if (!(await this.#heldHere(prior.studyInstanceUid, prior.instances))) {
      prior.state = 'retrieving'
      await this.#searches.save(search)
      const outcome = await retrievePrior(pacs, this.#o.aeTitle, prior.studyInstanceUid, archive, this.#o.rule.retrieve)
      log.info(
        { event: 'prior-retrieved', case: search.caseId, study: prior.studyInstanceUid, ...outcome },
        `prior ${prior.studyInstanceUid} of case ${search.caseId}: ${outcome.completed} instance(s) retrieved`
      )
      if (outcome.completed + outcome.warning === 0) {
        prior.state = 'failed'
        prior.error = `${search.pacs} sent none of its instances (${outcome.failed} failed)`
        await this.#searches.save(search)
        return
      }
      prior.instances = Math.max(prior.instances, outcome.completed + outcome.warning)
    }
    const readers = state.readers.filter(peer => registry.isMember(peer))
    if (readers.length > 0) await exchange.share(prior.studyInstanceUid, readers, this.#actor)
    prior.state = 'shared'
    prior.error = null
    await this.#searches.save(search)
  }

  /** The PACS was asked about the case's patient: 110112 Query, by this node, naming the case's study. */
  async #audited(search: PriorSearch, studyUid: string, outcome: 0 | 8, detail: string): Promise<void> {
    await this.#o.audit?.append({
      event: 'query',
      action: 'E',
      outcome,
      actor: this.#actor,
      study: studyUid,
      detail: `C-FIND of ${search.pacs} for the priors of case ${search.caseId}: ${detail}`.slice(0, 300)
    })
  }

  async #finish(search: PriorSearch, state: 'done' | 'failed', error: string | null): Promise<void> {
    search.state = state
    search.lastError = error
    search.nextAttemptAt = null
    await this.#searches.save(search)
    const shared = search.priors.filter(p => p.state === 'shared').length
    this.#o.log.info(
      { event: 'prior-search-done', case: search.caseId, state, priors: search.priors.length, shared, error },
      `priors of case ${search.caseId}: ${state}, ${shared} shared${error === null ? '' : ` (${error})`}`
    )
  }

  async #failed(search: PriorSearch, error: string): Promise<void> {
    const { firstMs, maxMs, giveUpMs } = this.#retry
    if (Date.now() - Date.parse(search.startedAt) > giveUpMs) {
      this.#o.log.error(
        { event: 'prior-search-failed', case: search.caseId, pacs: search.pacs, attempts: search.attempts, error },
        `gave up searching ${search.pacs} for the priors of case ${search.caseId}: ${error}`
      )
      await this.#finish(search, 'failed', error)
      return
    }
    const waitMs = Math.min(maxMs, firstMs * 2 ** Math.max(0, search.attempts - 1))
    search.state = 'retrying'
    search.lastError = error
    search.nextAttemptAt = new Date(Date.now() + waitMs).toISOString()
    await this.#searches.save(search)
    this.#o.log.warn(
      { event: 'prior-search-retry', case: search.caseId, pacs: search.pacs, attempts: search.attempts, error },
      `searching ${search.pacs} for the priors of case ${search.caseId} failed (${error}); ` +
        `trying again in ${Math.round(waitMs / 1000)} s`
    )
    this.#schedule(search)
  }

  /** The `priors` record of the case: what the readers see. */
  async #publish(search: PriorSearch): Promise<void> {
    if (search.published) return
    const me = this.#o.identity.peerId as PeerIdString
    const priors = recordEntries(search)
    await this.#o.worklist.add({
      v: 1,
      kind: 'priors',
      caseId: search.caseId,
      priors,
      by: me,
      at: new Date().toISOString()
    })
    search.published = true
    await this.#searches.save(search)
  }
}
