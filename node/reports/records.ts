/**
 * Signing and verifying report records (shapes in protocol/collab/records.ts). A record is signed by its
 * author's peer key; its peer id holds the Ed25519 public key, so any member verifies it.
 */
import type { PrivateKey } from '@libp2p/interface'
import {
  decodeReportRecord,
  recordKey,
  type ReportRecord,
  reportSigningBytes,
  type UnsignedReportRecord
} from '../../protocol/collab/records.ts'
import { MalformedMessageError } from '../../protocol/errors.ts'
import { signedByPeer, toBase64url } from '../membership/crypto.ts'

export async function signReportRecord<R extends UnsignedReportRecord>(
  privateKey: PrivateKey,
  record: R
): Promise<R & { signature: string }> {
  return { ...record, signature: toBase64url(await privateKey.sign(reportSigningBytes(record))) }
}

export async function verifiedReportRecord(key: string, value: unknown): Promise<ReportRecord> {
  const record = decodeReportRecord(value)
  if (record.kind === 'binding' ? key !== String(record.clientId) : recordKey(record) !== key) {
    throw new MalformedMessageError(`report record under key ${key.slice(0, 60)} is not under its own key`)
  }
  if (!(await signedByPeer(record.by, reportSigningBytes(record), record.signature))) {
    throw new MalformedMessageError(`the ${record.kind} record ${key} is not signed by ${record.by}`)
  }
  return record
}
