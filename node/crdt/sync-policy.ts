/**
 * What the sync (sync.ts) asks of the owner of the documents: which documents it shares with whom, and
 * whether an update from a peer may be applied. The reading workflow provides it (node/workflow/).
 */
import type { InspectedUpdate } from './inspect.ts'

export interface SyncPolicy {
  /** The live documents this node shares with `peerId`: what a digest to it covers. */
  sharedWith(peerId: string): string[]
  /** Whether this node answers `peerId` about `docId` and sends it its updates. */
  mayShare(docId: string, peerId: string): boolean
  /** Whether this node takes updates of `docId` from `peerId` (their content is checked after). */
  mayReceive(docId: string, peerId: string): boolean
  /** Makes what the answers above need known (a closed case's document, loaded from disk). */
  prepare?(docId: string): Promise<void>
  /**
   * Calls back with documents whose members may have changed (a claim, a consult): this node then asks the
   * members it now shares them with for what it lacks, at once rather than at the next resync.
   */
  onSharingChange?: (listener: (docIds: string[]) => void) => () => void
  /** throws UpdateRefusedError when an update from a peer must not be applied */
  check(docId: string, update: Uint8Array, inspected: InspectedUpdate): Promise<void>
}
