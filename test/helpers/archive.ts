/**
 * An archive opened on a HOME folder the way `radmesh start` opens it: the audit log, then the chunk store
 * (replaying its pack log), then the archive, which appends store records the audit log lost.
 */
import { join } from 'node:path'
import { pino } from 'pino'
import { Archive } from '../../node/archive/archive.ts'
import { ChunkStore, type ReplayedCommit } from '../../node/archive/chunks.ts'
import { StorageKey } from '../../node/archive/sealing.ts'
import { AuditLog } from '../../node/audit/log.ts'
import { openDatabase, type Database } from '../../node/store/database.ts'

export interface OpenedArchive {
  archive: Archive
  db: Database
  /** the audit log's path */
  audit: string
  /** what the chunk store replayed when it opened */
  replayed: ReplayedCommit[]
  /** store records appended again to the audit log when it opened */
  recoveredAudits: number
  close (): Promise<void>
}

export async function openArchive (home: string, stableAfterMs = 60_000, options: { preallocate?: number } = {}): Promise<OpenedArchive> {
  const key = await StorageKey.load(join(home, 'storage.key'))
  const db = await openDatabase(join(home, 'db'))
  const auditPath = join(home, 'audit.log')
  const audit = new AuditLog(auditPath)
  await audit.open()
  const chunks = new ChunkStore(join(home, 'chunks'), key, db, options)
  const replayed = await chunks.open({ replayFrom: audit.lastJournal })
  const archive = new Archive({ db, chunks, key, audit, log: pino({ level: 'silent' }), stableAfterMs })
  const recoveredAudits = await archive.recover(replayed)
  return {
    archive,
    db,
    audit: auditPath,
    replayed,
    recoveredAudits,
    close: async () => {
      archive.stop()
      await audit.close()
      await chunks.close()
      await db.close()
    }
  }
}
