/**
 * For the worklist's unit tests: members with real keys, and the site's signed `case` record of a STAT head CT
 * routed to the readers given (each test names its own case, study and times).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { signWorklistRecord } from '../../node/worklist/records.ts'
import type { WorklistRecord } from '../../protocol/collab/records.ts'
import type { PeerIdString } from '../../protocol/ids.ts'

export interface Member {
  key: PrivateKey
  id: PeerIdString
}

export async function member(): Promise<Member> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key).toString() as PeerIdString }
}

export interface CaseFields {
  caseId: string
  studyUid: string
  readers: Member[]
  createdAt: string
  dueAt: string
  /** published at the study's first instance, still arriving */
  acquiring?: boolean
}

/** The site's signed `case` record: a STAT neuro CT HEAD at "County". */
export async function signedCase(site: Member, fields: CaseFields): Promise<WorklistRecord> {
  return await signWorklistRecord(site.key, {
    v: 1,
    kind: 'case',
    caseId: fields.caseId,
    studyUid: fields.studyUid,
    site: site.id,
    siteName: 'County',
    priority: 'STAT',
    subspecialty: 'neuro',
    modalities: ['CT'],
    bodyPart: 'HEAD',
    readers: fields.readers.map(reader => reader.id),
    createdAt: fields.createdAt,
    dueAt: fields.dueAt,
    ...(fields.acquiring === true ? { acquiring: true as const } : {}),
    by: site.id,
    at: fields.createdAt
  })
}
