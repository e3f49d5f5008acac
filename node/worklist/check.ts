/**
 * The check of a peer's update to a worklist document (the rules are in worklist.ts): it may only add new
 * entries, each a record that verifies, of a kind that belongs in that document, by an author whose role may
 * write that kind; and a case document is taken only by a node the case concerns.
 */
import type * as Y from 'yjs'
import type { AuthoredWorklistRecord, WorklistRecord } from '../../protocol/collab/records.ts'
import type { DocKind } from '../../protocol/collab/sync.ts'
import type { MemberCertificate } from '../../protocol/membership/index.ts'
import { type InspectedUpdate, UpdateRefusedError } from '../crdt/inspect.ts'
import { newEntries } from '../crdt/record-map.ts'
import type { ConsortiumTrust } from '../membership/trust.ts'
import { type CaseState, deriveCases } from './cases.ts'
import { checkCriticalAuthors } from './critical-check.ts'
import { MEMBERS_KINDS } from './members.ts'
import { RECORDS_MAP, verifiedWorklistRecord } from './records.ts'

/** Which role may author each kind of record. */
const AUTHOR_ROLE: Record<AuthoredWorklistRecord['kind'], 'site' | 'radiologist'> = {
  case: 'site',
  acquired: 'site',
  cancel: 'site',
  claim: 'radiologist',
  release: 'radiologist',
  consult: 'radiologist',
  signed: 'radiologist',
  duty: 'radiologist',
  critical: 'radiologist',
  'critical-ack': 'site',
  'critical-call': 'radiologist',
  'critical-escalation': 'site',
  priors: 'site'
}

export interface WorklistCheck {
  /** which worklist document `doc` is */
  kind: Exclude<DocKind, { kind: 'report' }>
  trust: ConsortiumTrust
  /** a member's certificate as this node knows it */
  certificateOf: (peerId: string) => MemberCertificate | undefined
  /** the case's records held here (read once the update's records are verified) */
  held: () => Iterable<WorklistRecord>
  /** this node's peer id */
  me: string
}

/** Throws UpdateRefusedError unless every new item of `update` to `doc` is a new, valid record. */
export async function checkWorklistUpdate(doc: Y.Doc, update: InspectedUpdate, check: WorklistCheck): Promise<void> {
  const { kind } = check
  const what = kind.kind === 'members' ? 'members' : `case ${kind.caseId}`
  const incoming = newEntries(doc, RECORDS_MAP, update, what)
  const verified: WorklistRecord[] = []
  for (const { key, value, signed } of incoming) {
    try {
      verified.push(await verifiedWorklistRecord(key, value, check.trust, signed))
    } catch (error) {
      throw new UpdateRefusedError((error as Error).message, 5)
    }
  }
  const arriving = new Map<string, MemberCertificate>()
  for (const record of verified)
    if (record.kind === 'member') arriving.set(record.certificate.peerId, record.certificate)
  for (const record of verified) {
    const misplaced =
      kind.kind === 'members'
        ? !MEMBERS_KINDS.has(record.kind)
        : MEMBERS_KINDS.has(record.kind) || (record as { caseId?: string }).caseId !== kind.caseId
    if (misplaced) {
      throw new UpdateRefusedError(`a ${record.kind} record does not belong in the ${what} document`, 5)
    }
    if (record.kind === 'member') continue
    const certificate = check.certificateOf(record.by) ?? arriving.get(record.by)
    if (certificate === undefined) {
      throw new UpdateRefusedError(
        `the ${record.kind} record's author ${record.by} is not a member this node knows ` + `yet`,
        0
      )
    }
    if (certificate.role !== AUTHOR_ROLE[record.kind]) {
      throw new UpdateRefusedError(
        `a ${record.kind} record must be written by a ${AUTHOR_ROLE[record.kind]}, and ` +
          `${certificate.name} is a ${certificate.role}`,
        5
      )
    }
  }
  if (kind.kind === 'case') {
    const state = checkConcerned(kind.caseId, [...check.held(), ...verified], check.me)
    checkCriticalAuthors(state, verified)
    checkPriorsAuthor(state, verified)
  }
}

/** A case's priors are listed by its own site: another site (a site by role, so it passes that check) is refused. */
export function checkPriorsAuthor(state: Pick<CaseState, 'caseId' | 'site'>, records: WorklistRecord[]): void {
  const foreign = records.find(record => record.kind === 'priors' && record.by !== state.site)
  if (foreign !== undefined) {
    throw new UpdateRefusedError(`the priors of case ${state.caseId} are listed by its site only`, 5)
  }
}

/** A case document is taken only by a node the case concerns: its site, one of its readers, a consultant. */
function checkConcerned(caseId: string, records: WorklistRecord[], me: string): CaseState {
  const state = deriveCases(records).get(caseId)
  if (state === undefined) throw new UpdateRefusedError(`case ${caseId}'s records came before its case record`, 0)
  if (state.site !== me && !state.readers.includes(me) && !state.consultants.includes(me)) {
    throw new UpdateRefusedError(`case ${caseId} does not concern this node`, 0)
  }
  return state
}
