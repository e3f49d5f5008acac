/**
 * The HL7 outbox: every ORU^R01 the site owes its RIS, in the `hl7-outbox` sublevel of the node's database,
 * one record per report version (`CASE:NNNN`, NNNN the number of addenda), sealed under the node's storage
 * key (they carry the patient's name and the report) and written with fsync before anything is sent, so a
 * restart or a RIS that is down for a day loses nothing. Records stay after delivery: they are the delivery
 * status the case shows (state, attempts, the last ACK).
 */
import type { StorageKey } from '../../archive/sealing.ts'
import { SealedRecords } from '../../archive/sealed-records.ts'
import type { Database } from '../../store/database.ts'
import type { ResultStatus } from './oru.ts'

export const OUTBOX_SUBLEVEL = 'hl7-outbox'

/** pending: to be sent (again); delivered: AA (or CA); rejected: AE or AR (or CE, CR), not sent again */
export type OutboxState = 'pending' | 'delivered' | 'rejected'

export interface OutboxEntry {
  /** `CASE:NNNN` */
  key: string
  caseId: string
  studyUid: string
  /** MSH-10, the same on every attempt */
  controlId: string
  resultStatus: ResultStatus
  /** the RIS it is for, HOST:PORT */
  ris: string
  /** the message, segments separated by CR */
  message: string
  state: OutboxState
  attempts: number
  createdAt: string
  /** when the next attempt is due (pending) */
  nextAttemptAt: string
  lastAttemptAt?: string
  /** why the last attempt got no ACK */
  lastError?: string
  /** the last ACK: MSA-1, the reason given, when */
  ack?: { code: string; text: string; at: string }
}

/** The key of a report version: the case and how many addenda it has (sorts in order within a case). */
export const outboxKey = (caseId: string, addenda: number): string => `${caseId}:${String(addenda).padStart(4, '0')}`

export class Hl7Outbox {
  private readonly records: SealedRecords<OutboxEntry>

  constructor(db: Database, key: StorageKey) {
    this.records = new SealedRecords(db, OUTBOX_SUBLEVEL, key)
  }

  /** Keeps `entry` durably (fsync'd): a new one, or a changed state. */
  async put(entry: OutboxEntry): Promise<void> {
    await this.records.put(entry.key, entry)
  }

  async get(key: string): Promise<OutboxEntry | undefined> {
    return await this.records.get(key)
  }

  /** The entries of one case, oldest version first. */
  async ofCase(caseId: string): Promise<OutboxEntry[]> {
    return await this.records.all({ gt: `${caseId}:`, lt: `${caseId}:~` })
  }

  /** Every pending entry, oldest first: what a restart picks up. */
  async pending(): Promise<OutboxEntry[]> {
    // Read one at a time: a site keeps every report it ever sent, and only the pending ones are wanted.
    const entries: OutboxEntry[] = []
    for await (const entry of this.records.entries()) if (entry.state === 'pending') entries.push(entry)
    return entries.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0))
  }
}
