/**
 * Reading a stored file back from the content store, verified: every chunk against its id as it is read,
 * the size always, the SHA-256 of the whole when it is read whole. A damaged archive is an error, never
 * wrong bytes.
 */
import { sha256Hex } from '../hash.ts'
import { CHUNK_SIZE, type ChunkStore } from './chunks.ts'
import type { InstanceRecord } from './records.ts'

/** What reading a stored file needs of its instance record. */
export type StoredFile = Pick<InstanceRecord, 'sopUid' | 'size' | 'sha256' | 'chunks'>

/** The file's chunks in order (CHUNK_SIZE bytes each but the last): one in memory at a time. */
export async function* chunksOf(chunks: Pick<ChunkStore, 'get'>, instance: StoredFile): AsyncGenerator<Buffer> {
  let length = 0
  for (const id of instance.chunks) {
    const chunk = await chunks.get(id)
    length += chunk.byteLength
    yield chunk
  }
  if (length !== instance.size) {
    throw new Error(`instance ${instance.sopUid} does not match its recorded size: the archive is damaged`)
  }
}

/** Bytes `start` to `end` (exclusive) of the file, reading only the chunks that hold them. */
export async function readRange(
  chunks: Pick<ChunkStore, 'get'>,
  instance: StoredFile,
  start: number,
  end: number
): Promise<Buffer> {
  if (start < 0 || end > instance.size || start > end) {
    throw new RangeError(`bytes ${start}-${end} are not within instance ${instance.sopUid} (${instance.size} bytes)`)
  }
  if (start === end) return Buffer.alloc(0)
  const first = Math.floor(start / CHUNK_SIZE)
  const last = Math.floor((end - 1) / CHUNK_SIZE)
  const parts: Buffer[] = []
  for (let i = first; i <= last; i++) parts.push(await chunks.get(instance.chunks[i] as string))
  const joined = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts)
  return joined.subarray(start - first * CHUNK_SIZE, end - first * CHUNK_SIZE)
}

/** The file, exactly as received, verified chunk by chunk and as a whole. */
export async function readWhole(chunks: Pick<ChunkStore, 'read'>, instance: StoredFile): Promise<Buffer> {
  const file = await chunks.read(instance.chunks)
  // A one-chunk object was verified whole by its chunk id, which is its SHA-256.
  const verified = instance.chunks.length === 1 && instance.chunks[0] === instance.sha256
  if (file.byteLength !== instance.size || (!verified && sha256Hex(file) !== instance.sha256)) {
    throw new Error(`instance ${instance.sopUid} does not match its recorded size and SHA-256: the archive is damaged`)
  }
  return file
}
