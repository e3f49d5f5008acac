/**
 * What reports know of a case, and what they ask of the worklist that holds the cases. The worklist
 * (node/worklist/) fits these shapes and node.ts hands it over, so reports never import the worklist.
 */
import type { CasePurpose, SignatureStatus, WorklistRecord } from '../../protocol/collab/records.ts'
import type { ReportPrior } from './compared.ts'

/** The fields of a case (node/worklist/cases.ts derives them) that say who holds and writes its report. */
export interface ReportCase {
  caseId: string
  studyUid: string
  site: string
  siteName: string
  claimedBy: string | null
  /** every reader who has made a claim on the case */
  claimers: string[]
  consultants: string[]
  finalAt: string | null
  /** the priors its site listed (worklist/cases.ts): the report references those it compared with */
  priors?: ReportPrior[]
  /** 'second-opinion': a de-identified copy's case, whose report goes back to the original (node/workflow/) */
  purpose?: CasePurpose
}

export interface CaseSource {
  /** A case in memory, if there is one. */
  caseState(caseId: string): ReportCase | undefined
  /** The case, or a CaseError (RADMESH_NOT_FOUND) naming it. */
  requireCase(caseId: string): ReportCase
  /** The live cases: open, or changed in the last days. */
  liveCases(): ReportCase[]
  /** Every case in memory. */
  allCases(): ReportCase[]
  /** A member's name for people to read. */
  nameOf(peerId: string): string
  /** Mirrors a report signature in the worklist (times and a hash, no content). */
  recordSignature(caseId: string, status: SignatureStatus, reportHash: string, at: string): Promise<void>
  onChange(listener: (changed: WorklistRecord[]) => void): () => void
}

/** The readers who may write a case's report: everyone who claimed it, and the consultants. */
export const editorsOf = (state: Pick<ReportCase, 'claimers' | 'consultants'>): string[] => [
  ...new Set([...state.claimers, ...state.consultants])
]
