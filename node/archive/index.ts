/**
 * @packageDocumentation
 * The archive: every DICOM instance a node holds, stored once through one `store()` (C-STORE, STOW-RS,
 * import: archive.ts, incoming.ts, ingest.ts), indexed for listing (records.ts, commit.ts) and QIDO matching
 * (qido.ts, wildcard.ts), and read back verified (whole, a chunk at a time, a range: read.ts). Other
 * capabilities use it only through the `Archive` interface, each taking the slice it needs. Its content
 * store and pack log (chunks.ts, pack/) are private to it; open.ts opens it with the recovery a crash needs.
 */
export {
  type Announced,
  type Archive,
  type Attributes,
  type InstanceRecord,
  MAX_INSTANCE_BYTES,
  type SeriesRecord,
  type StoreOutcome,
  type StoreResult,
  type StudyRecord,
  type StudyStableEvent
} from './archive.ts'
export { CHUNK_SIZE } from './chunks.ts'
export type { IncomingObject } from './incoming.ts'
export { openNetworkDataset, storeFromNetwork } from './ingest.ts'
export { type ArchiveFiles, type OpenedArchive, openArchive } from './open.ts'
export { DEFAULT_PREALLOCATE_READER, DEFAULT_PREALLOCATE_SITE, type ReplayedCommit } from './pack/index.ts'
export { StorageKey } from './sealing.ts'
