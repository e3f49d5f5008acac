/**
 * @packageDocumentation
 * The archive's pack log, private to node/archive/: the entry format (format.ts), the one writer (appends,
 * staging, group commit, zero-fill: writer.ts), reads of sealed chunks (read.ts) and the replay at start
 * (replay.ts). The content store (../chunks.ts) is its only user.
 */
export * from './format.ts'
export { listPacks, PackReaders } from './read.ts'
export { replay, type ReplayedCommit } from './replay.ts'
export {
  type Appended,
  DEFAULT_PREALLOCATE_READER,
  DEFAULT_PREALLOCATE_SITE,
  type PackAppend,
  PackWriter
} from './writer.ts'
