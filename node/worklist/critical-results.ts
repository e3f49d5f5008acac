/**
 * Critical results on this node: flagged by a reader (`raise`), acknowledged by the case's site (`acknowledge`),
 * calls recorded by the reader (`recordCall`); each a signed record of the case (critical.ts derives them), so
 * they replicate and survive a partition like the rest of the worklist. The case's site raises each at once: a
 * notice to its call list (critical-notice.ts) and an audit entry; a timer escalates the unacknowledged ones as
 * their level's deadline passes (routing.json `critical`), telling the next person on the list.
 *
 * Each step the site tells its call list of (0: the raise, then each escalation) is first written as a signed
 * `critical-escalation` record of the case, then told: the reader sees the escalations as the site made them,
 * whatever its own settings, and a restarted site tells exactly the steps it has no record of. Only the case's
 * site writes them (check.ts refuses anyone else's), and of two records of one step the earliest counts, so a
 * record replayed or written twice changes nothing.
 */
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { CriticalResult } from '../../protocol/api/critical.ts'
import type { CriticalLevel, WorklistRecord } from '../../protocol/collab/records.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { AuditActor, AuditLog } from '../audit/log.ts'
import { CaseError } from '../errors.ts'
import type { CaseState } from './cases.ts'
import { type CriticalFact, type CriticalSettings, type EscalationStep, escalationOf, webhooksOf } from './critical.ts'
import { mayRaiseCritical } from './critical-check.ts'
import { type CriticalNotice, type CriticalNoticeSink, postWebhook } from './critical-notice.ts'
import type { Worklist } from './worklist.ts'

/** The escalation timer never sleeps longer than this (clock changes, settings with long deadlines). */
const MAX_TIMER_MS = 60_000
const CRITICAL_KINDS = new Set(['critical', 'critical-ack', 'critical-call', 'critical-escalation'])

export interface CriticalResultsOptions {
  peerId: string
  worklist: Pick<Worklist, 'onChange' | 'allCases' | 'requireCase' | 'add' | 'nameOf'>
  audit: Pick<AuditLog, 'append'>
  settings: CriticalSettings
  log: Logger
  /** more ways to tell the call list than its webhooks (HL7, say) */
  sinks?: CriticalNoticeSink[]
  /** at the site: the original case of a second opinion's copy, so a result flagged on the copy names its patient */
  originalCaseOf?: (copyCaseId: string) => string | undefined
  /** the clock (tests) */
  now?: () => number
}

export class CriticalResults {
  private readonly o: CriticalResultsOptions
  private readonly now: () => number
  /** `id:step` of the escalation records being written now (so a check meanwhile does not write them again) */
  private readonly writing = new Set<string>()
  private readonly sending = new Set<Promise<unknown>>()
  private readonly sinks: CriticalNoticeSink[]
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined

  constructor(options: CriticalResultsOptions) {
    this.o = options
    this.now = options.now ?? Date.now
    this.sinks = [...(options.sinks ?? [])]
  }

  /** One more way to tell the call list (HL7 to the RIS, wired once the report delivery exists); before `start`. */
  addSink(sink: CriticalNoticeSink): void {
    this.sinks.push(sink)
  }

  /** Steps reached while the node was down, and not recorded as told, are told now (`check`). */
  start(): void {
    this.unsubscribe = this.o.worklist.onChange(changed => {
      this.onChange(changed)
    })
    this.check()
  }

  async stop(): Promise<void> {
    this.unsubscribe?.()
    clearTimeout(this.timer)
    this.timer = undefined
    // An escalation being written tells its call list once written: wait for those notices too.
    while (this.sending.size > 0) await Promise.allSettled([...this.sending])
  }

  /** The critical results of the cases this node is on, the unacknowledged and most pressing first. */
  list(openOnly = false): CriticalResult[] {
    const now = this.now()
    return this.mine()
      .filter(({ fact }) => !openOnly || fact.ack === null)
      .map(({ state, fact }) => this.view(state, fact, now))
      .sort(
        (a, b) =>
          Number(a.acknowledged !== null) - Number(b.acknowledged !== null) || b.raisedAt.localeCompare(a.raisedAt)
      )
  }

  /** A reader of the case flags a finding. */
  async raise(caseId: string, level: CriticalLevel, text: string, actor: AuditActor): Promise<CriticalResult> {
    const state = this.o.worklist.requireCase(caseId)
    if (!mayRaiseCritical(state, this.o.peerId)) {
      throw new CaseError('RADMESH_NOT_ALLOWED', `only a reader of case ${caseId} can flag a critical result on it`)
    }
    const id = randomBytes(12).toString('hex')
    await this.o.worklist.add({
      v: 1,
      kind: 'critical',
      caseId,
      id,
      level,
      text,
      by: this.o.peerId as PeerIdString,
      at: new Date(this.now()).toISOString()
    })
    await this.audit(actor, state, `critical result ${id} raised (${level})`, 'C')
    return this.require(id)
  }

  /** The case's site acknowledges a result, naming the person who took it; a second acknowledgement changes nothing. */
  async acknowledge(id: string, name: string, role: string, actor: AuditActor): Promise<CriticalResult> {
    const { state, fact } = this.find(id)
    if (state.site !== this.o.peerId) {
      throw new CaseError('RADMESH_NOT_ALLOWED', `only case ${state.caseId}'s site acknowledges its critical results`)
    }
    if (fact.ack === null) {
      await this.o.worklist.add({
        v: 1,
        kind: 'critical-ack',
        caseId: state.caseId,
        criticalId: id,
        name,
        role,
        by: this.o.peerId as PeerIdString,
        at: new Date(this.now()).toISOString()
      })
      await this.audit(actor, state, `critical result ${id} acknowledged by ${name}`)
    }
    return this.require(id)
  }

  /** A reader records a phone call about a result. */
  async recordCall(id: string, note: string, actor: AuditActor): Promise<CriticalResult> {
    const { state } = this.find(id)
    if (!mayRaiseCritical(state, this.o.peerId)) {
      throw new CaseError('RADMESH_NOT_ALLOWED', `only a reader of case ${state.caseId} records calls about it`)
    }
    await this.o.worklist.add({
      v: 1,
      kind: 'critical-call',
      caseId: state.caseId,
      criticalId: id,
      note,
      by: this.o.peerId as PeerIdString,
      at: new Date(this.now()).toISOString()
    })
    await this.audit(actor, state, `call about critical result ${id} recorded`)
    return this.require(id)
  }

  /**
   * At the case's site: records and tells the call list of every step reached that has no record yet (none once
   * acknowledged: a result acknowledged before this node saw a step needs no one else told); sets the timer.
   */
  check(): void {
    const now = this.now()
    for (const { state, fact } of this.mine()) {
      if (state.site !== this.o.peerId || fact.ack !== null) continue
      const recorded = new Set((fact.told ?? []).map(step => step.step))
      for (const step of escalationOf(fact, this.o.settings, now).steps) {
        const key = `${fact.id}:${step.step}`
        if (recorded.has(step.step) || this.writing.has(key)) continue
        this.writing.add(key)
        this.track(
          this.escalate(state, fact, step, now).finally(() => {
            this.writing.delete(key)
          }),
          fact.id
        )
      }
    }
    this.schedule()
  }

  /** Writes the step's record, then tells the call list of it. */
  private async escalate(state: CaseState, fact: CriticalFact, step: EscalationStep, now: number): Promise<void> {
    await this.o.worklist.add({
      v: 1,
      kind: 'critical-escalation',
      caseId: state.caseId,
      criticalId: fact.id,
      step: step.step,
      notify: step.notify ?? '',
      by: this.o.peerId as PeerIdString,
      at: new Date(now).toISOString()
    })
    const current = this.mine().find(found => found.fact.id === fact.id)
    this.tell(
      {
        event: step.step === 0 ? 'critical-raised' : 'critical-escalated',
        step: step.step,
        notify: step.notify,
        critical: this.view(current?.state ?? state, current?.fact ?? fact, now)
      },
      state
    )
  }

  /** Sends a notice to every webhook and sink, in the background, and audits it. */
  private tell(notice: CriticalNotice, state: CaseState): void {
    const { log, settings } = this.o
    const { sinks } = this
    const { id, level } = notice.critical
    const who = notice.notify === null ? '' : ` (${notice.notify})`
    log.warn(
      { event: notice.event, critical: id, caseId: state.caseId, level, step: notice.step, notify: notice.notify },
      notice.step === 0
        ? `critical result (${level}) on case ${state.caseId}${who}`
        : `critical result ${id} unacknowledged: escalated to step ${notice.step}${who}`
    )
    const actor: AuditActor = { type: 'peer', id: notice.step === 0 ? notice.critical.by : this.o.peerId }
    const detail =
      notice.step === 0
        ? `critical result ${id} received (${level})`
        : `critical result ${id} escalated to step ${notice.step}`
    const work = [
      this.audit(actor, state, detail),
      ...webhooksOf(settings).map(async url => await postWebhook(url, notice, log)),
      ...sinks.map(async sink => {
        await sink(notice)
      })
    ]
    for (const promise of work) this.track(promise, id)
  }

  private track(promise: Promise<unknown>, id: string): void {
    const tracked = promise
      .catch(error => {
        this.o.log.error({ err: error, critical: id }, 'a critical result notice failed')
      })
      .finally(() => {
        this.sending.delete(tracked)
      })
    this.sending.add(tracked)
  }

  private onChange(changed: WorklistRecord[]): void {
    if (!changed.some(record => CRITICAL_KINDS.has(record.kind))) return
    this.check()
    // The reader who raised a result hears of its escalations from the site's records.
    for (const record of changed) {
      if (record.kind !== 'critical-escalation' || record.step === 0) continue
      const found = this.mine().find(({ fact }) => fact.id === record.criticalId)
      if (found === undefined || found.fact.by !== this.o.peerId || found.fact.ack !== null) continue
      this.o.log.warn(
        { event: 'critical-escalated-seen', critical: record.criticalId, step: record.step, notify: record.notify },
        `critical result ${record.criticalId} you raised is unacknowledged: the site escalated it to step ` +
          `${record.step}${record.notify === '' ? '' : ` (${record.notify})`}; phone and record the call`
      )
    }
  }

  private schedule(): void {
    clearTimeout(this.timer)
    const now = this.now()
    let next = Infinity
    for (const { state, fact } of this.mine()) {
      if (state.site !== this.o.peerId) continue
      const at = escalationOf(fact, this.o.settings, now).nextAt
      if (at !== null) next = Math.min(next, Date.parse(at))
    }
    if (next === Infinity) return
    this.timer = setTimeout(
      () => {
        this.check()
      },
      Math.min(MAX_TIMER_MS, Math.max(0, next - now) + 10)
    )
    this.timer.unref()
  }

  private mine(): Array<{ state: CaseState; fact: CriticalFact }> {
    const me = this.o.peerId
    const found: Array<{ state: CaseState; fact: CriticalFact }> = []
    for (const state of this.o.worklist.allCases()) {
      if (state.critical === undefined || (state.site !== me && !mayRaiseCritical(state, me))) continue
      for (const fact of state.critical) found.push({ state, fact })
    }
    return found
  }

  private find(id: string): { state: CaseState; fact: CriticalFact } {
    const found = this.mine().find(({ fact }) => fact.id === id)
    if (found === undefined) throw new CaseError('RADMESH_NOT_FOUND', `no critical result ${id} on this node`)
    return found
  }

  private require(id: string): CriticalResult {
    const { state, fact } = this.find(id)
    return this.view(state, fact, this.now())
  }

  /**
   * The steps are the site's records of them (as its call list was told, on every node alike); the next step and
   * whether it is overdue are this node's reckoning, under the site's settings at the site. Elsewhere a result is
   * overdue too once the site recorded an escalation of it.
   */
  private view(state: CaseState, fact: CriticalFact, now: number): CriticalResult {
    const computed = escalationOf(fact, this.o.settings, now)
    const told = fact.told ?? []
    const escalation = {
      steps: fact.told ?? computed.steps,
      nextAt: computed.nextAt,
      overdue: fact.ack === null && (computed.overdue || told.some(step => step.step > 0))
    }
    return {
      id: fact.id,
      caseId: state.caseId,
      studyInstanceUid: state.studyUid,
      site: state.site,
      siteName: state.siteName,
      level: fact.level,
      text: fact.text,
      by: fact.by,
      byName: this.o.worklist.nameOf(fact.by),
      raisedAt: fact.at,
      acknowledged: fact.ack === null ? null : { by: fact.ack.name, role: fact.ack.role, at: fact.ack.at },
      escalations: escalation.steps,
      nextEscalationAt: escalation.nextAt,
      overdue: escalation.overdue,
      calls: fact.calls.map(call => ({ by: call.by, note: call.note, at: call.at })),
      ...this.original(state)
    }
  }

  private original(state: CaseState): { originalCaseId?: string } {
    if (state.purpose !== 'second-opinion' || state.site !== this.o.peerId) return {}
    const originalCaseId = this.o.originalCaseOf?.(state.caseId)
    return originalCaseId === undefined ? {} : { originalCaseId }
  }

  private async audit(actor: AuditActor, state: CaseState, detail: string, action: 'C' | 'U' = 'U'): Promise<void> {
    await this.o.audit.append({ event: 'patientRecord', action, outcome: 0, actor, study: state.studyUid, detail })
  }
}
