/**
 * What the parts of the demo share: its members, a running node, a case as the worklist shows it, and the way
 * the walk-through prints a step and waits for one.
 */
import type { StartedNode } from '../lib/node-process.ts'
import { waitFor } from '../lib/wait.ts'

export const MEMBERS = [
  { key: 'site', name: 'Riverside Community Hospital', role: 'site', subspecialties: [] },
  { key: 'neuro', name: 'Dr Ada Neuro', role: 'radiologist', subspecialties: ['neuro'] },
  { key: 'nighthawk', name: 'Dr Night Hawk', role: 'radiologist', subspecialties: ['body', 'neuro', 'msk'] }
] as const
export type Member = (typeof MEMBERS)[number]
export const AE_TITLE = 'RADMESH'
/** How long the demo waits for one step of the scenario (a case to appear, a report to merge). */
const STEP_TIMEOUT_MS = 60_000

export interface Running extends StartedNode {
  member: Member
}
export interface Case {
  caseId: string
  studyInstanceUid: string
  priority: string
  subspecialty: string
  status: string
  claimedBy: string | null
  createdAt: string
  dueAt: string
  finalAt: string | null
}

export const say = (text: string): void => {
  process.stdout.write(`• ${text}\n`)
}
export const until = async <T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> =>
  await waitFor(what, probe, STEP_TIMEOUT_MS, 200)
export const caseOf = async (node: Running, studyUid: string): Promise<Case | undefined> =>
  (await node.api<Case[]>('GET', '/api/worklist')).body.find(c => c.studyInstanceUid === studyUid)
