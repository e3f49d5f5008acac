/**
 * The audit trail: an append-only, hash-chained log of every access to patient data, in HOME/audit.log
 * (JSON lines, 0600). Each record carries the SHA-256 of the one before; changing, removing or reordering
 * any record breaks the chain from there on, and `verify()` says where.
 *
 * Event ids are DICOM's (PS3.15 A.5, DCM codes): 110104 DICOM Instances Transferred (stored, retrieved,
 * fetched), 110103 DICOM Instances Accessed (metadata, frames, viewing), 110112 Query, 110106 Export
 * (instances sent to another DICOM node by C-MOVE or C-GET), 110114 User
 * Authentication, 110110 Patient Record (a report read, written, signed), 110109 Order Record (a case
 * created, claimed, released, consulted, canceled). Records name studies and instances by UID and never
 * carry patient names.
 *
 * Appends are group-committed: records that arrive while a write is in flight go out together with one
 * fdatasync, and every `append()` resolves only once its record is on disk. The one exception is a store's
 * record (`durable: false`): the archive's pack log already holds it durably, so it is written without a sync
 * of its own and carries the pack position of its commit (`journal`); after a power loss the archive appends
 * again the records of the commits past the last position this log kept (`lastJournal`).
 */
import { createHash } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import { canonicalJson, type Json } from '../../protocol/json.ts'
import { compareRefs } from '../store/pack-ref.ts'

export const AUDIT_EVENTS = {
  instancesTransferred: { code: '110104', name: 'DICOM Instances Transferred' },
  instancesAccessed: { code: '110103', name: 'DICOM Instances Accessed' },
  query: { code: '110112', name: 'Query' },
  /** instances sent out of the node to another DICOM node (C-MOVE, C-GET) */
  export: { code: '110106', name: 'Export' },
  userAuthentication: { code: '110114', name: 'User Authentication' },
  /** a report read, written or signed */
  patientRecord: { code: '110110', name: 'Patient Record' },
  /** a case created, claimed, released, consulted or canceled */
  orderRecord: { code: '110109', name: 'Order Record' }
} as const
export type AuditEventName = keyof typeof AUDIT_EVENTS

/** PS3.15 A.5.1 EventActionCode and EventOutcomeIndicator */
export type AuditAction = 'C' | 'R' | 'U' | 'D' | 'E'
export type AuditOutcome = 0 | 4 | 8 | 12

export interface AuditActor {
  /** 'ae' (a DICOM peer), 'api' (token holder), 'viewer' (browser session), 'peer' (a member node), 'cli' */
  type: 'ae' | 'api' | 'viewer' | 'peer' | 'cli'
  id: string
  address?: string
}

export interface AuditEntry {
  event: AuditEventName
  action: AuditAction
  outcome: AuditOutcome
  actor: AuditActor
  study?: string
  series?: string
  instances?: string[]
  detail?: string
  /** a store's commit in the archive's pack log (`pack:offset`) */
  journal?: string
}

export interface AuditRecord extends AuditEntry {
  seq: number
  time: string
  eventCode: string
  prev: string
  hash: string
}

const GENESIS = '0'.repeat(64)

function hashOf(record: Omit<AuditRecord, 'hash'>): string {
  return createHash('sha256')
    .update(canonicalJson(record as unknown as Json))
    .digest('hex')
}

export type VerifyResult =
  | { ok: true; records: number }
  | { ok: false; records: number; brokenAt: number; problem: string }
export interface AuditQueryResult {
  total: number
  records: AuditRecord[]
  verify?: VerifyResult
}

export class AuditLog {
  private readonly path: string
  private seq = 0
  private head = GENESIS
  private pending: Array<{ line: string; durable: boolean; resolve: () => void; reject: (error: Error) => void }> = []
  private writing: Promise<void> | undefined
  private handle: fs.FileHandle | undefined
  private lastJournal_: string | undefined
  /** set when a write failed: the chain in memory ran ahead of the file, so nothing more is appended */
  private failure: Error | undefined

  constructor(path: string) {
    this.path = path
  }

  /**
   * Reads the existing log to continue its chain. A log whose chain is broken still opens (verify says
   * where). A last line torn by a crash (no newline at its end) was never acknowledged: it is cut off.
   */
  async open(): Promise<void> {
    let text = await fs.readFile(this.path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return ''
      throw error
    })
    if (text !== '' && !text.endsWith('\n')) {
      text = text.slice(0, text.lastIndexOf('\n') + 1)
      await fs.truncate(this.path, Buffer.byteLength(text))
    }
    const lines = text.split('\n').filter(line => line !== '')
    const last = lines.at(-1)
    if (last !== undefined) {
      const record = JSON.parse(last) as AuditRecord
      this.seq = record.seq
      this.head = record.hash
    }
    for (const match of text.matchAll(/"journal":"(\d+:\d+)"/g)) {
      const ref = match[1] as string
      if (this.lastJournal_ === undefined || compareRefs(ref, this.lastJournal_) > 0) this.lastJournal_ = ref
    }
    this.handle = await fs.open(this.path, constants.O_CREAT | constants.O_APPEND | constants.O_WRONLY, 0o600)
  }

  /** The latest pack-log position a store record in this log names (see `durable: false`). */
  get lastJournal(): string | undefined {
    return this.lastJournal_
  }

  /** Waits for records being written, then closes the file; `append` after this fails. */
  async close(): Promise<void> {
    await this.settled()
    await this.handle?.close()
    this.handle = undefined
  }

  /** Resolves once every record appended so far has been written (or has failed). */
  async settled(): Promise<void> {
    while (this.writing !== undefined) await this.writing
  }

  /**
   * Appends a record; resolves once it is on disk (synced), or, with `durable: false` (for records another
   * log holds durably), once it is written. After a write failed, every append is refused until a restart:
   * the records after it would chain to one the file may not hold.
   */
  async append(entry: AuditEntry, options: { durable?: boolean } = {}): Promise<AuditRecord> {
    if (this.failure !== undefined) throw this.failure
    const unhashed: Omit<AuditRecord, 'hash'> = {
      seq: ++this.seq,
      time: new Date().toISOString(),
      eventCode: AUDIT_EVENTS[entry.event].code,
      ...entry,
      prev: this.head
    }
    const record: AuditRecord = { ...unhashed, hash: hashOf(unhashed) }
    this.head = record.hash
    if (
      entry.journal !== undefined &&
      (this.lastJournal_ === undefined || compareRefs(entry.journal, this.lastJournal_) > 0)
    )
      this.lastJournal_ = entry.journal
    await new Promise<void>((resolve, reject) => {
      this.pending.push({ line: `${JSON.stringify(record)}\n`, durable: options.durable ?? true, resolve, reject })
      this.writing ??= this.flush()
    })
    return record
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending
      this.pending = []
      try {
        const handle = this.handle
        if (handle === undefined) throw new Error('the audit log is not open')
        const text = batch.map(p => p.line).join('')
        const { bytesWritten } = await handle.write(text)
        if (bytesWritten !== Buffer.byteLength(text))
          throw new Error(`could not append to the audit log ${this.path} (disk full?)`)
        if (batch.some(p => p.durable)) await handle.datasync()
        for (const p of batch) p.resolve()
      } catch (error) {
        this.failure ??= new Error(
          `the audit log ${this.path} could not be written (${(error as Error).message}); ` +
            'nothing more can be recorded, so radmesh refuses what it would record until it is restarted ' +
            '(a restart appends again the store records the log lost, from the pack log)'
        )
        for (const p of [...batch, ...this.pending.splice(0)]) p.reject(this.failure)
      }
    }
    this.writing = undefined
  }

  /**
   * What `GET /api/audit` shows: how many records the trail holds and its last `limit` records, oldest first,
   * with `verify` the check of its chain too. Records still being written are waited for.
   */
  async query(options: { limit: number; verify?: boolean }): Promise<AuditQueryResult> {
    await this.settled()
    const records = await AuditLog.read(this.path)
    return {
      total: records.length,
      records: records.slice(-options.limit),
      ...(options.verify === true ? { verify: await AuditLog.verify(this.path) } : {})
    }
  }

  /** Every record, oldest first. */
  static async read(path: string): Promise<AuditRecord[]> {
    const text = await fs.readFile(path, 'utf8').catch(() => '')
    return text
      .split('\n')
      .filter(line => line !== '')
      .map(line => JSON.parse(line) as AuditRecord)
  }

  /** Recomputes the chain; names the first record that was altered, removed or reordered. */
  static async verify(path: string): Promise<VerifyResult> {
    const text = await fs.readFile(path, 'utf8').catch(() => '')
    const lines = text.split('\n').filter(line => line !== '')
    let prev = GENESIS
    for (const [i, line] of lines.entries()) {
      let record: AuditRecord
      try {
        record = JSON.parse(line) as AuditRecord
      } catch {
        return { ok: false, records: lines.length, brokenAt: i + 1, problem: `line ${i + 1} is not a JSON record` }
      }
      const { hash, ...rest } = record
      if (record.seq !== i + 1)
        return {
          ok: false,
          records: lines.length,
          brokenAt: i + 1,
          problem: `line ${i + 1} has sequence number ${record.seq}: a record was removed or reordered`
        }
      if (record.prev !== prev)
        return {
          ok: false,
          records: lines.length,
          brokenAt: record.seq,
          problem: `record ${record.seq} does not follow record ${record.seq - 1}: the chain was cut`
        }
      if (hashOf(rest) !== hash)
        return {
          ok: false,
          records: lines.length,
          brokenAt: record.seq,
          problem: `record ${record.seq} was changed after it was written`
        }
      prev = hash
    }
    return { ok: true, records: lines.length }
  }
}
