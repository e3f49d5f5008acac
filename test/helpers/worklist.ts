/** A study's case on a node's worklist, for the tests that wait for one to arrive. */
import type { StartedNode } from '../../scripts/lib/node-process.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

export interface WorklistCase {
  caseId: string
  studyInstanceUid: string
}

/** The case of study `studyUid` on `node`'s worklist, once it is there (within `timeoutMs`). */
export async function caseOnWorklist(
  node: Pick<StartedNode, 'api'>,
  studyUid: string,
  timeoutMs: number
): Promise<WorklistCase> {
  return await waitFor(
    "the case on the reader's worklist",
    async () =>
      (await node.api<WorklistCase[]>('GET', '/api/worklist')).body.find(e => e.studyInstanceUid === studyUid),
    timeoutMs
  )
}
