/**
 * Signing and verifying worklist and report records (shapes in protocol/collab/records.ts). A record is
 * signed by its author's peer key; its peer id holds the Ed25519 public key, so any member verifies it.
 */
import type { PrivateKey } from '@libp2p/interface'
import {
  decodeReportRecord,
  decodeWorklistRecord,
  recordKey,
  type ReportRecord,
  reportSigningBytes,
  type UnsignedReportRecord,
  type UnsignedWorklistRecord,
  type WorklistRecord,
  worklistSigningBytes
} from '../../protocol/collab/records.ts'
import { MalformedMessageError } from '../../protocol/errors.ts'
import { signedByPeer, toBase64url } from '../membership/crypto.ts'
import { checkCertificate, type ConsortiumTrust } from '../membership/trust.ts'

export async function signWorklistRecord<R extends UnsignedWorklistRecord> (privateKey: PrivateKey, record: R): Promise<R & { signature: string }> {
  return { ...record, signature: toBase64url(await privateKey.sign(worklistSigningBytes(record))) }
}

export async function signReportRecord<R extends UnsignedReportRecord> (privateKey: PrivateKey, record: R): Promise<R & { signature: string }> {
  return { ...record, signature: toBase64url(await privateKey.sign(reportSigningBytes(record))) }
}

/**
 * A worklist record stored under `key`: well-formed, under its own key, and signed by its author (a member
 * record: a certificate of this consortium, signed by its root).
 */
export async function verifiedWorklistRecord (key: string, value: unknown, trust: ConsortiumTrust): Promise<WorklistRecord> {
  const record = decodeWorklistRecord(value)
  if (recordKey(record) !== key) throw new MalformedMessageError(`worklist record under key ${key.slice(0, 60)} belongs under ${recordKey(record)}`)
  if (record.kind === 'member') {
    const check = checkCertificate(record.certificate, trust, Date.parse(record.certificate.issuedAt))
    if (!check.ok) throw new MalformedMessageError(`member record ${key}: ${check.reason}`)
    return record
  }
  if (!await signedByPeer(record.by, worklistSigningBytes(record), record.signature)) throw new MalformedMessageError(`the ${record.kind} record ${key} is not signed by ${record.by}`)
  return record
}

export async function verifiedReportRecord (key: string, value: unknown): Promise<ReportRecord> {
  const record = decodeReportRecord(value)
  if (record.kind === 'binding' ? key !== String(record.clientId) : recordKey(record) !== key) throw new MalformedMessageError(`report record under key ${key.slice(0, 60)} is not under its own key`)
  if (!await signedByPeer(record.by, reportSigningBytes(record), record.signature)) throw new MalformedMessageError(`the ${record.kind} record ${key} is not signed by ${record.by}`)
  return record
}
