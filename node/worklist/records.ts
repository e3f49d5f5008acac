/**
 * Signing and verifying worklist records (shapes in protocol/collab/records.ts). A record is signed by its
 * author's peer key; its peer id holds the Ed25519 public key, so any member verifies it.
 */
import type { PrivateKey } from '@libp2p/interface'
import type { Logger } from 'pino'
import type * as Y from 'yjs'
import {
  decodeWorklistRecord,
  recordKey,
  type UnsignedWorklistRecord,
  type WorklistRecord,
  worklistSigningBytes
} from '../../protocol/collab/records.ts'
import { MalformedMessageError } from '../../protocol/errors.ts'
import { signedByPeer, toBase64url } from '../membership/crypto.ts'
import { checkCertificate, type ConsortiumTrust } from '../membership/trust.ts'

/** Every worklist document (`members`, `case:ID`) is one root map of signed records, each under its own key. */
export const RECORDS_MAP = 'records'
export const recordsOf = (doc: Y.Doc): Y.Map<unknown> => doc.getMap(RECORDS_MAP)

export async function signWorklistRecord<R extends UnsignedWorklistRecord>(
  privateKey: PrivateKey,
  record: R
): Promise<R & { signature: string }> {
  return { ...record, signature: toBase64url(await privateKey.sign(worklistSigningBytes(record))) }
}

/**
 * A worklist record stored under `key`: well-formed, under its own key, and signed by its author (a member
 * record: a certificate of this consortium, signed by its root). `signatureChecked`: the author's signature of
 * this very value was verified already (by the inspector's worker, crdt/inspect-worker.ts), the rest is checked.
 */
export async function verifiedWorklistRecord(
  key: string,
  value: unknown,
  trust: ConsortiumTrust,
  signatureChecked = false
): Promise<WorklistRecord> {
  const record = decodeWorklistRecord(value)
  if (recordKey(record) !== key) {
    throw new MalformedMessageError(`worklist record under key ${key.slice(0, 60)} belongs under ${recordKey(record)}`)
  }
  if (record.kind === 'member') {
    const check = checkCertificate(record.certificate, trust, Date.parse(record.certificate.issuedAt))
    if (!check.ok) throw new MalformedMessageError(`member record ${key}: ${check.reason}`)
    return record
  }
  if (!signatureChecked && !(await signedByPeer(record.by, worklistSigningBytes(record), record.signature))) {
    throw new MalformedMessageError(`the ${record.kind} record ${key} is not signed by ${record.by}`)
  }
  return record
}

/** The records stored in a worklist document that verify; each that does not is logged and left out. */
export async function storedRecords(
  doc: Y.Doc,
  trust: ConsortiumTrust,
  log: Logger,
  what: 'member' | 'case'
): Promise<Map<string, WorklistRecord>> {
  const records = new Map<string, WorklistRecord>()
  for (const [key, value] of recordsOf(doc).entries()) {
    try {
      records.set(key, await verifiedWorklistRecord(key, value, trust))
    } catch (error) {
      log.warn(
        { event: 'worklist-record-dropped', key, error: (error as Error).message },
        `a stored ${what} record does not verify; it is ignored`
      )
    }
  }
  return records
}

/**
 * The records under `keys` that are not in `known` yet, added to it. Remote records were verified before they
 * were applied (the check of each update), local ones were signed here: they are only decoded.
 */
export function arrivedRecords(
  doc: Y.Doc,
  keys: Set<string>,
  known: Map<string, WorklistRecord>,
  log: Logger,
  what: 'member' | 'case'
): WorklistRecord[] {
  const map = recordsOf(doc)
  const changed: WorklistRecord[] = []
  for (const key of keys) {
    const value = map.get(key)
    if (value === undefined || known.has(key)) continue
    try {
      const record = decodeWorklistRecord(value)
      known.set(key, record)
      changed.push(record)
    } catch (error) {
      log.error(
        { event: 'worklist-record-dropped', key, error: (error as Error).message },
        `a ${what} record that passed its check does not decode; it is ignored`
      )
    }
  }
  return changed
}
