/**
 * What a reader or site may do to a case (worklist.ts): claim, release, invite a consultant, cancel. Each
 * checks the case as this node sees it and gives the record to write, or throws a CaseError saying why not.
 */
import type { ClaimRecord, ReleaseRecord } from '../../protocol/collab/records.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { MemberCertificate } from '../../protocol/membership/index.ts'
import { CaseError } from '../errors.ts'
import { isOpen } from './case-index.ts'
import type { CaseState } from './cases.ts'

type Unsigned<T> = Omit<T, 'signature'>

export function requireOpen(state: CaseState): void {
  if (!isOpen(state)) throw new CaseError('RADMESH_CASE_CLOSED', `case ${state.caseId} is ${state.status}`)
}

/**
 * The claim of `me` on the case (SCHEDULED -> IN PROGRESS); undefined when `me` holds it already. A case
 * someone else holds is refused (409). See cases.ts for how concurrent claims are decided.
 */
export function claimOf(
  state: CaseState,
  me: PeerIdString,
  nameOf: (peerId: string) => string
): Unsigned<ClaimRecord> | undefined {
  const { caseId } = state
  requireOpen(state)
  if (state.claimedBy === me) return undefined
  if (state.claimedBy !== null) {
    throw new CaseError(
      'RADMESH_CASE_TAKEN',
      `case ${caseId} is held by ${nameOf(state.claimedBy)} (${state.claimedBy}) since ` +
        `${state.claimedAt ?? 'earlier'}`
    )
  }
  if (!state.readers.includes(me)) {
    throw new CaseError(
      'RADMESH_NOT_ALLOWED',
      `case ${caseId} was not routed to this reader (subspecialty ${state.subspecialty})`
    )
  }
  return { v: 1, kind: 'claim', caseId, seq: state.seq + 1, by: me, at: new Date().toISOString() }
}

/** The release by its holder `me` (IN PROGRESS -> SCHEDULED). */
export function releaseOf(
  state: CaseState,
  me: PeerIdString,
  nameOf: (peerId: string) => string
): Unsigned<ReleaseRecord> {
  const { caseId } = state
  requireOpen(state)
  if (state.claimedBy !== me || state.claim === null) {
    throw new CaseError(
      'RADMESH_NOT_ALLOWED',
      `case ${caseId} is not held by this reader${
        state.claimedBy === null ? '' : ` ` + `(${nameOf(state.claimedBy)} holds it)`
      }`
    )
  }
  return {
    v: 1,
    kind: 'release',
    caseId,
    claim: state.claim,
    seq: state.seq + 1,
    by: me,
    at: new Date().toISOString()
  }
}

/** Throws unless `me` holds the case and may invite `consultant` (a member radiologist) onto its report. */
export function checkInvite(
  state: CaseState,
  me: PeerIdString,
  consultant: string,
  certificate: MemberCertificate | undefined,
  isMember: boolean
): void {
  requireOpen(state)
  if (state.claimedBy !== me) {
    throw new CaseError('RADMESH_NOT_ALLOWED', `only the reader holding case ${state.caseId} can invite a consultant`)
  }
  if (certificate === undefined || !isMember) {
    throw new CaseError('RADMESH_NOT_A_MEMBER', `${consultant} is not a member this node knows`)
  }
  if (certificate.role !== 'radiologist') {
    throw new CaseError(
      'RADMESH_NOT_ALLOWED',
      `${certificate.name} is a ${certificate.role}; only radiologists can be consulted`
    )
  }
}

/** Throws unless `me` is the site that published the case, which may cancel it. */
export function checkCancel(state: CaseState, me: PeerIdString): void {
  requireOpen(state)
  if (state.site !== me) {
    throw new CaseError('RADMESH_NOT_ALLOWED', `only the site that published case ${state.caseId} can cancel it`)
  }
}
