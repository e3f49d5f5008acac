/**
 * Records of the single worklist document of radmesh before 0.2 are carried over into the members and case
 * documents. Only records this node wrote are carried (and member certificates): each author carries its
 * own, so no two nodes write the same entry; the rest arrive from their authors.
 */
import type { Logger } from 'pino'
import type { WorklistRecord } from '../../protocol/collab/records.ts'
import type { Documents } from '../crdt/documents.ts'
import type { Identity } from '../identity/keys.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import { recordsOf, verifiedWorklistRecord } from './records.ts'

/** The document every worklist record lived in before radmesh 0.2 (one for all cases). */
export const LEGACY_WORKLIST_DOC = 'worklist'

export interface LegacyOptions {
  documents: Documents
  identity: Identity
  registry: Pick<MembershipRegistry, 'trust'>
  log: Logger
}

/** Carries this node's records of the legacy document over with `put`, then removes the document. */
export async function carryOverLegacy(
  { documents, identity, registry, log }: LegacyOptions,
  put: (record: WorklistRecord) => Promise<void>
): Promise<void> {
  if (!(await documents.exists(LEGACY_WORKLIST_DOC))) return
  const legacy = await documents.open(LEGACY_WORKLIST_DOC)
  let carried = 0
  for (const [key, value] of recordsOf(legacy).entries()) {
    let record: WorklistRecord
    try {
      record = await verifiedWorklistRecord(key, value, registry.trust)
    } catch {
      continue
    }
    if (record.kind === 'member' ? record.certificate.peerId !== identity.peerId : record.by !== identity.peerId) {
      continue
    }
    await put(record)
    carried++
  }
  await documents.remove(LEGACY_WORKLIST_DOC)
  log.info(
    { event: 'worklist-carried-over', records: carried },
    `carried ${carried} record(s) over from the worklist of an earlier radmesh`
  )
}
