/**
 * Opens a HOME's archive in the order recovery needs: the audit log (its last store record), then the chunk
 * store (replaying its pack log from the earlier of the index's checkpoint and that record), then the
 * archive; the store records the audit log lost are appended again from the replayed commits. `radmesh
 * start` and the tests open it here, so both go through the same recovery.
 */
import type { Logger } from 'pino'
import { type AuditEntry, AuditLog } from '../audit/log.ts'
import type { Database } from '../store/database.ts'
import { compareRefs } from '../store/pack-ref.ts'
import { type Archive, ArchiveService } from './archive.ts'
import { ChunkStore } from './chunks.ts'
import type { ReplayedCommit } from './pack/index.ts'
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
  /** bytes of pack space kept zero-filled ahead of the writes (see pack/writer.ts) */
  preallocate: number
}

export interface OpenedArchive {
  archive: Archive
  audit: AuditLog
  /** what the pack log replayed */
  replayed: ReplayedCommit[]
  /** store records appended again to the audit log */
  recoveredAudits: number
  /** stops the archive, then closes the chunk store (its last commits write audit records), then the audit log */
  close(): Promise<void>
}

export async function openArchive(files: ArchiveFiles): Promise<OpenedArchive> {
  const { db, key, log } = files
  const audit = new AuditLog(files.audit)
  await audit.open()
  const chunks = new ChunkStore({ db, key }, { root: files.chunks, preallocate: files.preallocate })
  let archive: ArchiveService | undefined
  const close = async (): Promise<void> => {
    archive?.stop()
    await chunks.close()
    await audit.close()
  }
  try {
    const replayed = await chunks.open({ replayFrom: audit.lastJournal })
    const recovered = replayed.filter(commit => commit.recovered).length
    if (recovered > 0) {
      const message = `the index had lost ${recovered} stores in a crash; they are back from the pack log`
      log.warn({ event: 'index-recovered', commits: recovered }, message)
    }
    archive = new ArchiveService({ db, key, chunks, audit, log }, { stableAfterMs: files.stableAfterMs })
    const recoveredAudits = await recoverAuditRecords(audit, log, replayed)
    return { archive, audit, replayed, recoveredAudits, close }
  } catch (error) {
    await close().catch(() => {})
    throw error
  }
}

/**
 * The store records of replayed commits past the last one the audit log holds are appended again, so a
 * power loss loses no record of a store. Returns how many were.
 */
async function recoverAuditRecords(audit: AuditLog, log: Logger, replayed: ReplayedCommit[]): Promise<number> {
  const last = audit.lastJournal
  const why = 'recorded at restart from the pack log, which the audit log had lost in a crash'
  // Appended in commit order (each append takes its place in the chain at once) and synced together.
  const appends = replayed
    .filter(({ ref }) => last === undefined || compareRefs(ref, last) > 0)
    .flatMap(({ ref, note }) =>
      ((note as { audit?: AuditEntry[] }).audit ?? []).map(
        async entry => await audit.append({ ...entry, journal: ref, detail: `${entry.detail ?? 'stored'}; ${why}` })
      )
    )
  await Promise.all(appends)
  const appended = appends.length
  if (appended > 0) {
    const lost = `the audit log had lost ${appended} store records in a crash`
    const message = `${lost}; they are appended again from the pack log`
    log.warn({ event: 'audit-recovered', records: appended }, message)
  }
  return appended
}
