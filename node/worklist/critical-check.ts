/**
 * Who may write the records of a critical result (beyond the role check.ts asks of every kind): a reader of the
 * case (routed to it, or a consultant) raises one and records calls about it; only the case's site acknowledges
 * and records its escalations.
 */
import type { WorklistRecord } from '../../protocol/collab/records.ts'
import { UpdateRefusedError } from '../crdt/inspect.ts'
import type { CaseState } from './cases.ts'

export const mayRaiseCritical = (state: Pick<CaseState, 'readers' | 'consultants'>, peer: string): boolean =>
  state.readers.includes(peer) || state.consultants.includes(peer)

/** Throws UpdateRefusedError for a critical record by a member the case does not allow to write it. */
export function checkCriticalAuthors(state: CaseState, records: Iterable<WorklistRecord>): void {
  for (const record of records) {
    if ((record.kind === 'critical' || record.kind === 'critical-call') && !mayRaiseCritical(state, record.by)) {
      throw new UpdateRefusedError(
        `a ${record.kind} record on case ${state.caseId} must be written by one of its ` +
          `readers, and ${record.by} is not`,
        5
      )
    }
    if ((record.kind === 'critical-ack' || record.kind === 'critical-escalation') && record.by !== state.site) {
      throw new UpdateRefusedError(
        `a critical result of case ${state.caseId} is acknowledged and escalated by its site only`,
        5
      )
    }
  }
}
