/**
 * An archive opened on a HOME folder the way `radmesh start` opens it (node/archive/open.ts): the audit log,
 * then the chunk store replaying its pack log, then the archive, which appends store records the audit log lost.
 */
import { join } from 'node:path'
import { pino } from 'pino'
import type { Archive } from '../../node/archive/archive.ts'
import type { ReplayedCommit } from '../../node/archive/chunks.ts'
import { openArchive as openHomeArchive } from '../../node/archive/open.ts'
import { StorageKey } from '../../node/archive/sealing.ts'
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
  close(): Promise<void>
}

export async function openArchive(
  home: string,
  stableAfterMs = 60_000,
  options: { preallocate?: number } = {}
): Promise<OpenedArchive> {
  const key = await StorageKey.load(join(home, 'storage.key'))
  const db = await openDatabase(join(home, 'db'))
  const auditPath = join(home, 'audit.log')
  const opened = await openHomeArchive({
    db,
    key,
    chunks: join(home, 'chunks'),
    audit: auditPath,
    log: pino({ level: 'silent' }),
    stableAfterMs,
    preallocate: options.preallocate ?? 0
  })
  return {
    archive: opened.archive,
    db,
    audit: auditPath,
    replayed: opened.replayed,
    recoveredAudits: opened.recoveredAudits,
    close: async () => {
      await opened.close()
      await db.close()
    }
  }
}
