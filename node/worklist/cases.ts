/**
 * What the worklist says about each case, derived from its set of records alone, the same way on every node:
 * nodes holding the same records agree on every case's status and holder, whatever order the records came in.
 *
 * Claims (the rule is documented in protocol/PROTOCOL.md):
 *   - A node writes a claim or release with `seq` = 1 + the highest `seq` of the case's claims and releases
 *     it has seen, so a record made after another always sorts after it.
 *   - The case's claims and releases are replayed in the order (seq, at, kind, key). A claim takes the case
 *     if it is free at that point; otherwise it lost. A release frees the case if it names the holding claim.
 *   - So of two claims made at once (same seq), the earlier `at` wins, then the lower record key; the loser's
 *     node sees the winner as soon as it has the winner's record, and its further claims get 409.
 * Only readers the case names may claim; a consult can be asked by a reader who has claimed it. A FINAL
 * signature completes a case (COMPLETED) even if a cancel crossed it; a cancel by the case's site cancels it.
 */
import type {
  AcquiredRecord,
  CancelRecord,
  CasePurpose,
  CaseRecord,
  CaseStatus,
  ClaimRecord,
  ConsultRecord,
  CriticalAckRecord,
  CriticalCallRecord,
  CriticalEscalationRecord,
  CriticalRecord,
  Priority,
  ReleaseRecord,
  SignedRecord,
  WorklistRecord
} from '../../protocol/collab/records.ts'
import type { PriorEntry, PriorsRecord } from '../../protocol/collab/records.ts'
import { recordKey } from '../../protocol/collab/records.ts'
import { type CriticalFact, deriveCriticalFacts } from './critical.ts'

export { CASE_STATUSES, type CaseStatus } from '../../protocol/collab/records.ts'

export interface CaseState {
  caseId: string
  studyUid: string
  site: string
  siteName: string
  priority: Priority
  subspecialty: string
  modalities: string[]
  bodyPart: string
  readers: string[]
  status: CaseStatus
  claimedBy: string | null
  /** key of the holding claim record */
  claim: string | null
  /** every reader who has made a claim on the case (they may write its report) */
  claimers: string[]
  consultants: string[]
  /** highest seq of the case's claims and releases */
  seq: number
  createdAt: string
  dueAt: string
  claimedAt: string | null
  preliminaryAt: string | null
  finalAt: string | null
  canceledAt: string | null
  /** the FINAL signed record's report hash, once there is one */
  finalReportHash: string | null
  /** its critical results (critical.ts); absent when it has none, and in states indexed before there were any */
  critical?: CriticalFact[]
  /** the priors its site listed (its latest `priors` record); absent until it lists them */
  priors?: PriorEntry[]
  /** 'second-opinion': a de-identified copy's case, read only by the members it was shared with */
  purpose?: CasePurpose
  /**
   * Present while the study is still arriving: the case was published at its first instance (a STAT study
   * streamed during its acquisition) and its site has not yet said the study is complete (`acquired`).
   */
  arriving?: true
}

interface CaseRecords {
  cases: CaseRecord[]
  acquired: AcquiredRecord[]
  claims: ClaimRecord[]
  releases: ReleaseRecord[]
  consults: ConsultRecord[]
  cancels: CancelRecord[]
  signed: SignedRecord[]
  critical: CriticalRecord[]
  acks: CriticalAckRecord[]
  calls: CriticalCallRecord[]
  escalations: CriticalEscalationRecord[]
  priors?: PriorsRecord[]
}

const byTime = <T extends { at: string; signature: string }>(a: T, b: T): number =>
  a.at < b.at ? -1 : a.at > b.at ? 1 : a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0

/** Every case the records describe, by case id. */
export function deriveCases(
  records: Iterable<WorklistRecord>,
  revoked: (peerId: string) => boolean = () => false
): Map<string, CaseState> {
  const grouped = new Map<string, CaseRecords>()
  const group = (caseId: string): CaseRecords => {
    let entry = grouped.get(caseId)
    if (entry === undefined) {
      entry = {
        cases: [],
        acquired: [],
        claims: [],
        releases: [],
        consults: [],
        cancels: [],
        signed: [],
        critical: [],
        acks: [],
        calls: [],
        escalations: []
      }
      grouped.set(caseId, entry)
    }
    return entry
  }
  for (const record of records) {
    switch (record.kind) {
      case 'case':
        group(record.caseId).cases.push(record)
        break
      case 'acquired':
        group(record.caseId).acquired.push(record)
        break
      case 'claim':
        group(record.caseId).claims.push(record)
        break
      case 'release':
        group(record.caseId).releases.push(record)
        break
      case 'consult':
        group(record.caseId).consults.push(record)
        break
      case 'cancel':
        group(record.caseId).cancels.push(record)
        break
      case 'signed':
        group(record.caseId).signed.push(record)
        break
      case 'critical':
        group(record.caseId).critical.push(record)
        break
      case 'critical-ack':
        group(record.caseId).acks.push(record)
        break
      case 'critical-call':
        group(record.caseId).calls.push(record)
        break
      case 'critical-escalation':
        group(record.caseId).escalations.push(record)
        break
      case 'priors': {
        const entry = group(record.caseId)
        entry.priors = [...(entry.priors ?? []), record]
        break
      }
      default:
        break
    }
  }
  const cases = new Map<string, CaseState>()
  for (const [caseId, entry] of grouped) {
    const state = deriveCase(entry, revoked)
    if (state !== undefined) cases.set(caseId, state)
  }
  return cases
}

function deriveCase(entry: CaseRecords, revoked: (peerId: string) => boolean): CaseState | undefined {
  // The site's first case record describes the case; a later one (a study re-announced) changes nothing.
  const published = entry.cases
    .filter(record => record.by === record.site)
    .sort((a, b) => byTime({ at: a.createdAt, signature: a.signature }, { at: b.createdAt, signature: b.signature }))[0]
  if (published === undefined) return undefined
  const readers = new Set(published.readers)

  const claims = entry.claims.filter(claim => readers.has(claim.by) && !revoked(claim.by))
  const events = [
    ...claims.map(record => ({ record, key: recordKey(record) })),
    ...entry.releases.map(record => ({ record, key: recordKey(record) }))
  ].sort(
    (a, b) =>
      a.record.seq - b.record.seq ||
      (a.record.at < b.record.at ? -1 : a.record.at > b.record.at ? 1 : 0) ||
      (a.record.kind < b.record.kind ? -1 : a.record.kind > b.record.kind ? 1 : 0) ||
      (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  )
  let holder: { record: ClaimRecord; key: string } | undefined
  let claimedAt: string | null = null
  let seq = 0
  for (const { record, key } of events) {
    seq = Math.max(seq, record.seq)
    if (record.kind === 'claim') {
      if (holder === undefined) {
        holder = { record, key }
        claimedAt ??= record.at
      }
    } else if (holder !== undefined && record.claim === holder.key && record.by === holder.record.by) {
      holder = undefined
    }
  }
  const claimers = [...new Set(claims.map(claim => claim.by))].sort()
  const claimerSet = new Set(claimers)
  const consulted = entry.consults.filter(c => claimerSet.has(c.by) && !revoked(c.consultant)).map(c => c.consultant)
  const consultants = [...new Set(consulted)].sort()
  const editors = new Set([...claimers, ...consultants])
  const signed = entry.signed.filter(record => editors.has(record.by)).sort(byTime)
  const final = signed.find(record => record.status === 'FINAL')
  const preliminary = signed.find(record => record.status === 'PRELIMINARY')
  const cancel = entry.cancels.filter(record => record.by === published.site).sort(byTime)[0]

  // The site's latest list of priors replaces its earlier ones.
  const priors = (entry.priors ?? [])
    .filter(record => record.by === published.site)
    .sort(byTime)
    .at(-1)?.priors
  const criticalReaders = new Set([...readers, ...consultants].filter(peer => !revoked(peer)))
  const critical = deriveCriticalFacts(entry, published.site, criticalReaders)

  const arriving = published.acquiring === true && !entry.acquired.some(record => record.by === published.site)

  const status: CaseStatus =
    final !== undefined
      ? 'COMPLETED'
      : cancel !== undefined
        ? 'CANCELED'
        : holder !== undefined
          ? 'IN PROGRESS'
          : 'SCHEDULED'
  return {
    caseId: published.caseId,
    studyUid: published.studyUid,
    site: published.site,
    siteName: published.siteName,
    priority: published.priority,
    subspecialty: published.subspecialty,
    modalities: published.modalities,
    bodyPart: published.bodyPart,
    readers: published.readers,
    status,
    claimedBy: holder?.record.by ?? null,
    claim: holder?.key ?? null,
    claimers,
    consultants,
    seq,
    createdAt: published.createdAt,
    dueAt: published.dueAt,
    claimedAt,
    preliminaryAt: preliminary?.at ?? null,
    finalAt: final?.at ?? null,
    canceledAt: final === undefined ? (cancel?.at ?? null) : null,
    finalReportHash: final?.reportHash ?? null,
    ...(critical.length > 0 ? { critical } : {}),
    ...(priors === undefined ? {} : { priors }),
    ...(published.purpose === undefined ? {} : { purpose: published.purpose }),
    ...(arriving ? { arriving: true as const } : {})
  }
}

export interface TatSummary {
  priority: Priority
  cases: number
  completed: number
  open: number
  overdue: number
  /** completed within their due time, of those completed */
  withinDue: number
  medianMinutes: number | null
  p90Minutes: number | null
  medianClaimMinutes: number | null
}

const minutesBetween = (from: string, to: string): number => (Date.parse(to) - Date.parse(from)) / 60_000

function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return Math.round((sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] as number) * 10) / 10
}

/** Turnaround time (created -> FINAL) and time to claim, by priority; overdue counts open cases past due. */
export function summariseTat(
  cases: Iterable<CaseState>,
  priorities: readonly Priority[],
  now = Date.now()
): TatSummary[] {
  const list = [...cases].filter(c => c.status !== 'CANCELED')
  return priorities.map(priority => {
    const mine = list.filter(c => c.priority === priority)
    const completed = mine.filter(c => c.finalAt !== null)
    const turnaround = completed.map(c => minutesBetween(c.createdAt, c.finalAt as string))
    const toClaim = mine.filter(c => c.claimedAt !== null).map(c => minutesBetween(c.createdAt, c.claimedAt as string))
    return {
      priority,
      cases: mine.length,
      completed: completed.length,
      open: mine.length - completed.length,
      overdue: mine.filter(c => c.finalAt === null && Date.parse(c.dueAt) < now).length,
      withinDue: completed.filter(c => Date.parse(c.finalAt as string) <= Date.parse(c.dueAt)).length,
      medianMinutes: percentile(turnaround, 0.5),
      p90Minutes: percentile(turnaround, 0.9),
      medianClaimMinutes: percentile(toClaim, 0.5)
    }
  })
}
