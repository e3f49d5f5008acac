/**
 * Replaying the pack log at start: the commits past the index's checkpoint (or an earlier point the caller
 * names) are read from the packs and put back in the index. LevelDB keeps its writes in order, so after a
 * power loss its index is whole up to its checkpoint; what it lost is in the packs, synced.
 *
 * A pack's scan ends at the first entry that is not whole: a header that is not one, a body past the end,
 * a commit that does not open, or a commit whose chunks do not (a crash can persist the pages of a write in
 * any order). Writes are made durable in order, so nothing past that point was acknowledged.
 */
import { constants, promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { Json } from '../../../protocol/json.ts'
import { compareRefs, parseRef } from '../../store/pack-ref.ts'
import { CHUNK_ASSOCIATED_DATA, type StorageKey } from '../sealing.ts'
import {
  type CommitRecord,
  ENTRY_COMMIT,
  ENTRY_HEADER_LENGTH,
  openCommit,
  type PackPosition,
  packName,
  readEntryHeader
} from './format.ts'
import { isFramed, type PackReaders } from './read.ts'

/** commits replayed per index batch */
const REPLAY_BATCH = 256

/** A commit replayed into the index when the archive opened. */
export interface ReplayedCommit {
  ref: string
  note: Json
  /** past the index's checkpoint: LevelDB had lost its puts (a power loss after the pack was synced) */
  recovered: boolean
}

export interface ReplayOptions {
  root: string
  key: StorageKey
  readers: PackReaders
  /** the packs in `root`, in order */
  packs: number[]
  /** the ref of the first commit to replay; every framed pack when undefined */
  from: string | undefined
  /** the index's checkpoint: commits at or past it are `recovered` */
  checkpoint: string | undefined
  /** puts opened commits in the index, synced, with the position after the last of them */
  apply(records: CommitRecord[], end: PackPosition): Promise<void>
}

/** Replays the commits from `from`; returns them, oldest first, and where the scan of the last framed pack ended. */
export async function replay(
  options: ReplayOptions
): Promise<{ replayed: ReplayedCommit[]; end: PackPosition | undefined }> {
  const { root, packs, from, checkpoint } = options
  const start = from === undefined ? { pack: 0, offset: 0 } : parseRef(from)
  const replayed: ReplayedCommit[] = []
  let batch: Array<{ end: PackPosition; record: CommitRecord }> = []
  const flush = async (): Promise<void> => {
    const last = batch.at(-1)
    if (last === undefined) return
    await options.apply(
      batch.map(({ record }) => record),
      last.end
    )
    batch = []
  }
  let end: PackPosition | undefined
  for (const pack of packs.filter(p => p >= start.pack)) {
    if (!(await isFramed(root, pack))) continue
    const handle = await fs.open(join(root, packName(pack)), constants.O_RDONLY)
    try {
      const size = (await handle.stat()).size
      let offset = pack === start.pack ? start.offset : 0
      const header = Buffer.alloc(ENTRY_HEADER_LENGTH)
      while (offset + ENTRY_HEADER_LENGTH <= size) {
        await handle.read(header, 0, ENTRY_HEADER_LENGTH, offset)
        const entry = readEntryHeader(header)
        if (entry === undefined || offset + ENTRY_HEADER_LENGTH + entry.length > size) break
        if (entry.type === ENTRY_COMMIT) {
          const record = await wholeCommit(options, handle, pack, offset + ENTRY_HEADER_LENGTH, entry.length)
          if (record === undefined) break
          const ref = `${pack}:${offset}`
          const recovered = checkpoint === undefined || compareRefs(ref, checkpoint) >= 0
          replayed.push({ ref, note: record.note, recovered })
          batch.push({ end: { pack, offset: offset + ENTRY_HEADER_LENGTH + entry.length }, record })
          if (batch.length >= REPLAY_BATCH) await flush()
        }
        offset += ENTRY_HEADER_LENGTH + entry.length
      }
      end = { pack, offset }
    } finally {
      await handle.close()
    }
  }
  await flush()
  return { replayed, end }
}

/** A commit entry's record, if it and every chunk it makes visible are whole. */
async function wholeCommit(
  options: ReplayOptions,
  handle: fs.FileHandle,
  pack: number,
  at: number,
  length: number
): Promise<CommitRecord | undefined> {
  try {
    const body = Buffer.alloc(length)
    await handle.read(body, 0, length, at)
    const record = openCommit(options.key, body)
    for (const [, location] of record.locations) {
      // A staged chunk may lie in the pack before its commit's, when the pack filled up in between.
      const sealed = await options.readers.read(location, location.pack === pack ? handle : undefined)
      if (sealed === undefined) return undefined
      options.key.open(sealed, CHUNK_ASSOCIATED_DATA)
    }
    return record
  } catch {
    return undefined
  }
}
