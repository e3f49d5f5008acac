/**
 * @packageDocumentation
 * Storage every capability shares: the node's one LevelDB (one per HOME; each capability keeps to its own
 * sublevel) and positions in the archive's pack log (`pack:offset` refs), which the archive writes and the
 * audit log keeps to know what it holds.
 */
export { type BinarySublevel, type Database, openDatabase, type SublevelOf, SYNCED_WRITE } from './database.ts'
export { compareRefs, parseRef } from './pack-ref.ts'
