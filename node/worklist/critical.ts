/**
 * Critical results, derived from a case's records the same way on every node (cases.ts keeps them in the case's
 * state), and how far each has escalated, which depends on the time and on the site's settings.
 *
 *   - A `critical` record counts when a reader of the case (routed to it, or a consultant) wrote it; of two with
 *     the same id, the earlier wins.
 *   - Its acknowledgement is the earliest `critical-ack` naming it written by the case's site.
 *   - Calls are the `critical-call` records naming it written by a reader of the case, in time order.
 *   - Escalations told are the `critical-escalation` records naming it written by the case's site, the earliest
 *     per step (a record written twice, or replayed, counts once).
 *   - Escalation: step 0 is the raise (the first person of the call list is told); each time the level's
 *     deadline passes without an acknowledgement the next step is reached (the next person on the list is told,
 *     and the reader sees it), up to the end of the list.
 */
import {
  CRITICAL_LEVELS,
  type CriticalAckRecord,
  type CriticalCallRecord,
  type CriticalEscalationRecord,
  type CriticalLevel,
  type CriticalRecord
} from '../../protocol/collab/records.ts'

export interface CriticalAck {
  by: string
  name: string
  role: string
  at: string
}
export interface CriticalCall {
  by: string
  note: string
  at: string
}
/** What a case's records say of one critical result. */
export interface CriticalFact {
  id: string
  caseId: string
  level: CriticalLevel
  text: string
  /** the reader who raised it */
  by: string
  at: string
  ack: CriticalAck | null
  calls: CriticalCall[]
  /** the steps the site recorded telling its call list of, by step (absent in states indexed before there were any) */
  told?: EscalationStep[]
}

/** A site's settings (routing.json `critical`). */
export interface CriticalSettings {
  /** minutes to acknowledge, per level, before it escalates (fractions allowed) */
  deadlines: Record<CriticalLevel, number>
  /** people to tell, in order, and webhook URLs (`http://`, `https://`) that get every notice */
  callList: string[]
}

/** Critical within the hour (ACR), urgent within 4 hours, unexpected within a day. */
export const DEFAULT_CRITICAL_SETTINGS: CriticalSettings = {
  deadlines: { critical: 60, urgent: 240, unexpected: 1440 },
  callList: []
}

const isWebhook = (entry: string): boolean => /^https?:\/\//i.test(entry)
export const webhooksOf = (settings: CriticalSettings): string[] => settings.callList.filter(isWebhook)
export const peopleOf = (settings: CriticalSettings): string[] => settings.callList.filter(e => !isWebhook(e))

/** The settings in routing.json's `critical` (undefined: the defaults), or why they are wrong. */
export function criticalSettings(value: unknown): CriticalSettings | string {
  if (value === undefined) return DEFAULT_CRITICAL_SETTINGS
  if (typeof value !== 'object' || value === null) return '"critical" must be an object'
  const { deadlines = {}, callList = [] } = value as { deadlines?: unknown; callList?: unknown }
  if (typeof deadlines !== 'object' || deadlines === null) return '"critical.deadlines" must be an object'
  const merged = { ...DEFAULT_CRITICAL_SETTINGS.deadlines, ...(deadlines as Partial<Record<CriticalLevel, number>>) }
  for (const level of CRITICAL_LEVELS) {
    if (typeof merged[level] !== 'number' || !(merged[level] > 0)) {
      return `critical.deadlines.${level} must be a positive number of minutes`
    }
  }
  if (!Array.isArray(callList) || callList.some(entry => typeof entry !== 'string' || entry.trim() === '')) {
    return '"critical.callList" must be a list of names and webhook URLs'
  }
  return { deadlines: merged, callList: callList as string[] }
}

const byTime = <T extends { at: string; signature: string }>(a: T, b: T): number =>
  a.at < b.at ? -1 : a.at > b.at ? 1 : a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0

/** The critical results of one case, from its records; `readers` may raise and call, `site` acknowledges. */
export function deriveCriticalFacts(
  records: {
    critical: CriticalRecord[]
    acks: CriticalAckRecord[]
    calls: CriticalCallRecord[]
    escalations?: CriticalEscalationRecord[]
  },
  site: string,
  readers: ReadonlySet<string>
): CriticalFact[] {
  const facts = new Map<string, CriticalFact>()
  for (const record of records.critical.filter(r => readers.has(r.by)).sort(byTime)) {
    if (facts.has(record.id)) continue
    facts.set(record.id, {
      id: record.id,
      caseId: record.caseId,
      level: record.level,
      text: record.text,
      by: record.by,
      at: record.at,
      ack: null,
      calls: [],
      told: []
    })
  }
  for (const ack of records.acks.filter(r => r.by === site).sort(byTime)) {
    const fact = facts.get(ack.criticalId)
    if (fact !== undefined && fact.ack === null) fact.ack = { by: ack.by, name: ack.name, role: ack.role, at: ack.at }
  }
  for (const call of records.calls.filter(r => readers.has(r.by)).sort(byTime)) {
    facts.get(call.criticalId)?.calls.push({ by: call.by, note: call.note, at: call.at })
  }
  for (const escalation of (records.escalations ?? []).filter(r => r.by === site).sort(byTime)) {
    const told = facts.get(escalation.criticalId)?.told
    if (told === undefined || told.some(s => s.step === escalation.step)) continue
    told.push({ step: escalation.step, at: escalation.at, notify: escalation.notify === '' ? null : escalation.notify })
  }
  for (const fact of facts.values()) fact.told?.sort((a, b) => a.step - b.step)
  return [...facts.values()]
}

export interface EscalationStep {
  /** 0: raised; 1 and on: escalations */
  step: number
  at: string
  /** the person on the call list told at this step, if the list names anyone */
  notify: string | null
}
export interface Escalation {
  steps: EscalationStep[]
  /** when it must be acknowledged by before the next step, or null (acknowledged, or the list is exhausted) */
  nextAt: string | null
  /** unacknowledged past its level's deadline */
  overdue: boolean
}

/** How far a critical result has escalated at `now` under `settings`. */
export function escalationOf(fact: CriticalFact, settings: CriticalSettings, now = Date.now()): Escalation {
  const people = peopleOf(settings)
  const deadlineMs = settings.deadlines[fact.level] * 60_000
  const raised = Date.parse(fact.at)
  const until = fact.ack === null ? now : Date.parse(fact.ack.at)
  // After the last person on the list (or one escalation when it names nobody but the reader), no further step.
  const last = Math.max(1, people.length - 1)
  const reached = Math.min(last, Math.max(0, Math.floor((until - raised) / deadlineMs)))
  const steps: EscalationStep[] = []
  for (let step = 0; step <= reached; step++) {
    steps.push({
      step,
      at: new Date(raised + step * deadlineMs).toISOString(),
      notify: people[Math.min(step, people.length - 1)] ?? null
    })
  }
  const nextAt =
    fact.ack === null && reached < last ? new Date(raised + (reached + 1) * deadlineMs).toISOString() : null
  return { steps, nextAt, overdue: fact.ack === null && now - raised >= deadlineMs }
}

export interface CriticalAckSummary {
  level: CriticalLevel
  raised: number
  acknowledged: number
  medianAckMinutes: number | null
  maxAckMinutes: number | null
}

/** Time from raise to acknowledgement, by level (`/api/tat`). */
export function summariseCriticalAck(facts: Iterable<CriticalFact>): CriticalAckSummary[] {
  const list = [...facts]
  return CRITICAL_LEVELS.map(level => {
    const mine = list.filter(f => f.level === level)
    const minutes = mine
      .filter(f => f.ack !== null)
      .map(f => (Date.parse((f.ack as CriticalAck).at) - Date.parse(f.at)) / 60_000)
      .sort((a, b) => a - b)
    const round = (value: number | undefined): number | null =>
      value === undefined ? null : Math.round(value * 10) / 10
    return {
      level,
      raised: mine.length,
      acknowledged: minutes.length,
      medianAckMinutes: round(minutes[Math.ceil(minutes.length / 2) - 1]),
      maxAckMinutes: round(minutes.at(-1))
    }
  })
}
