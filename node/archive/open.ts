/**
 * Opens a HOME's archive in the order recovery needs: the audit log (its last store record), then the chunk
 * store (replaying its pack log from the earlier of the index's checkpoint and that record), then the
 * archive, which appends again the store records the audit log lost. `radmesh start` and the tests open
 * it here, so both go through the same recovery.
 */
import type { Logger } from 'pino'
import { AuditLog } from '../audit/log.ts'
import type { Database } from '../store/database.ts'
import { Archive } from './archive.ts'
import { ChunkStore, type ReplayedCommit } from './chunks.ts'
import type { StorageKey } from './sealing.ts'

export interface ArchiveFiles {
  db: Database
  key: StorageKey
  /** HOME/chunks */
  chunks: string
  /** HOME/audit.log */
  audit: string
  log: Logger
  stableAfterMs: number
  /** bytes of pack space kept zero-filled ahead of the writes (see chunks.ts) */
  preallocate: number
}

export interface OpenedArchive {
  archive: Archive
  chunks: ChunkStore
  audit: AuditLog
  /** what the pack log replayed */
  replayed: ReplayedCommit[]
  /** store records appended again to the audit log */
  recoveredAudits: number
  /** stops the archive, then closes the chunk store (its last commits write audit records), then the audit log */
  close (): Promise<void>
}

export async function openArchive (files: ArchiveFiles): Promise<OpenedArchive> {
  const audit = new AuditLog(files.audit)
  await audit.open()
  const chunks = new ChunkStore(files.chunks, files.key, files.db, { preallocate: files.preallocate })
  let archive: Archive | undefined
  const close = async (): Promise<void> => {
    archive?.stop()
    await chunks.close()
    await audit.close()
  }
  try {
    const replayed = await chunks.open({ replayFrom: audit.lastJournal })
    const recovered = replayed.filter(commit => commit.recovered).length
    if (recovered > 0) files.log.warn({ event: 'index-recovered', commits: recovered }, `the index had lost ${recovered} stores in a crash; they are back from the pack log`)
    archive = new Archive({ db: files.db, chunks, key: files.key, audit, log: files.log, stableAfterMs: files.stableAfterMs })
    const recoveredAudits = await archive.recover(replayed)
    return { archive, chunks, audit, replayed, recoveredAudits, close }
  } catch (error) {
    await close().catch(() => {})
    throw error
  }
}
