/**
 * What a pack holds (HOME/chunks/pack-000001.dat, a new pack past PACK_LIMIT): framed entries, one after
 * another. Every entry is 'RMPK', a type byte, three reserved bytes, the body length (u32 big endian), the
 * body. A chunk entry's body is a sealed chunk; a commit entry's body is a sealed record of the index puts
 * one store makes (chunk locations, instance, series and study records) and a note the caller gets back if
 * the commit is replayed (the audit entries). Until a commit entry names a chunk, the chunk is invisible.
 *
 * Packs written before this format (no 'RMPK' at the start) are still read through their locations and
 * never scanned.
 */
import type { Json } from '../../../protocol/json.ts'
import type { StorageKey } from '../sealing.ts'

/** A pack is closed and a new one started past this size (keeps files a backup tool can handle). */
export const PACK_LIMIT = 1024 * 1024 * 1024

export const ENTRY_MAGIC = Buffer.from('RMPK')
export const ENTRY_HEADER_LENGTH = 12
export const ENTRY_CHUNK = 1
export const ENTRY_COMMIT = 2
const COMMIT_ASSOCIATED_DATA = 'radmesh pack commit v1'

/** A place in the pack log: a pack and a byte offset in it. */
export interface PackPosition {
  pack: number
  offset: number
}

/** Where a sealed chunk lies: its entry's body. */
export interface ChunkLocation {
  pack: number
  offset: number
  length: number
}

/** A chunk sealed as it arrived (IncomingObject), its id perhaps not taken yet. */
export interface SealedPieces {
  /** the sealed chunk in pieces, in order: nonce, ciphertext…, tag */
  sealed: Buffer[]
  sealedLength: number
}

/** A sealed chunk with its id, ready to append. */
export interface SealedChunk extends SealedPieces {
  /** SHA-256 of the plaintext, hex */
  id: string
}

/** A chunk whose synced write `stage` began before its commit: where it lies, and when it is on disk. */
export interface StagedWrite {
  location: ChunkLocation
  durable: Promise<void>
}

/** A chunk of a commit that `stage` is writing already, with its id. */
export interface StagedChunk {
  id: string
  staged: Promise<StagedWrite>
}

export const isStaged = (chunk: SealedChunk | StagedChunk): chunk is StagedChunk => 'staged' in chunk

/** An index put a commit makes visible: a binary value in a named sublevel. */
export interface IndexPut {
  sublevel: string
  key: string
  value: Uint8Array
}

/** A commit entry's body, opened: chunk locations by keyed name, index puts (value base64), the caller's note. */
export interface CommitRecord {
  locations: Array<[string, ChunkLocation]>
  puts: Array<[string, string, string]>
  note: Json
}

export const packName = (pack: number): string => `pack-${String(pack).padStart(6, '0')}.dat`

/** The pack number of a file name, or undefined for a file that is not a pack. */
export const packNumber = (name: string): number | undefined => {
  const digits = /^pack-(\d{6})\.dat$/.exec(name)?.[1]
  return digits === undefined ? undefined : Number(digits)
}

export function entryHeader(type: number, length: number): Buffer {
  const header = Buffer.alloc(ENTRY_HEADER_LENGTH)
  ENTRY_MAGIC.copy(header, 0)
  header.writeUInt8(type, 4)
  header.writeUInt32BE(length, 8)
  return header
}

/** An entry header's type and body length, or undefined when the bytes are not one. */
export function readEntryHeader(header: Buffer): { type: number; length: number } | undefined {
  const type = header.readUInt8(4)
  if (!header.subarray(0, 4).equals(ENTRY_MAGIC) || (type !== ENTRY_CHUNK && type !== ENTRY_COMMIT)) return undefined
  return { type, length: header.readUInt32BE(8) }
}

/** A commit entry's body: its record, sealed under the storage key. */
export function sealCommit(
  storageKey: StorageKey,
  locations: Array<[string, ChunkLocation]>,
  puts: IndexPut[],
  note: Json
): Buffer {
  const base64 = (value: Uint8Array): string =>
    Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')
  const record: CommitRecord = {
    locations,
    puts: puts.map(({ sublevel, key, value }) => [sublevel, key, base64(value)]),
    note
  }
  return storageKey.seal(Buffer.from(JSON.stringify(record)), COMMIT_ASSOCIATED_DATA)
}

/** Opens a commit entry's body; throws when it was altered or is not whole. */
export const openCommit = (key: StorageKey, body: Buffer): CommitRecord =>
  JSON.parse(key.open(body, COMMIT_ASSOCIATED_DATA).toString('utf8')) as CommitRecord
